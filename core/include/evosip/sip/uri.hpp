#pragma once
// SIP, SIPS and TEL URIs (RFC 3261 19.1, RFC 3966), IPv6 references (RFC 5118), as views.

#include <cstdint>
#include <string_view>

#include <evosip/base/result.hpp>
#include <evosip/sip/params.hpp>

namespace evosip::sip {

enum class UriScheme : uint8_t { kSip, kSips, kTel, kOther };
enum class HostType : uint8_t { kNone, kDomain, kIpv4, kIpv6 };

struct Uri {
  UriScheme scheme = UriScheme::kOther;
  std::string_view schemeText;  // as written
  std::string_view user;        // may contain escapes; for tel: the number
  std::string_view password;
  std::string_view host;        // IPv6 without brackets
  std::string_view hostText;    // as written (IPv6 with brackets)
  HostType hostType = HostType::kNone;
  uint16_t port = 0;            // 0 = not given
  ParamList params;             // after the first ';' of the URI (lr, transport, maddr, ...)
  std::string_view headers;     // after '?', raw
  std::string_view text;        // the whole URI

  bool isSip() const { return scheme == UriScheme::kSip || scheme == UriScheme::kSips; }
  bool looseRouting() const { return params.has("lr"); }
  // Port for transport when not given: 5061 for sips, 5060 otherwise.
  uint16_t portOrDefault() const { return port != 0 ? port : (scheme == UriScheme::kSips ? 5061 : 5060); }
};

// Parses an absolute URI. sip/sips fully; tel with its number and params; any other scheme
// (e.g. http) as kOther with only schemeText/text set. Never throws, never reads out of range.
Result<Uri> parseUri(std::string_view text);

// Textual IPv4 / IPv6 checks used by the URI and Via parsers.
bool isIpv4(std::string_view s);
bool isIpv6(std::string_view s);  // without brackets

}  // namespace evosip::sip
