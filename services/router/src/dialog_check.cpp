#include <evosip/base/strings.hpp>
#include <evosip/router/dialog_check.hpp>
#include <evosip/sip/address.hpp>

namespace evosip::router {
namespace {

// Host and port of a Route value or a bare URI.
struct HostPort {
  std::string_view host;
  uint16_t port = 0;
};

std::optional<HostPort> hostPortOf(std::string_view text) {
  auto na = sip::parseNameAddr(text);
  if (!na || na->star || !na->uri.isSip()) {
    return std::nullopt;
  }
  return HostPort{na->uri.host, na->uri.portOrDefault()};
}

bool sameHop(const HostPort& a, std::string_view text) {
  auto b = hostPortOf(text);
  return b && b->port == a.port && iequals(b->host, a.host);
}

}  // namespace

bool hopOfDialog(const store::DialogRecord& dialog, std::string_view nextHop, bool fromCaller) {
  auto hop = hostPortOf(nextHop);
  if (!hop) {
    return false;
  }
  for (const auto* set : {&dialog.callerRouteSet, &dialog.calleeRouteSet}) {
    for (const auto& r : *set) {
      if (sameHop(*hop, r)) {
        return true;
      }
    }
  }
  // The remote target of the other party only: a party's own Contact is where it is, never a
  // destination it may send its requests to through us.
  return sameHop(*hop, fromCaller ? dialog.calleeContact : dialog.callerContact);
}

InDialogCheck checkInDialog(const sip::Message& request, std::string_view nextHop,
                            const std::vector<store::DialogRecord>& dialogs) {
  InDialogCheck out;
  const std::string_view from = tagOf(request.from());
  const std::string_view to = tagOf(request.to());
  if (from.empty() || to.empty() || request.callId().empty()) {
    out.verdict = InDialogVerdict::kMalformed;
    return out;
  }
  for (const auto& d : dialogs) {
    if (d.id.callId != request.callId()) {
      continue;
    }
    const bool forward = d.id.fromTag == from && d.id.toTag == to;
    if (!forward && !(d.id.fromTag == to && d.id.toTag == from)) {
      continue;
    }
    out.dialog = &d;
    out.fromCaller = forward;
    out.verdict =
        hopOfDialog(d, nextHop, forward) ? InDialogVerdict::kForward : InDialogVerdict::kForeignHop;
    if (out.verdict == InDialogVerdict::kForward) {
      return out;
    }
  }
  return out;
}

}  // namespace evosip::router
