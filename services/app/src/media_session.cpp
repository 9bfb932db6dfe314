#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>

#include <evosip/app/media_session.hpp>
#include <evosip/rtp/packet.hpp>

namespace evosip::app {

namespace asio = boost::asio;

namespace {

bool toSockaddr(const std::string& ip, uint16_t port, sockaddr_storage& sa, socklen_t& len) {
  std::memset(&sa, 0, sizeof sa);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&sa);
  if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&sa);
  if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return true;
  }
  len = 0;
  return false;
}

// Whether a packet's source is the address and port a call latched to.
bool sameSource(const sockaddr_storage& a, socklen_t aLen, const sockaddr_storage& b,
                socklen_t bLen) {
  if (aLen != bLen || a.ss_family != b.ss_family) {
    return false;
  }
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port &&
           std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
  }
  return false;
}

// A socket bound to address:port; -errno when no socket could be made, kTaken when the port
// cannot be bound (another process holds it).
constexpr int kTaken = -1'000'000;
int bindUdp(sockaddr_storage local, socklen_t len, uint16_t port) {
  const int fd = ::socket(local.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -errno;
  }
  if (local.ss_family == AF_INET6) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    reinterpret_cast<sockaddr_in6*>(&local)->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(&local)->sin_port = htons(port);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), len) != 0) {
    ::close(fd);
    return kTaken;
  }
  return fd;
}

}  // namespace

Result<void> MediaSession::open(const std::string& address, rtp::PortAllocator& ports) {
  sockaddr_storage local{};
  socklen_t len = 0;
  if (!toSockaddr(address, 0, local, len)) {
    return makeError(Errc::kInvalid, "app.rtp_address: not an IP address");
  }
  // Ports another process holds stay taken until a free one is found, so none is tried twice.
  std::vector<uint16_t> busy;
  auto giveBack = [&] {
    for (uint16_t p : busy) {
      ports.release(p);
    }
  };
  for (;;) {
    auto port = ports.allocate();
    if (!port) {
      giveBack();
      return makeError(Errc::kUnavailable, "out of RTP ports");
    }
    const int fd = bindUdp(local, len, *port);
    if (fd == kTaken) {
      busy.push_back(*port);  // taken by another process: try another one
      continue;
    }
    giveBack();
    if (fd < 0) {
      ports.release(*port);
      return makeError(Errc::kIo, fmt::format("socket: {}", std::strerror(-fd)));
    }
    boost::system::error_code ec;
    sock_.assign(local.ss_family == AF_INET6 ? asio::ip::udp::v6() : asio::ip::udp::v4(), fd, ec);
    if (ec) {
      ::close(fd);
      ports.release(*port);
      return makeError(Errc::kIo, "assign: " + ec.message());
    }
    fd_ = fd;
    port_ = *port;
    return {};
  }
}

// ---- receiving ------------------------------------------------------------------------------

std::optional<std::span<const uint8_t>> MediaSession::receive(std::span<uint8_t> buffer) {
  sockaddr_storage from{};
  socklen_t fromLen = sizeof from;
  auto datagram = readDatagram(buffer, from, fromLen);
  if (!datagram) {
    return std::nullopt;
  }
  if (!isMedia(*datagram) || !admitSource(from, fromLen)) {
    return std::span<const uint8_t>();
  }
  return datagram;
}

std::optional<std::span<const uint8_t>> MediaSession::readDatagram(std::span<uint8_t> buffer,
                                                                   sockaddr_storage& from,
                                                                   socklen_t& len) {
  const ssize_t n = ::recvfrom(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT,
                               reinterpret_cast<sockaddr*>(&from), &len);
  if (n < 0) {
    return std::nullopt;
  }
  return std::span<const uint8_t>(buffer.data(), static_cast<size_t>(n));
}

// RTP or RTCP: anything else is neither a sign of life nor an address to send to.
bool MediaSession::isMedia(std::span<const uint8_t> datagram) {
  return rtp::looksLikeRtcp(datagram) || rtp::parseRtp(datagram).has_value();
}

// After the latch only the peer counts (no digits, no voicemail audio, no sign of life from
// anyone else); before it, once the stream started, the first source is the peer (symmetric RTP:
// a NATed phone, a relay), and only it from now on.
bool MediaSession::admitSource(const sockaddr_storage& from, socklen_t len) {
  if (latched_) {
    if (!sameSource(from, len, dest_, destLen_)) {
      return false;
    }
  } else if (started_) {
    std::memcpy(&dest_, &from, len);
    destLen_ = len;
    latched_ = true;
  }
  if (latched_) {
    heard_ = true;
  }
  return true;
}

// ---- sending --------------------------------------------------------------------------------

void MediaSession::start() {
  packetizer_.emplace(rtp::PacketizerSettings{negotiated.payloadType});
  started_ = true;
  aimAtOffer();
}

void MediaSession::aimAtOffer() {
  if (latched_) {
    return;
  }
  if (!toSockaddr(negotiated.remoteAddress, negotiated.remotePort, dest_, destLen_)) {
    destLen_ = 0;
  }
}

bool MediaSession::update(const Negotiated& n) {
  const bool moved =
      n.remoteAddress != negotiated.remoteAddress || n.remotePort != negotiated.remotePort;
  if (packetizer_ && n.payloadType != negotiated.payloadType) {
    // Another codec or payload type: a new stream (SSRC) in it.
    packetizer_.emplace(rtp::PacketizerSettings{n.payloadType});
  }
  negotiated = n;
  if (moved) {
    latched_ = false;
    heard_ = false;  // the new address has to answer too
    aimAtOffer();
  }
  marker_ = true;
  return moved;
}

std::optional<size_t> MediaSession::packetize(std::span<const uint8_t> payload, uint32_t samples,
                                              std::span<uint8_t> out) {
  if (destLen_ == 0 || !packetizer_) {
    return std::nullopt;
  }
  if (marker_) {
    packetizer_->startTalkspurt();
    marker_ = false;
  }
  auto size = packetizer_->packetize(payload, samples, out);
  if (!size) {
    return std::nullopt;
  }
  return *size;
}

MediaSession::Sent MediaSession::sendNow(std::span<const uint8_t> payload, uint32_t samples) {
  std::array<uint8_t, rtp::kRtpHeaderSize + 1024> buf;
  auto size = packetize(payload, samples, buf);
  if (!size) {
    return Sent::kNothing;
  }
  const ssize_t r = ::sendto(fd_, buf.data(), *size, MSG_DONTWAIT,
                             reinterpret_cast<const sockaddr*>(&dest_), destLen_);
  return r < 0 ? Sent::kFailed : Sent::kSent;
}

bool MediaSession::addTo(PacingThread::Tick& tick, std::span<const uint8_t> payload,
                         uint32_t samples) {
  std::array<uint8_t, rtp::kRtpHeaderSize + 1024> buf;
  auto size = packetize(payload, samples, buf);
  if (!size || !PacingThread::add(tick, fd_, reinterpret_cast<const sockaddr*>(&dest_), destLen_,
                                  std::span<const uint8_t>(buf.data(), *size))) {
    return false;
  }
  sentBelow_ = tick.index + 1;
  return true;
}

void MediaSession::skip(uint32_t samples, bool newTalkspurt) {
  if (packetizer_) {
    packetizer_->skip(samples);
  }
  marker_ = marker_ || newTalkspurt;
}

std::optional<MediaSession::Pending> MediaSession::close(uint64_t senderBelow,
                                                         rtp::PortAllocator& ports) {
  if (!sock_.is_open()) {
    ports.release(port_);
    return std::nullopt;
  }
  boost::system::error_code ec;
  if (sentBelow_ > senderBelow) {
    // Packets of the call still wait for their tick: the descriptor (not to be reused by
    // another socket meanwhile) and the port stay until they are out.
    const int fd = sock_.release(ec);
    if (!ec) {
      return Pending{fd, port_, sentBelow_};
    }
  }
  sock_.close(ec);
  ports.release(port_);
  return std::nullopt;
}

}  // namespace evosip::app
