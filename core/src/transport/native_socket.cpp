#include "native_socket.hpp"

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <stdexcept>
#include <string>

#include <boost/asio/ip/address.hpp>

namespace evosip::transport {

namespace asio = boost::asio;

namespace {

constexpr int kSocketBufferBytes = 4 * 1024 * 1024;

}  // namespace

Endpoint fromSockaddr(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET6) {
    sockaddr_in6 s6;
    std::memcpy(&s6, &ss, sizeof(s6));
    asio::ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), &s6.sin6_addr, bytes.size());
    return Endpoint{asio::ip::address_v6(bytes, s6.sin6_scope_id), ntohs(s6.sin6_port)};
  }
  sockaddr_in s4;
  std::memcpy(&s4, &ss, sizeof(s4));
  return Endpoint{asio::ip::address_v4(ntohl(s4.sin_addr.s_addr)), ntohs(s4.sin_port)};
}

socklen_t toSockaddr(const Endpoint& ep, sockaddr_storage& ss) {
  if (ep.ip.is_v6()) {
    sockaddr_in6 s6{};
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons(ep.port);
    auto v6 = ep.ip.to_v6();
    auto bytes = v6.to_bytes();
    std::memcpy(&s6.sin6_addr, bytes.data(), bytes.size());
    s6.sin6_scope_id = v6.scope_id();
    std::memcpy(&ss, &s6, sizeof(s6));
    return sizeof(s6);
  }
  sockaddr_in s4{};
  s4.sin_family = AF_INET;
  s4.sin_port = htons(ep.port);
  s4.sin_addr.s_addr = htonl(ep.ip.to_v4().to_uint());
  std::memcpy(&ss, &s4, sizeof(s4));
  return sizeof(s4);
}

[[noreturn]] void throwBindError(const ListenSpec& spec, const boost::system::error_code& ec) {
  throw std::runtime_error("cannot listen on " + spec.str() + ": " + ec.message());
}

void setReusePort(int fd, const ListenSpec& spec) {
  int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    throwBindError(spec, boost::system::error_code(errno, boost::system::system_category()));
  }
}

void setFreeBind(int fd, const ListenSpec& spec) {
  int one = 1;
  // IP_FREEBIND sets the socket's flag for IPv6 sockets too (the flag is shared by both).
  if (::setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) != 0) {
    throwBindError(spec, boost::system::error_code(errno, boost::system::system_category()));
  }
}

// Large buffers absorb bursts; the kernel caps them at net.core.[rw]mem_max without CAP_NET_ADMIN.
void setBigBuffers(int fd) {
  int size = kSocketBufferBytes;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
}

}  // namespace evosip::transport
