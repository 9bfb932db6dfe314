#include <arpa/inet.h>

#include <fmt/format.h>

#include <evosip/media/endpoint.hpp>

namespace evosip::media {

bool Endpoint::isUnspecified() const {
  if (sa.ss_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&sa)->sin_addr.s_addr == 0;
  }
  if (sa.ss_family == AF_INET6) {
    return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&sa)->sin6_addr);
  }
  return true;
}

Result<Endpoint> Endpoint::parse(std::string_view ip, uint16_t port) {
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
    ip = ip.substr(1, ip.size() - 2);
  }
  std::string text(ip);
  Endpoint e;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&e.sa);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    e.len = sizeof(sockaddr_in);
    return e;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&e.sa);
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    e.len = sizeof(sockaddr_in6);
    return e;
  }
  return makeError(Errc::kParse, fmt::format("'{}' is not an IPv4 or IPv6 address", text));
}

Endpoint Endpoint::fromSockaddr(const sockaddr* addr, socklen_t addrLen) {
  Endpoint e;
  e.assign(addr, addrLen);
  return e;
}

std::string Endpoint::address() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&sa)->sin_addr, buf, sizeof buf);
  } else if (sa.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&sa)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

uint16_t Endpoint::port() const {
  if (sa.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&sa)->sin_port);
  }
  if (sa.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&sa)->sin6_port);
  }
  return 0;
}

std::string Endpoint::str() const {
  if (!known()) {
    return "-";
  }
  return isV6() ? fmt::format("[{}]:{}", address(), port())
                : fmt::format("{}:{}", address(), port());
}

const char* Endpoint::family() const {
  return isV6() ? "IPv6" : "IPv4";
}

}  // namespace evosip::media
