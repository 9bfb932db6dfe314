#pragma once
// A UDP endpoint as the kernel gives it (sockaddr_in / sockaddr_in6): compared and copied on the
// packet path without conversions.

#include <cstdint>
#include <cstring>
#include <netinet/in.h>
#include <string>
#include <string_view>
#include <sys/socket.h>

#include <evosip/base/result.hpp>

namespace evosip::media {

struct Endpoint {
  sockaddr_storage sa{};
  socklen_t len = 0;  // 0: unknown

  bool known() const { return len != 0; }
  bool isV6() const { return sa.ss_family == AF_INET6; }
  // 0.0.0.0 / :: (hold in old SDP style, or no address yet).
  bool isUnspecified() const;

  // "192.0.2.1" / "2001:db8::1" (no brackets) and a port.
  static Result<Endpoint> parse(std::string_view ip, uint16_t port);
  static Endpoint fromSockaddr(const sockaddr* addr, socklen_t addrLen);

  std::string address() const;  // without port
  uint16_t port() const;
  std::string str() const;     // "1.2.3.4:5" / "[v6]:5"
  const char* family() const;  // "IPv4" / "IPv6" (rtpengine's query wording)
  const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&sa); }

  // Same family, address and port.
  bool sameAs(const sockaddr* other, socklen_t otherLen) const {
    if (len == 0 || other->sa_family != sa.ss_family) {
      return false;
    }
    if (sa.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&sa);
      const auto* b = reinterpret_cast<const sockaddr_in*>(other);
      return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (otherLen < static_cast<socklen_t>(sizeof(sockaddr_in6))) {
      return false;
    }
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&sa);
    const auto* b = reinterpret_cast<const sockaddr_in6*>(other);
    return a->sin6_port == b->sin6_port &&
           std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(in6_addr)) == 0;
  }
  // Same family and address, any port.
  bool sameAddressAs(const sockaddr* other, socklen_t otherLen) const {
    if (len == 0 || other->sa_family != sa.ss_family) {
      return false;
    }
    if (sa.ss_family == AF_INET) {
      return reinterpret_cast<const sockaddr_in*>(&sa)->sin_addr.s_addr ==
             reinterpret_cast<const sockaddr_in*>(other)->sin_addr.s_addr;
    }
    if (otherLen < static_cast<socklen_t>(sizeof(sockaddr_in6))) {
      return false;
    }
    return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&sa)->sin6_addr,
                       &reinterpret_cast<const sockaddr_in6*>(other)->sin6_addr,
                       sizeof(in6_addr)) == 0;
  }
  bool operator==(const Endpoint& o) const {
    return (len == 0 && o.len == 0) || (o.len != 0 && sameAs(o.addr(), o.len));
  }
  void assign(const sockaddr* other, socklen_t otherLen) {
    std::memcpy(&sa, other, otherLen);
    len = otherLen;
  }
};

}  // namespace evosip::media
