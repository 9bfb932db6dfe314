#pragma once
// What the transport asks of the kernel directly: sockaddr conversions for recvmmsg/sendmmsg
// and the socket options of listen sockets.

#include <sys/socket.h>

#include <boost/system/error_code.hpp>

#include <evosip/transport/address.hpp>

namespace evosip::transport {

Endpoint fromSockaddr(const sockaddr_storage& ss);
// Fills ss; returns the length of the address written.
socklen_t toSockaddr(const Endpoint& ep, sockaddr_storage& ss);

// Start-up errors: "cannot listen on <spec>: <reason>".
[[noreturn]] void throwBindError(const ListenSpec& spec, const boost::system::error_code& ec);
void setReusePort(int fd, const ListenSpec& spec);
// IP_FREEBIND: the bind succeeds while the address is not (yet) on an interface.
void setFreeBind(int fd, const ListenSpec& spec);
void setBigBuffers(int fd);

}  // namespace evosip::transport
