#pragma once
// G.711 µ-law and A-law (ITU-T G.711), bit-exact with the ITU-T G.191 reference code
// (ulaw_compress/ulaw_expand, alaw_compress/alaw_expand) for every 16-bit input.
//
// Decoding is a 256-entry table lookup. Per-sample encoding is branch-free: the sign folded
// into a one's complement magnitude (as the reference does), the segment found with
// bit_width; the block encoders use tables built from it (16 KiB µ-law, 4 KiB A-law).

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

namespace evosip::audio {

enum class G711Law : uint8_t { kUlaw, kAlaw };

namespace detail {

constexpr int16_t ulawExpandOne(uint8_t code) {
  const int inverted = ~code & 0xFF;
  const int exponent = (inverted >> 4) & 0x07;
  const int mantissa = inverted & 0x0F;
  const int step = 4 << (exponent + 1);
  const int magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
  return static_cast<int16_t>(code < 0x80 ? -magnitude : magnitude);
}

constexpr int16_t alawExpandOne(uint8_t code) {
  const int toggled = (code ^ 0x55) & 0x7F;
  const int exponent = toggled >> 4;
  int mantissa = toggled & 0x0F;
  if (exponent > 0) {
    mantissa += 16;
  }
  mantissa = (mantissa << 4) + 8;
  if (exponent > 1) {
    mantissa <<= exponent - 1;
  }
  return static_cast<int16_t>(code > 0x7F ? mantissa : -mantissa);
}

template <int16_t (*Expand)(uint8_t)>
constexpr std::array<int16_t, 256> makeTable() {
  std::array<int16_t, 256> t{};
  for (int i = 0; i < 256; ++i) {
    t[i] = Expand(static_cast<uint8_t>(i));
  }
  return t;
}

}  // namespace detail

// Code -> linear 16-bit sample.
inline constexpr std::array<int16_t, 256> kUlawToLinear =
    detail::makeTable<detail::ulawExpandOne>();
inline constexpr std::array<int16_t, 256> kAlawToLinear =
    detail::makeTable<detail::alawExpandOne>();

constexpr int16_t ulawToLinear(uint8_t code) {
  return kUlawToLinear[code];
}
constexpr int16_t alawToLinear(uint8_t code) {
  return kAlawToLinear[code];
}

constexpr uint8_t linearToUlaw(int16_t sample) {
  const int s = sample >> 15;                // 0 or -1
  int magnitude = ((sample ^ s) >> 2) + 33;  // 14-bit one's complement magnitude + bias
  magnitude = magnitude > 0x1FFF ? 0x1FFF : magnitude;
  const int segment = std::bit_width(static_cast<unsigned>(magnitude >> 6));  // 0..7
  const int mantissa = (magnitude >> (segment + 1)) & 0x0F;
  return static_cast<uint8_t>((0x7F ^ ((segment << 4) | mantissa)) | (~s & 0x80));
}

constexpr uint8_t linearToAlaw(int16_t sample) {
  const int s = sample >> 15;
  const int magnitude = (sample ^ s) >> 4;  // 12-bit one's complement magnitude
  const int exponent = std::bit_width(static_cast<unsigned>(magnitude >> 4));  // 0..7
  const int shift = exponent > 0 ? exponent - 1 : 0;
  const int code = (exponent << 4) | ((magnitude >> shift) & 0x0F);
  return static_cast<uint8_t>((code | (~s & 0x80)) ^ 0x55);
}

constexpr uint8_t linearToG711(G711Law law, int16_t sample) {
  return law == G711Law::kUlaw ? linearToUlaw(sample) : linearToAlaw(sample);
}
constexpr int16_t g711ToLinear(G711Law law, uint8_t code) {
  return law == G711Law::kUlaw ? ulawToLinear(code) : alawToLinear(code);
}

// Block conversions: `out` must hold at least `in.size()` elements (checked in debug builds).
// Return the number of samples converted (in.size()).
size_t encodeUlaw(std::span<const int16_t> in, std::span<uint8_t> out);
size_t encodeAlaw(std::span<const int16_t> in, std::span<uint8_t> out);
size_t decodeUlaw(std::span<const uint8_t> in, std::span<int16_t> out);
size_t decodeAlaw(std::span<const uint8_t> in, std::span<int16_t> out);
size_t encodeG711(G711Law law, std::span<const int16_t> in, std::span<uint8_t> out);
size_t decodeG711(G711Law law, std::span<const uint8_t> in, std::span<int16_t> out);

// The RTP static payload types (RFC 3551): 0 PCMU, 8 PCMA.
constexpr uint8_t payloadTypeOf(G711Law law) {
  return law == G711Law::kUlaw ? 0 : 8;
}

}  // namespace evosip::audio
