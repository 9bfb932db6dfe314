#pragma once
// Where responses go on the wire (RFC 3261 18.2.2, RFC 3581 section 4), for the two who send
// them: the server of a request, and a proxy forwarding a response to the next Via. The Via
// rules themselves are in <evosip/sip/response_address.hpp>.

#include <evosip/base/result.hpp>
#include <evosip/sip/address.hpp>
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

}  // namespace evosip::transport
