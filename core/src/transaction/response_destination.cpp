#include "response_destination.hpp"

namespace evosip::transaction {

transport::Destination responseDestination(const transport::Source& src, const sip::Via& via) {
  transport::Destination to{src.protocol, src.remote, src.connection};
  if (src.protocol == transport::Protocol::kUdp && !via.rport()) {
    to.remote.port = via.port != 0 ? via.port : 5060;
  }
  return to;
}

}  // namespace evosip::transaction
