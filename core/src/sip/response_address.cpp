#include <evosip/base/strings.hpp>
#include <evosip/sip/response_address.hpp>

namespace evosip::sip {

uint16_t defaultPort(std::string_view viaTransport) {
  return iequals(viaTransport, "TLS") ? kDefaultTlsPort : kDefaultPort;
}

uint16_t sentByPort(const Via& via) {
  return sentByPort(via, via.transport);
}

uint16_t sentByPort(const Via& via, std::string_view viaTransport) {
  return via.port != 0 ? via.port : defaultPort(viaTransport);
}

std::optional<uint16_t> rportValue(const Via& via) {
  const auto rport = via.rport();
  if (!rport || rport->empty()) {
    return std::nullopt;
  }
  const auto port = parseDecimal(*rport, 65535);
  if (!port || *port == 0) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(*port);
}

ViaAddress responseAddress(const Via& via) {
  ViaAddress to{via.host, sentByPort(via)};
  if (auto received = via.received(); received && !received->empty()) {
    std::string_view host = *received;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);  // RFC 5118 4.5
    }
    to.host = host;
  }
  if (auto port = rportValue(via)) {
    to.port = *port;
  }
  return to;
}

}  // namespace evosip::sip
