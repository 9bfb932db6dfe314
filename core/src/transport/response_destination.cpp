#include <string>

#include <evosip/sip/response_address.hpp>
#include <evosip/transport/response_destination.hpp>

namespace evosip::transport {

Destination responseDestination(const Source& src, const sip::Via& via) {
  Destination to = responseDestination(src);
  if (src.protocol == Protocol::kUdp && !via.rport()) {
    to.remote.port = sip::sentByPort(via, "UDP");
  }
  return to;
}

Destination responseDestination(const Source& src) {
  return Destination{src.protocol, src.remote, src.connection};
}

Result<Destination> nextViaDestination(const sip::Via& via) {
  auto protocol = protocolFromName(via.transport);
  if (!protocol) {
    return tl::unexpected(protocol.error());
  }
  const sip::ViaAddress to = sip::responseAddress(via);
  auto ip = parseNumericHost(to.host);
  if (!ip) {
    return makeError(Errc::kParse, "next Via host '" + std::string(to.host) + "' is not numeric");
  }
  return Destination{*protocol, Endpoint{*ip, to.port}, {}};
}

}  // namespace evosip::transport
