#include <algorithm>
#include <array>
#include <optional>
#include <string>

#include <evosip/base/strings.hpp>
#include <evosip/sip/uri.hpp>
#include <evosip/transport/address.hpp>

namespace evosip::transport {

namespace {

Result<uint16_t> parsePort(std::string_view text, std::string_view whole) {
  auto port = parseDecimal(text, 65535);
  if (!port) {
    return makeError(Errc::kParse, "bad port in '" + std::string(whole) + "'");
  }
  return static_cast<uint16_t>(*port);
}

uint16_t defaultPortFor(Protocol p) {
  switch (p) {
    case Protocol::kTls:
      return 5061;
    case Protocol::kWs:
      return 80;
    case Protocol::kWss:
      return 443;
    default:
      return 5060;
  }
}

}  // namespace

std::string_view protocolName(Protocol p) {
  switch (p) {
    case Protocol::kUdp:
      return "udp";
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kTls:
      return "tls";
    case Protocol::kWs:
      return "ws";
    case Protocol::kWss:
      return "wss";
  }
  return "udp";
}

std::string_view viaTransportName(Protocol p) {
  switch (p) {
    case Protocol::kUdp:
      return "UDP";
    case Protocol::kTcp:
      return "TCP";
    case Protocol::kTls:
      return "TLS";
    case Protocol::kWs:
      return "WS";
    case Protocol::kWss:
      return "WSS";
  }
  return "UDP";
}

Result<Protocol> protocolFromName(std::string_view name) {
  for (Protocol p :
       {Protocol::kUdp, Protocol::kTcp, Protocol::kTls, Protocol::kWs, Protocol::kWss}) {
    if (iequals(name, protocolName(p))) {
      return p;
    }
  }
  return makeError(Errc::kParse, "unknown transport '" + std::string(name) + "'");
}

namespace {

// A dotted quad as inet_pton reads it (four decimal octets, no leading zeros), without the copy
// into a C string it needs: every request's Via and Route hosts come through here.
std::optional<boost::asio::ip::address_v4> dottedQuad(std::string_view s) {
  uint32_t value = 0;
  size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= s.size() || s[i] != '.') {
        return std::nullopt;
      }
      ++i;
    }
    const size_t start = i;
    unsigned octet = 0;
    while (i < s.size() && i - start < 3 && s[i] >= '0' && s[i] <= '9') {
      octet = octet * 10 + static_cast<unsigned>(s[i] - '0');
      ++i;
    }
    const size_t digits = i - start;
    if (digits == 0 || octet > 255 || (digits > 1 && s[start] == '0')) {
      return std::nullopt;
    }
    value = (value << 8) | octet;
  }
  if (i != s.size()) {
    return std::nullopt;
  }
  return boost::asio::ip::address_v4(value);
}

}  // namespace

void appendIp(std::string& out, const boost::asio::ip::address& ip) {
  if (!ip.is_v4()) {
    out.append(ip.to_string());
    return;
  }
  const auto b = ip.to_v4().to_bytes();
  for (size_t i = 0; i < b.size(); ++i) {
    if (i > 0) {
      out.push_back('.');
    }
    const unsigned v = b[i];
    if (v >= 100) {
      out.push_back(static_cast<char>('0' + v / 100));
    }
    if (v >= 10) {
      out.push_back(static_cast<char>('0' + v / 10 % 10));
    }
    out.push_back(static_cast<char>('0' + v % 10));
  }
}

Result<boost::asio::ip::address> parseNumericHost(std::string_view host) {
  if (auto v4 = dottedQuad(host)) {
    return boost::asio::ip::address(*v4);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (!sip::isIpv6(host)) {
      return makeError(Errc::kParse, "not an IPv6 address in brackets");
    }
  } else if (!sip::isIpv4(host) && !sip::isIpv6(host)) {
    return makeError(Errc::kParse, "not a numeric host");
  }
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(std::string(host), ec);
  if (ec) {
    return makeError(Errc::kParse, "not a numeric host");
  }
  return ip;
}

std::string Endpoint::hostForUri() const {
  if (ip.is_v6()) {
    return "[" + ip.to_string() + "]";
  }
  std::string out;
  appendIp(out, ip);
  return out;
}

std::string Endpoint::str() const {
  return hostForUri() + ":" + std::to_string(port);
}

Result<Endpoint> parseEndpoint(std::string_view text, uint16_t defaultPort) {
  std::string_view t = trim(text);
  if (t.empty()) {
    return makeError(Errc::kParse, "empty address");
  }
  std::string host;
  std::string_view portText;
  bool v6 = false;
  bool hasPort = false;
  if (t.front() == '[') {
    size_t close = t.find(']');
    if (close == std::string_view::npos) {
      return makeError(Errc::kParse, "missing ']' in '" + std::string(t) + "'");
    }
    host = std::string(t.substr(1, close - 1));
    v6 = true;
    std::string_view rest = t.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return makeError(Errc::kParse, "unexpected text after ']' in '" + std::string(t) + "'");
      }
      portText = rest.substr(1);
      hasPort = true;
    }
  } else {
    size_t first = t.find(':');
    if (first != std::string_view::npos && t.find(':', first + 1) != std::string_view::npos) {
      host = std::string(t);  // a bare IPv6 address: no port can follow without brackets
      v6 = true;
    } else if (first != std::string_view::npos) {
      host = std::string(t.substr(0, first));
      portText = t.substr(first + 1);
      hasPort = true;
    } else {
      host = std::string(t);
    }
  }
  Endpoint ep;
  boost::system::error_code ec;
  if (v6) {
    ep.ip = boost::asio::ip::make_address_v6(host, ec);
  } else {
    ep.ip = boost::asio::ip::make_address_v4(host, ec);
  }
  if (ec) {
    return makeError(Errc::kParse, "not a numeric IP address: '" + std::string(t) + "'");
  }
  ep.port = defaultPort;
  if (hasPort) {
    auto port = parsePort(portText, t);
    if (!port) {
      return tl::unexpected(port.error());
    }
    ep.port = *port;
  }
  return ep;
}

std::string ListenSpec::str() const {
  return std::string(protocolName(protocol)) + ":" + endpoint.str();
}

Result<ListenSpec> parseListenSpec(std::string_view text) {
  std::string_view t = trim(text);
  size_t colon = t.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return makeError(Errc::kParse,
                     "listen address '" + std::string(t) + "' must look like udp:1.2.3.4:5060");
  }
  auto protocol = protocolFromName(t.substr(0, colon));
  if (!protocol) {
    return makeError(Errc::kParse, "unknown transport in listen address '" + std::string(t) + "'");
  }
  auto ep = parseEndpoint(t.substr(colon + 1), defaultPortFor(*protocol));
  if (!ep) {
    return tl::unexpected(ep.error());
  }
  return ListenSpec{*protocol, *ep};
}

}  // namespace evosip::transport
