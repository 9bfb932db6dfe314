// libFuzzer target: a stored call of the app as read from the shared store (app.state), which
// anyone with write access to the store controls.
#include <cstdint>
#include <string_view>

#include <evosip/app/call_record.hpp>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const evosip::app::CallRecordLimits limits;
  if (auto r = evosip::app::decodeCallRecord(text, limits)) {
    evosip::fuzz::check(!r->callId.empty() && !r->localTag.empty() && !r->remoteTag.empty());
    evosip::fuzz::check(r->routeSet.size() <= limits.maxRoutes);
    evosip::fuzz::check(r->params.size() <= limits.maxParams);
    evosip::fuzz::check(r->remoteSdp.size() <= limits.maxSdp);
    // What decodes encodes and decodes again to the same record.
    auto again = evosip::app::decodeCallRecord(evosip::app::encodeCallRecord(*r), limits);
    evosip::fuzz::check(again && again->callId == r->callId && again->routeSet == r->routeSet &&
                        again->sessionId == r->sessionId);
  } else {
    evosip::fuzz::check(!r.error().message.empty());
  }
  return 0;
}
