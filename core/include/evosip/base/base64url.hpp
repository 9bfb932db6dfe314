#pragma once
// base64url without padding (RFC 4648 section 5): tokens that fit a SIP URI user part, a Via
// parameter and a quoted nonce without escaping.

#include <cstddef>
#include <string>
#include <string_view>

namespace evosip {

// Appends the encoding of data[0..size) to out.
void base64urlEncode(const unsigned char* data, size_t size, std::string& out);

// Decodes text into out (capacity cap). Strict: only the alphabet, and the unused low bits of
// the last character must be zero, so one value has exactly one spelling. Returns the number of
// bytes, or -1 on any error (bad character, too long).
int base64urlDecode(std::string_view text, unsigned char* out, size_t cap);

}  // namespace evosip
