#pragma once
// A non-blocking UDP socket on 127.0.0.1 at a port the OS chose: a phone or a media peer in
// tests that send and receive real datagrams over loopback.
#include <arpa/inet.h>
#include <cstdint>
#include <netinet/in.h>
#include <span>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>

namespace evosip::test {

class LoopbackUdp {
 public:
  LoopbackUdp() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)), port_(bindAny(fd_)) {}
  ~LoopbackUdp() { ::close(fd_); }
  LoopbackUdp(const LoopbackUdp&) = delete;
  LoopbackUdp& operator=(const LoopbackUdp&) = delete;

  uint16_t port() const { return port_; }

  // One datagram to 127.0.0.1:`to`.
  void sendTo(uint16_t to, std::span<const uint8_t> datagram) const {
    const sockaddr_in a = loopback(to);
    ::sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&a),
             sizeof a);
  }
  void sendTo(uint16_t to, std::string_view datagram) const {
    sendTo(to, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(datagram.data()),
                                        datagram.size()));
  }

  // One datagram that has arrived, or "" when none is waiting.
  std::string receive() const {
    char buf[2048];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
  }

  // A UDP port free on 127.0.0.1 when asked (the socket that held it is closed again).
  static uint16_t freePort() { return LoopbackUdp().port(); }

  // Whether UDP `port` of 127.0.0.1 can be bound (nothing holds it).
  static bool bindable(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    const sockaddr_in a = loopback(port);
    const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }

 private:
  static sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
  }
  static uint16_t bindAny(int fd) {
    sockaddr_in a = loopback(0);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
  }

  int fd_;
  uint16_t port_;
};

}  // namespace evosip::test
