// libFuzzer target: what the Kubernetes API server sends the controller (EndpointSlice lists,
// watch events, Status objects, Leases). Decoding never throws and never crashes; whatever
// decodes stays within the documented bounds.
#include <cstdint>
#include <string_view>

#include <evosip/controller/kube_objects.hpp>

#include "fuzz_check.hpp"

using namespace evosip::controller;
using evosip::fuzz::check;

namespace {

void checkSlice(const EndpointSlice& s) {
  check(!s.name.empty() && s.name.size() <= kMaxNameBytes);
  check(s.endpoints.size() <= kMaxEndpointsPerSlice);
  check(s.ports.size() <= kMaxPortsPerSlice);
  for (const auto& e : s.endpoints) {
    check(e.addresses.size() <= kMaxAddressesPerEndpoint);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto list = parseSliceList(text)) {
    check(list->items.size() <= kMaxSlicesPerList);
    for (const auto& s : list->items) {
      checkSlice(s);
    }
  } else {
    check(!list.error().message.empty());
  }
  if (auto event = parseWatchEvent(text)) {
    const bool hasSlice = event->type == WatchEventType::kAdded ||
                          event->type == WatchEventType::kModified ||
                          event->type == WatchEventType::kDeleted;
    if (hasSlice) {
      checkSlice(event->slice);
    }
  }
  if (auto status = parseStatus(text)) {
    check(status->code >= 0 && status->code < 1000);
  }
  if (auto lease = parseLease(text)) {
    check(lease->durationS >= 0 && lease->holder.size() <= kMaxNameBytes);
  }
  return 0;
}
