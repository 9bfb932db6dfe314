// libFuzzer target: a media session record and a relay heartbeat as read from the shared store
// (media.state), which anyone with write access to the store controls.
#include <cstdint>
#include <string_view>

#include <evosip/media/session_record.hpp>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const evosip::media::RecordLimits limits;
  if (auto r = evosip::media::decodeSessionRecord(text, limits)) {
    evosip::fuzz::check(!r->callId.empty() && r->legs.size() <= limits.maxLegs);
    for (const auto& leg : r->legs) {
      evosip::fuzz::check(leg.peer < static_cast<int32_t>(r->legs.size()));
      evosip::fuzz::check(leg.media.size() <= limits.maxStreams);
    }
    // What decodes encodes and decodes again to the same shape.
    auto again = evosip::media::decodeSessionRecord(evosip::media::encodeSessionRecord(*r), limits);
    evosip::fuzz::check(again && again->legs.size() == r->legs.size());
  } else {
    evosip::fuzz::check(!r.error().message.empty());
  }
  if (auto hb = evosip::media::decodeHeartbeat(text); hb && !hb->stopped) {
    evosip::fuzz::check(!hb->by.empty() && !hb->address.empty());
  }
  return 0;
}
