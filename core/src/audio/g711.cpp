#include <array>

#include <evosip/audio/g711.hpp>
#include <evosip/base/assert.hpp>

namespace evosip::audio {
namespace {

// The code depends only on the sample's top 14 bits (µ-law) or 12 bits (A-law), sign
// included, so the block encoders look it up: 16 KiB and 4 KiB, generated from the
// branch-free per-sample functions at compile time; about 4x faster than computing each.
template <int Shift, uint8_t (*Encode)(int16_t)>
constexpr std::array<uint8_t, (65536 >> Shift)> makeEncodeTable() {
  std::array<uint8_t, (65536 >> Shift)> t{};
  constexpr int kHalf = 32768 >> Shift;
  for (int i = 0; i < (65536 >> Shift); ++i) {
    t[i] = Encode(static_cast<int16_t>((i - kHalf) * (1 << Shift)));
  }
  return t;
}

constexpr auto kUlawEncode = makeEncodeTable<2, linearToUlaw>();
constexpr auto kAlawEncode = makeEncodeTable<4, linearToAlaw>();

}  // namespace

size_t encodeUlaw(std::span<const int16_t> in, std::span<uint8_t> out) {
  EVOSIP_ASSERT(out.size() >= in.size(), "encodeUlaw: output too small");
  const size_t n = in.size();
  for (size_t i = 0; i < n; ++i) {
    out[i] = kUlawEncode[(in[i] >> 2) + 8192];
  }
  return n;
}

size_t encodeAlaw(std::span<const int16_t> in, std::span<uint8_t> out) {
  EVOSIP_ASSERT(out.size() >= in.size(), "encodeAlaw: output too small");
  const size_t n = in.size();
  for (size_t i = 0; i < n; ++i) {
    out[i] = kAlawEncode[(in[i] >> 4) + 2048];
  }
  return n;
}

size_t decodeUlaw(std::span<const uint8_t> in, std::span<int16_t> out) {
  EVOSIP_ASSERT(out.size() >= in.size(), "decodeUlaw: output too small");
  const size_t n = in.size();
  for (size_t i = 0; i < n; ++i) {
    out[i] = kUlawToLinear[in[i]];
  }
  return n;
}

size_t decodeAlaw(std::span<const uint8_t> in, std::span<int16_t> out) {
  EVOSIP_ASSERT(out.size() >= in.size(), "decodeAlaw: output too small");
  const size_t n = in.size();
  for (size_t i = 0; i < n; ++i) {
    out[i] = kAlawToLinear[in[i]];
  }
  return n;
}

size_t encodeG711(G711Law law, std::span<const int16_t> in, std::span<uint8_t> out) {
  return law == G711Law::kUlaw ? encodeUlaw(in, out) : encodeAlaw(in, out);
}

size_t decodeG711(G711Law law, std::span<const uint8_t> in, std::span<int16_t> out) {
  return law == G711Law::kUlaw ? decodeUlaw(in, out) : decodeAlaw(in, out);
}

}  // namespace evosip::audio
