// libFuzzer target: the router's in-dialog validation (services/router/src/dialog_check.cpp),
// which decides from a request an outsider wrote whether it may be forwarded: the request, the
// next hop it names and a dialog record whose route set and contacts come from other outsiders'
// messages. The input is split at NUL bytes: the SIP request, the next hop, then the record's
// Call-ID, From tag, To tag, caller contact, callee contact and route-set entries.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/router/dialog_check.hpp>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  while (parts.size() < 12) {
    const size_t nul = text.find('\0');
    parts.push_back(text.substr(0, nul));
    if (nul == std::string_view::npos) {
      break;
    }
    text = text.substr(nul + 1);
  }
  parts.resize(12);
  auto msg = evosip::sip::Message::parse(parts[0]);
  if (!msg || !msg->isRequest()) {
    return 0;
  }
  evosip::store::DialogRecord d;
  d.id = {std::string(parts[2]), std::string(parts[3]), std::string(parts[4])};
  d.callerContact = std::string(parts[5]);
  d.calleeContact = std::string(parts[6]);
  for (size_t i = 7; i < parts.size(); ++i) {
    if (!parts[i].empty()) {
      d.callerRouteSet.emplace_back(parts[i]);
    }
  }
  d.calleeRouteSet.assign(d.callerRouteSet.rbegin(), d.callerRouteSet.rend());
  const std::vector<evosip::store::DialogRecord> dialogs{d};
  const auto check = evosip::router::checkInDialog(*msg, parts[1], dialogs);
  using evosip::router::InDialogVerdict;
  if (check.verdict == InDialogVerdict::kForward || check.verdict == InDialogVerdict::kForeignHop) {
    // Only the record with the request's Call-ID and tags, and a forward only to one of its hops
    // a request in this direction may go to.
    evosip::fuzz::check(check.dialog == &dialogs[0]);
    evosip::fuzz::check(d.id.callId == msg->callId());
    // The direction is the record's: the caller's From tag, or the callee's.
    const auto from = msg->from();
    const std::string_view fromTag =
        from ? from->tag().value_or(std::string_view{}) : std::string_view{};
    evosip::fuzz::check(check.fromCaller == (fromTag == d.id.fromTag));
    evosip::fuzz::check((check.verdict == InDialogVerdict::kForward) ==
                        evosip::router::hopOfDialog(d, parts[1], check.fromCaller));
  } else {
    evosip::fuzz::check(check.dialog == nullptr);
  }
  return 0;
}
