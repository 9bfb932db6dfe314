#include <string>

#include <fmt/format.h>

#include <evosip/base/strings.hpp>
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

namespace {

uint32_t offsetIn(const sip::Message& msg, std::string_view part) {
  return static_cast<uint32_t>(part.data() - msg.buffer().data());
}

}  // namespace

// The rport value goes in first: when rport is the last parameter both edits land on the same
// offset. The editor copies inserted text, so `buf` is free again after.
void stampReceived(sip::MessageEditor& edit, const sip::Message& msg, const sip::Via& viaOfMsg,
                   const Endpoint& source, std::string& buf) {
  const auto rport = viaOfMsg.rport();
  if (rport && rport->empty()) {
    uint32_t at = offsetIn(msg, viaOfMsg.text) + static_cast<uint32_t>(viaOfMsg.text.size());
    viaOfMsg.params.forEach([&](const sip::ParamList::Param& p) {
      if (iequals(p.name, "rport")) {
        at = offsetIn(msg, p.name) + static_cast<uint32_t>(p.name.size());
        return false;
      }
      return true;
    });
    edit.insertAt(at, fmt::format("={}", source.port));
  }
  auto viaIp = parseNumericHost(viaOfMsg.host);
  const bool needReceived = rport.has_value() || !viaIp || *viaIp != source.ip;
  buf.assign(";received=");
  appendIp(buf, source.ip);
  const std::string_view value = std::string_view(buf).substr(10);
  if (auto received = viaOfMsg.received(); received) {
    edit.replaceRange(offsetIn(msg, *received),
                      offsetIn(msg, *received) + static_cast<uint32_t>(received->size()), value);
  } else if (needReceived) {
    const uint32_t end = offsetIn(msg, viaOfMsg.text) + static_cast<uint32_t>(viaOfMsg.text.size());
    edit.insertAt(end, buf);
  }
}

}  // namespace evosip::transport
