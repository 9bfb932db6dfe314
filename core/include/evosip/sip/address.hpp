#pragma once
// name-addr / addr-spec (From, To, Contact, Route, Record-Route, Path, Refer-To) and Via.

#include <cstdint>
#include <optional>
#include <string_view>

#include <evosip/base/result.hpp>
#include <evosip/sip/method.hpp>
#include <evosip/sip/params.hpp>
#include <evosip/sip/uri.hpp>

namespace evosip::sip {

// One element of From/To/Contact/Route/...: [display-name] <uri> *(;param) or addr-spec
// *(;param). In the addr-spec form, parameters after the URI are header parameters (RFC 3261
// 20.10), not URI parameters.
struct NameAddr {
  std::string_view displayName;  // trimmed, quotes kept as written
  std::string_view uriText;      // inside <> or the addr-spec
  Uri uri;
  ParamList params;  // header params (tag, expires, q, ...)
  bool angleBrackets = false;
  bool star = false;      // Contact: *
  std::string_view text;  // the whole element

  std::optional<std::string_view> tag() const { return params.get("tag"); }
};

// Parses one element (already split by ValueSplitter for list headers). "*" gives star=true.
Result<NameAddr> parseNameAddr(std::string_view text);

// The tag of a From or To value (Message::from(), Message::to()); "" when the header is missing,
// unreadable or has no tag (RFC 3261 19.3: a tag is never empty).
std::string_view tagOf(const Result<NameAddr>& na);

// What a next hop's text is (RFC 3261 16.6 items 6-7).
enum class HopText {
  kRoute,  // a Route value: a name-addr, whose parameters after '>' are the route's
  kUri,    // a Request-URI or a target's URI: a bare URI, every parameter its own
};

// The URI of a next hop. A bare URI is not read as an addr-spec: there its ";transport=",
// ";maddr=" and ";lr" would be header parameters and lost (RFC 3263 4.1 needs the transport).
Result<Uri> parseHopUri(std::string_view text, HopText kind);

// One Via value (RFC 3261 20.42, RFC 3581 rport).
struct Via {
  std::string_view protocolName;     // "SIP"
  std::string_view protocolVersion;  // "2.0"
  std::string_view transport;        // "UDP", "TCP", "TLS", "WS", "WSS", ... as written
  std::string_view host;             // IPv6 without brackets
  std::string_view hostText;         // as written
  HostType hostType = HostType::kNone;
  uint16_t port = 0;  // 0 = not given
  ParamList params;
  std::string_view text;  // the whole value
  // The first of each parameter a proxy reads, found by parseVia while it checks them (as
  // params.get(name) would return it).
  struct Known {
    std::optional<std::string_view> branch, received, rport, maddr, ttl;
  } known;

  std::optional<std::string_view> branch() const { return known.branch; }
  std::optional<std::string_view> received() const { return known.received; }
  // rport: nullopt when absent, "" when present without a value.
  std::optional<std::string_view> rport() const { return known.rport; }
  std::optional<std::string_view> maddr() const { return known.maddr; }
  std::optional<std::string_view> ttl() const { return known.ttl; }
  // RFC 3261 magic cookie present.
  bool rfc3261Branch() const;
};

Result<Via> parseVia(std::string_view text);

struct CSeq {
  uint32_t number = 0;
  Method method = Method::kOther;
  std::string_view methodText;
};

Result<CSeq> parseCSeq(std::string_view value);

}  // namespace evosip::sip
