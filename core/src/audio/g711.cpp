#include <evosip/audio/g711.hpp>
#include <evosip/base/assert.hpp>

namespace evosip::audio {

size_t encodeUlaw(std::span<const int16_t> in, std::span<uint8_t> out) {
  EVOSIP_ASSERT(out.size() >= in.size(), "encodeUlaw: output too small");
  const size_t n = in.size();
  for (size_t i = 0; i < n; ++i) {
    out[i] = linearToUlaw(in[i]);
  }
  return n;
}

size_t encodeAlaw(std::span<const int16_t> in, std::span<uint8_t> out) {
  EVOSIP_ASSERT(out.size() >= in.size(), "encodeAlaw: output too small");
  const size_t n = in.size();
  for (size_t i = 0; i < n; ++i) {
    out[i] = linearToAlaw(in[i]);
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
