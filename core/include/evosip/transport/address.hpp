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

// "1.2.3.4:5060", "[::1]:5060", "1.2.3.4" (port = defaultPort). Numeric addresses only.
Result<Endpoint> parseEndpoint(std::string_view text, uint16_t defaultPort = 5060);

struct ListenSpec {
  Protocol protocol = Protocol::kUdp;
  Endpoint endpoint;
  std::string str() const;  // "udp:1.2.3.4:5060"
};
Result<ListenSpec> parseListenSpec(std::string_view text);

// An address prefix (CIDR): "10.0.0.0/8", "2001:db8::/32", or one address ("192.0.2.7", "::1",
// a full-length prefix). Bits after the prefix length must be zero.
struct Network {
  boost::asio::ip::address base;
  uint8_t prefixLength = 0;

  bool contains(const boost::asio::ip::address& ip) const;
  std::string str() const;  // "10.0.0.0/8"
};
Result<Network> parseNetwork(std::string_view text);

// A set of networks (an operator's list of trusted sources). Small: a linear scan.
class NetworkList {
 public:
  NetworkList() = default;
  explicit NetworkList(std::vector<Network> networks) : networks_(std::move(networks)) {}
  // Every entry must parse; the error names the bad entry.
  static Result<NetworkList> parse(const std::vector<std::string>& texts);

  bool empty() const { return networks_.empty(); }
  bool contains(const boost::asio::ip::address& ip) const;
  const std::vector<Network>& networks() const { return networks_; }

 private:
  std::vector<Network> networks_;
};

}  // namespace evosip::transport
