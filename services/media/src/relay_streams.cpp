// The stream sockets of one worker's relay: a port pair per media slot from the worker's
// PortAllocator, a UDP socket per port bound to media.bind, watched by the worker's packet path
// (io_uring or epoll) until it is closed.
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <fmt/format.h>

#include <evosip/media/relay.hpp>

#include "call.hpp"
#include "io_uring_ring.hpp"

namespace evosip::media {

Result<std::shared_ptr<Stream>> Relay::openStream(const Endpoint& bindAddress, uint16_t port,
                                                  bool rtcp, bool freeBind) {
  auto s = std::make_shared<Stream>(port, rtcp);
  if (auto ok = bindStream(*s, bindAddress, freeBind); !ok) {
    return tl::unexpected(ok.error());
  }
  return s;
}

// A socket for the stream's port, watched by the packet path: a new stream, or one whose socket
// was released while the relay was fenced.
Result<void> Relay::bindStream(Stream& stream, const Endpoint& bindAddress, bool freeBind) {
  Stream* s = &stream;
  const uint16_t port = s->localPort;
  const int family = bindAddress.isV6() ? AF_INET6 : AF_INET;
  int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return makeError(Errc::kIo, fmt::format("socket: {}", std::strerror(errno)));
  }
  if (family == AF_INET6) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (freeBind || settings_.freeBind) {
    // Another relay's address, which may reach this host only once it is announced here.
    int one = 1;
    ::setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
  }
  Endpoint local = bindAddress;
  if (family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&local.sa)->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(&local.sa)->sin_port = htons(port);
  }
  if (::bind(fd, local.addr(), local.len) != 0) {
    const int err = errno;
    ::close(fd);
    return makeError(Errc::kIo, fmt::format("bind {}: {}", local.str(), std::strerror(err)));
  }
  s->fd = fd;
  if (!ringTried_) {
    startRing();  // here, on the worker thread: the ring's only submitter
  }
  if (ring_) {
    ring_->watch(*s);
    return {};
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = s;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;
    ::close(fd);
    s->fd = -1;
    return makeError(Errc::kIo, fmt::format("epoll_ctl: {}", std::strerror(err)));
  }
  return {};
}

void Relay::closeStream(Stream& s) {
  if (!s.closed) {
    s.closed = true;
    s.out = nullptr;
    releaseSocket(s);
  }
}

void Relay::releaseSocket(Stream& s) {
  if (s.fd < 0) {
    return;
  }
  if (ring_) {
    ring_->unwatch(s);
  }
  ::close(s.fd);  // also leaves the epoll set
  s.fd = -1;
}

Result<void> Relay::ensureSlot(Call& call, Leg& leg, size_t index) {
  while (leg.media.size() <= index) {
    leg.media.emplace_back();
  }
  MediaSlot& slot = leg.media[index];
  if (slot.rtp) {
    return {};
  }
  if (call.pairs >= 2 * static_cast<size_t>(settings_.maxStreams)) {
    // New tags on one Call-ID would otherwise add legs, and ports, without end.
    return makeError(Errc::kUnavailable, "Too many media streams in this call");
  }
  // Pairs another process holds stay taken until the end of the search, so that the random
  // allocator does not hand them out again.
  std::vector<uint16_t> taken;
  Result<void> result = makeError(Errc::kUnavailable, "Ran out of ports");
  const bool restored = call.bind.known();
  const Endpoint& where = restored ? call.bind : bindAddress_;
  while (auto port = ports_.allocate()) {
    auto rtp = openStream(where, *port, false, restored);
    auto rtcp = rtp ? openStream(where, static_cast<uint16_t>(*port + 1), true, restored)
                    : Result<std::shared_ptr<Stream>>(tl::unexpected(rtp.error()));
    if (!rtp || !rtcp) {
      taken.push_back(*port);
      if (rtp) {
        closeStream(**rtp);
      }
      continue;
    }
    slot.rtp = *rtp;
    slot.rtcp = *rtcp;
    slot.rtp->leg = &leg;
    slot.rtcp->leg = &leg;
    ++call.pairs;
    counters_.streams.fetch_add(2, std::memory_order_relaxed);
    result = {};
    break;
  }
  for (uint16_t port : taken) {
    ports_.release(port);
  }
  return result;
}

}  // namespace evosip::media
