// libFuzzer target: the options of an rtpengine ng command (flags, replace, ICE, direction,
// transport-protocol, ...) read from whatever bencode dictionary a peer sends.
#include <cstdint>
#include <string_view>

#include <evosip/bencode/bencode.hpp>
#include <evosip/media/ng_options.hpp>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)evosip::media::normalizeFlag(text);
  if (auto v = evosip::bencode::decode(text)) {
    auto options = evosip::media::readNgOptions(*v);
    evosip::fuzz::check(options || !options.error().message.empty());  // a refusal says why
    (void)evosip::media::findKey(*v, "call-id");
  }
  return 0;
}
