#pragma once
// The Via a sender puts on top of a request it sends (RFC 3261 8.1.1.7 for a client, 16.6 item 8
// for a proxy): "SIP/2.0/<transport> <sent-by>;branch=<branch>", with ";rport" when the sender
// asks for its responses at the port it sends from (RFC 3581 section 3). Parameters of the
// sender's own (a flow token, a marker) are appended after it.

#include <cstdint>
#include <string>
#include <string_view>

namespace evosip::sip {

enum class AskRport : bool { kNo, kYes };

// `transport`: "UDP", "TCP", "TLS", ... as written in the Via; `sentBy`: host[:port] as in a URI
// (an IPv6 host in brackets).
void appendVia(std::string& out, std::string_view transport, std::string_view sentBy,
               std::string_view branch, AskRport rport = AskRport::kNo);

// The same with the port apart: sent-by is host:port.
void appendVia(std::string& out, std::string_view transport, std::string_view host, uint16_t port,
               std::string_view branch, AskRport rport = AskRport::kNo);

}  // namespace evosip::sip
