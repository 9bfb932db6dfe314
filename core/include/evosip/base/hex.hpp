#pragma once
// Hexadecimal text: fixed-width numbers (branches, tags), byte strings (digests, tokens), escapes
// of bytes that are not text ("\x1b"), and the strict parser that reads them back.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <evosip/base/result.hpp>

namespace evosip {

enum class HexCase : uint8_t { kLower, kUpper };

// The digit of a value 0..15.
constexpr char hexDigit(unsigned nibble, HexCase letters = HexCase::kLower) {
  constexpr char kLower[] = "0123456789abcdef";
  constexpr char kUpper[] = "0123456789ABCDEF";
  return (letters == HexCase::kUpper ? kUpper : kLower)[nibble & 0xf];
}

// The low `digits` hex digits of v, most significant first, zero-padded: appendHex(s, 0x2a, 4)
// appends "002a".
void appendHex(std::string& out, uint64_t v, int digits = 16);

// Two digits per byte, most significant nibble first: {0xde, 0x01} appends "de01".
void appendHexBytes(std::string& out, std::span<const unsigned char> bytes,
                    HexCase letters = HexCase::kLower);
std::string hexEncode(std::span<const unsigned char> bytes);

// A byte that is not text, as a C-style escape: 0x1b is "\x1b".
std::string hexEscape(unsigned char c);

// 1 to 16 lower-case hex digits that fill the whole view (what appendHex writes).
Result<uint64_t> parseHex(std::string_view s);

}  // namespace evosip
