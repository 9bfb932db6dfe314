#pragma once
// Transport addresses and listen specifications ("udp:127.0.0.1:5060", "tcp:[::1]:5060").

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include <evosip/base/result.hpp>

namespace evosip::transport {

enum class Protocol : uint8_t { kUdp, kTcp, kTls, kWs, kWss };

std::string_view protocolName(Protocol p);                 // "udp", "tcp", ...
std::string_view viaTransportName(Protocol p);             // "UDP", "TCP", "TLS", "WS", "WSS"
Result<Protocol> protocolFromName(std::string_view name);  // case-insensitive

struct Endpoint {
  boost::asio::ip::address ip;
  uint16_t port = 0;

  bool operator==(const Endpoint&) const = default;
  // "1.2.3.4:5060" or "[::1]:5060"
  std::string str() const;
  // host part as it goes into a SIP URI or Via: "1.2.3.4" or "[::1]"
  std::string hostForUri() const;
};

// Appends ip as text: a dotted quad, or an IPv6 address (RFC 5952, no brackets).
void appendIp(std::string& out, const boost::asio::ip::address& ip);

// A numeric host as SIP writes it (RFC 3261 25.1): an IPv4 address, or an IPv6 address with or
// without brackets. Names, scope ids, ports and anything else are errors.
Result<boost::asio::ip::address> parseNumericHost(std::string_view host);

// "1.2.3.4:5060", "[::1]:5060", "1.2.3.4" (port = defaultPort). Numeric addresses only.
Result<Endpoint> parseEndpoint(std::string_view text, uint16_t defaultPort = 5060);

struct ListenSpec {
  Protocol protocol = Protocol::kUdp;
  Endpoint endpoint;
  std::string str() const;  // "udp:1.2.3.4:5060"
};
Result<ListenSpec> parseListenSpec(std::string_view text);

}  // namespace evosip::transport
