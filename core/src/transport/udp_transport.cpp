// SIP over UDP: one SO_REUSEPORT socket per worker and listen address, batched recvmmsg and
// sendmmsg, and the egress sockets whose answers come back to their own worker.

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>

#include "native_socket.hpp"
#include "transport_impl.hpp"
#include "worker_state.hpp"

namespace evosip::transport {
namespace {

// recvmmsg batches served per readiness event before yielding to the worker's other sockets.
constexpr int kMaxUdpRoundsPerWakeup = 8;

}  // namespace

// Preallocated recvmmsg and sendmmsg batches, reused for every UDP socket of the worker.
void WorkerState::allocateUdpBatches() {
  const size_t batch = settings.udpBatch;
  const size_t size = settings.maxMessageSize;
  recvMsgs.resize(batch);
  recvIov.resize(batch);
  recvAddrs.resize(batch);
  // Not zero-filled: pages are touched only by the datagrams that actually arrive.
  recvBuffer = std::make_unique_for_overwrite<char[]>(batch * size);
  for (size_t k = 0; k < batch; ++k) {
    recvIov[k] = iovec{recvBuffer.get() + k * size, size};
    recvMsgs[k] = mmsghdr{};
    recvMsgs[k].msg_hdr.msg_name = &recvAddrs[k];
    recvMsgs[k].msg_hdr.msg_iov = &recvIov[k];
    recvMsgs[k].msg_hdr.msg_iovlen = 1;
  }
  sendMsgs.resize(batch);
  sendIov.resize(batch);
  sendAddrs.resize(batch);
  sendFds.resize(batch);
  sendCapacity = batch * size;
  sendBuffer = std::make_unique_for_overwrite<char[]>(sendCapacity);
  for (size_t k = 0; k < batch; ++k) {
    sendMsgs[k] = mmsghdr{};
    sendMsgs[k].msg_hdr.msg_name = &sendAddrs[k];
    sendMsgs[k].msg_hdr.msg_iov = &sendIov[k];
    sendMsgs[k].msg_hdr.msg_iovlen = 1;
  }
}

void WorkerState::startUdp() {
#ifdef EVOSIP_HAVE_URING
  if (runtime::WorkerRing* ring = runtime::WorkerRing::current(); ring != nullptr && !udp.empty()) {
    std::string why;
    udpRing = UdpRing::open(*this, *ring, &why);
    if (!udpRing) {
      std::fprintf(stderr, "transport: worker %zu: UDP through epoll (%s)\n", worker.index(),
                   why.c_str());
    }
  }
#endif
  if (!udpRing) {
    udpEpoll = runtime::WorkerEpoll::current();
  }
  for (auto& s : udp) {
    armUdp(s);
  }
}

void WorkerState::armUdp(const std::shared_ptr<UdpSocket>& s) {
  if (udpRing) {
    udpRing->watch(s);
    return;
  }
  if (udpEpoll != nullptr && s->epollWatch == 0) {
    // Registered once, edge-triggered: every datagram that arrives after drainUdp emptied the
    // socket wakes the worker, without a re-arm.
    s->epollWatch = udpEpoll->watch(s->socket.native_handle(), [s] {
      if (!s->closed) {
        s->owner->drainUdp(s);
      }
    });
  }
  if (s->epollWatch != 0) {
    return;
  }
  s->socket.async_wait(udp::socket::wait_read, [s](const boost::system::error_code& ec) {
    if (s->closed || ec == asio::error::operation_aborted) {
      return;
    }
    s->owner->drainUdp(s);
  });
}

void WorkerState::drainUdp(const std::shared_ptr<UdpSocket>& s) {
  const int fd = s->socket.native_handle();
  const unsigned batch = static_cast<unsigned>(recvMsgs.size());
  for (int round = 0; round < kMaxUdpRoundsPerWakeup; ++round) {
    for (unsigned k = 0; k < batch; ++k) {
      recvMsgs[k].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      recvMsgs[k].msg_hdr.msg_flags = 0;
    }
    int n = ::recvmmsg(fd, recvMsgs.data(), batch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;  // EAGAIN: drained (other errors: wait for the next readiness)
    }
    beginBatch();
    if (!deliverDatagrams(s, n)) {
      batchDepth = 0;
      sendCount = 0;
      sendUsed = 0;
      return;
    }
    endBatch();
    if (static_cast<unsigned>(n) < batch) {
      break;  // the queue was empty: a new datagram raises a new readiness event
    }
    if (round + 1 == kMaxUdpRoundsPerWakeup) {
      // Still busy: let the worker's other sockets run, then continue without waiting.
      asio::post(worker.io(), [s] {
        if (!s->closed) {
          s->owner->drainUdp(s);
        }
      });
      return;
    }
  }
  armUdp(s);
}

bool WorkerState::deliverDatagrams(const std::shared_ptr<UdpSocket>& s, int n) {
  uint64_t received = 0;
  uint64_t dropped = 0;
  for (int k = 0; k < n && !s->closed; ++k) {
    const mmsghdr& m = recvMsgs[k];
    if (m.msg_hdr.msg_flags & MSG_TRUNC) {
      ++dropped;
      continue;
    }
    ++received;
    Packet packet{std::string_view(static_cast<const char*>(recvIov[k].iov_base), m.msg_len),
                  Source{Protocol::kUdp, fromSockaddr(recvAddrs[k]), s->local, {}}};
    deliver(packet);
  }
  if (received) {
    stats.udpReceived.fetch_add(received, std::memory_order_relaxed);
  }
  if (dropped) {
    stats.udpDroppedOversize.fetch_add(dropped, std::memory_order_relaxed);
  }
  return !s->closed;
}

bool WorkerState::sendUdp(const Endpoint& to, std::string_view data, int fd) {
  if (fd < 0) {
    UdpSocket* s = udpByFamily[to.ip.is_v6() ? 1 : 0];
    if (s == nullptr || s->closed) {
      return false;
    }
    fd = s->socket.native_handle();
  }
  if (udpRing && udpRing->send(to, data, fd)) {
    return true;
  }
  if (batchDepth > 0 && data.size() <= sendCapacity) {
    if (sendCount == sendMsgs.size() || sendUsed + data.size() > sendCapacity) {
      flushSends();
    }
    size_t k = sendCount++;
    char* dst = sendBuffer.get() + sendUsed;
    std::memcpy(dst, data.data(), data.size());
    sendUsed += data.size();
    sendIov[k] = iovec{dst, data.size()};
    sendMsgs[k].msg_hdr.msg_namelen = toSockaddr(to, sendAddrs[k]);
    sendFds[k] = fd;
    return true;
  }
  sockaddr_storage ss;
  socklen_t len = toSockaddr(to, ss);
  ssize_t rc;
  do {
    rc = ::sendto(fd, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                  reinterpret_cast<const sockaddr*>(&ss), len);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    stats.udpSendErrors.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  stats.udpSent.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void WorkerState::flushSends() {
  uint64_t sent = 0;
  uint64_t errors = 0;
  size_t i = 0;
  while (i < sendCount) {
    const int fd = sendFds[i];
    size_t end = i + 1;
    while (end < sendCount && sendFds[end] == fd) {
      ++end;
    }
    while (i < end) {
      int rc =
          ::sendmmsg(fd, &sendMsgs[i], static_cast<unsigned>(end - i), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (rc < 0 && errno == EINTR) {
        continue;
      }
      if (rc <= 0) {
        ++errors;  // the error belongs to the first datagram: skip it, send the rest
        ++i;
        continue;
      }
      sent += static_cast<uint64_t>(rc);
      i += static_cast<size_t>(rc);
    }
  }
  sendCount = 0;
  sendUsed = 0;
  if (sent) {
    stats.udpSent.fetch_add(sent, std::memory_order_relaxed);
  }
  if (errors) {
    stats.udpSendErrors.fetch_add(errors, std::memory_order_relaxed);
  }
}

std::shared_ptr<UdpSocket> SipTransport::Impl::openUdp(WorkerState& w, const ListenSpec& spec,
                                                       uint16_t port, bool listen) {
  auto s = std::make_shared<UdpSocket>(w, w.worker.io(), Endpoint{spec.endpoint.ip, port});
  s->egress = !listen;
  boost::system::error_code ec;
  udp::endpoint ep(spec.endpoint.ip, port);
  s->socket.open(ep.protocol(), ec);
  if (ec) {
    throwBindError(spec, ec);
  }
  w.udp.push_back(s);  // owned from here on, so that stop() closes it on failure too
  if (listen) {        // every worker binds the listen port (SO_REUSEPORT spreads the flows)
    s->socket.set_option(udp::socket::reuse_address(true), ec);
    setReusePort(s->socket.native_handle(), spec);
    if (settings.freeBind) {
      setFreeBind(s->socket.native_handle(), spec);
    }
  }
  if (spec.endpoint.ip.is_v6()) {
    s->socket.set_option(asio::ip::v6_only(true), ec);
  }
  setBigBuffers(s->socket.native_handle());
  s->socket.non_blocking(true, ec);
  s->socket.bind(ep, ec);
  if (ec) {
    throwBindError(spec, ec);
  }
  if (port == 0) {
    s->local.port = s->socket.local_endpoint(ec).port();
  }
  return s;
}

void SipTransport::Impl::bindUdp(const ListenSpec& spec) {
  uint16_t port = spec.endpoint.port;
  const int family = spec.endpoint.ip.is_v6() ? 1 : 0;
  for (auto& w : workers) {
    auto s = openUdp(*w, spec, port, true);
    port = s->local.port;  // the first worker's, when the spec asked for any port
    if (w->udpByFamily[family] == nullptr) {
      w->udpByFamily[family] = s.get();
    }
    hasUdpFamily[family] = true;
  }
  bound.push_back(ListenSpec{Protocol::kUdp, Endpoint{spec.endpoint.ip, port}});
}

void SipTransport::Impl::bindEgress(const ListenSpec& listen) {
  const int family = listen.endpoint.ip.is_v6() ? 1 : 0;
  ListenSpec spec = listen;
  for (const auto& ip : settings.egressAddresses) {
    if (ip.is_v6() == listen.endpoint.ip.is_v6()) {
      spec.endpoint.ip = ip;
      break;
    }
  }
  const size_t per = settings.egressPerWorker;
  egress.resize(workers.size() * per);
  for (size_t wi = 0; wi < workers.size(); ++wi) {
    for (size_t k = 0; k < per; ++k) {
      auto s = openUdp(*workers[wi], spec, 0, false);
      Egress& e = egress[wi * per + k];
      e.fd[family] = s->socket.native_handle();
      e.port[family] = s->local.port;
    }
  }
}

}  // namespace evosip::transport
