#pragma once
// Where a response goes, read from the Via of the request it answers (RFC 3261 18.2.2 and
// RFC 3581 section 4): received, rport, sent-by and the transport's default port.
//
// maddr is never followed: a response goes to where the request came from (or to what a proxy
// recorded there in received/rport), never to an address the request names for itself, so that
// no one can aim our responses at a third party (multicast SIP is not supported).

#include <cstdint>
#include <optional>
#include <string_view>

#include <evosip/sip/address.hpp>

namespace evosip::sip {

inline constexpr uint16_t kDefaultPort = 5060;     // sip: over UDP, TCP, WS (RFC 3261 19.1.2)
inline constexpr uint16_t kDefaultTlsPort = 5061;  // sips: / TLS

// The port a Via's transport ("UDP", "TCP", "TLS", ... any case) means when sent-by has none.
uint16_t defaultPort(std::string_view viaTransport);

// The sent-by port, else the default of `viaTransport` (of the Via's own transport when
// omitted).
uint16_t sentByPort(const Via& via);
uint16_t sentByPort(const Via& via, std::string_view viaTransport);

// The port of rport=N (RFC 3581): nullopt when rport is absent, has no value yet (the client's
// request: the server fills it in) or says 0 (no source port is 0).
std::optional<uint16_t> rportValue(const Via& via);

// The address a response goes to by the Via alone, as a proxy forwards a response to the next
// Via: the host of received (brackets removed), else of sent-by; the port of rport, else of
// sent-by, else the transport's default. The host may be a name: see transport's
// nextViaDestination for the numeric form.
struct ViaAddress {
  std::string_view host;
  uint16_t port = kDefaultPort;
};
ViaAddress responseAddress(const Via& via);

}  // namespace evosip::sip
