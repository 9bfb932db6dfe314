#pragma once
// What media anchoring decides from a message (private to the router): whether it carries SDP,
// where its caller is (NAT), the ng flags of an offer or answer, a relay's address; and the tag
// of a From or To.

#include <string>
#include <string_view>

#include <evosip/base/result.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/bencode/bencode.hpp>
#include <evosip/sip/address.hpp>
#include <evosip/sip/message.hpp>
#include <evosip/sip/params.hpp>
#include <evosip/sip/response_address.hpp>
#include <evosip/transport/address.hpp>

namespace evosip::router::detail {

using sip::tagOf;

inline bool hasSdp(const sip::Message& m) {
  if (m.body().empty()) {
    return false;
  }
  const auto* ct = m.find(sip::HeaderId::kContentType);
  return ct != nullptr && istartsWith(trim(ct->value), "application/sdp");
}

// The UA's own Via: the last value of the last Via header (the edge wrote received/rport on it).
inline Result<sip::Via> uaVia(const sip::Message& m) {
  std::string_view last;
  for (const auto& h : m.headers()) {
    if (h.id == sip::HeaderId::kVia) {
      sip::ValueSplitter values(h.value);
      while (auto v = values.next()) {
        last = *v;
      }
    }
  }
  return sip::parseVia(last);
}

// Where a caller's requests come from, read once from the UA's Via (the last one, where the edge
// wrote received/rport) and from the SDP.
struct CallerAddress {
  // The edge saw the requests come from elsewhere than the Via says (received / rport), or the
  // SDP names an address other than the one the edge saw.
  bool behindNat = false;
  // received (else the host) of the UA's Via; empty when it is not a numeric address.
  std::string_view source;
};

// Whether the SDP's c= lines (anywhere in the body) name an address other than `seen`.
inline bool sdpElsewhere(std::string_view body, std::string_view seen) {
  for (size_t pos = body.find("c=IN IP"); pos != std::string_view::npos;
       pos = body.find("c=IN IP", pos + 1)) {
    std::string_view rest = body.substr(pos + 8);  // after "c=IN IP4"
    rest = trim(rest.substr(0, rest.find_first_of("\r\n")));
    rest = rest.substr(0, rest.find('/'));
    if (!rest.empty() && rest != seen && rest != "0.0.0.0" && rest != "::") {
      return true;
    }
  }
  return false;
}

inline CallerAddress callerAddress(const sip::Message& m) {
  CallerAddress out;
  auto via = uaVia(m);
  if (!via) {
    return out;
  }
  const auto received = via->received();
  const std::string_view seen = received.value_or(via->host);
  if (sip::isIpv4(seen) || sip::isIpv6(seen)) {
    out.source = seen;
  }
  if (received && *received != via->host) {
    out.behindNat = true;
    return out;
  }
  if (auto rport = sip::rportValue(*via); rport && *rport != sip::sentByPort(*via)) {
    out.behindNat = true;
    return out;
  }
  out.behindNat = sdpElsewhere(m.body(), seen);
  return out;
}

// Offer/answer flags the router always sends: the relay's address in o= and c=, no ICE
// candidates that would let the phones bypass it, and `strict source` (after the relay latched
// to a peer, packets from any other source are dropped: no injection into the call). For a
// NATed UA, `SIP source address` with the address the edge saw (`received-from`): the relay
// ignores the private address of its SDP and accepts media from where its SIP came from.
inline void addMediaFlags(bencode::Value& cmd, std::string_view natSource = {}) {
  bencode::Value replace = bencode::Value::makeList();
  replace.add("origin").add("session-connection");
  cmd.set("replace", std::move(replace));
  cmd.set("ICE", "remove");
  bencode::Value flags = bencode::Value::makeList();
  flags.add("strict source");
  if (!natSource.empty()) {
    flags.add("SIP source address");
    bencode::Value from = bencode::Value::makeList();
    from.add(sip::isIpv6(natSource) ? "IP6" : "IP4").add(natSource);
    cmd.set("received-from", std::move(from));
  }
  cmd.set("flags", std::move(flags));
}

inline Result<transport::Endpoint> relayEndpoint(std::string_view uri) {
  if (uri.starts_with("udp:")) {
    uri.remove_prefix(4);
  }
  return transport::parseEndpoint(uri, 2223);
}

}  // namespace evosip::router::detail
