#pragma once
// Where responses go on the wire (RFC 3261 18.2.2, RFC 3581 section 4), for the two who send
// them: the server of a request, and a proxy forwarding a response to the next Via. The Via
// rules themselves are in <evosip/sip/response_address.hpp>.

#include <evosip/base/result.hpp>
#include <evosip/sip/address.hpp>
#include <evosip/sip/editor.hpp>
#include <evosip/sip/message.hpp>
#include <evosip/transport/sip_transport.hpp>

namespace evosip::transport {

// The responses to a request received from `src` with top Via `via`: over a stream, its
// connection. Over UDP, the source address (the received rule: the sent-by host is not
// trusted), and the source port when rport was asked for, else the sent-by port (5060 when
// absent).
Destination responseDestination(const Source& src, const sip::Via& via);

// The same for a request whose Via cannot be read: back to the source as it came.
Destination responseDestination(const Source& src);

// Where a proxy sends a response whose next Via is `via`: received (else the sent-by host),
// rport (else the sent-by port, else the transport's default), over the Via's transport.
// Numeric hosts only: a name or an unknown transport is an error.
Result<Destination> nextViaDestination(const sip::Via& via);

// What the receiver of a request writes into its sender's Via (RFC 3261 18.2.1, RFC 3581 4):
// received= when the source IP is not the sent-by host (a name, another address: a NAT, or an
// anycast address the sender cannot receive on) or when rport was asked for, and the source
// port into an empty rport. Responses sent statelessly later (a 2xx retransmission) then reach
// the sender where the first one did. `viaOfMsg` is `msg`'s top Via; `buf` is scratch space.
void stampReceived(sip::MessageEditor& edit, const sip::Message& msg, const sip::Via& viaOfMsg,
                   const Endpoint& source, std::string& buf);

}  // namespace evosip::transport
