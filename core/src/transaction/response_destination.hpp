#pragma once
// Where the transaction layer sends the responses to a request (private).

#include <evosip/sip/address.hpp>
#include <evosip/transport/sip_transport.hpp>

namespace evosip::transaction {

// Where the responses to a request received from `src` with top Via `via` go (RFC 3261 18.2.2,
// RFC 3581): the connection of a stream; over UDP the source address, with the sent-by port
// (5060 when absent) unless rport was asked for.
transport::Destination responseDestination(const transport::Source& src, const sip::Via& via);

}  // namespace evosip::transaction
