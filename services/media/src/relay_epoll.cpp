// The epoll packet path of one worker's relay (media.io_uring: false, or no io_uring): every
// stream socket of the worker is in one level-triggered epoll set whose descriptor the Asio
// reactor waits on. A readable socket's datagrams are read with recvmmsg, latched and counted
// one by one, and sent on with one sendmmsg from the peer leg's socket:
//   pollStreams     the ready sockets, in bounded rounds
//   onReadable      per socket: receiveBatch -> queueForPeer -> sendBatch
#include <cerrno>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <evosip/media/relay.hpp>

#include "call.hpp"

namespace evosip::media {

namespace asio = boost::asio;

void Relay::armEpoll() {
  epollDescriptor_.async_wait(asio::posix::stream_descriptor::wait_read,
                              [this](const boost::system::error_code& ec) {
                                if (!ec) {
                                  pollStreams();
                                }
                              });
}

void Relay::pollStreams() {
  // Level-triggered: a socket with datagrams left (onReadable reads a bounded number per call)
  // comes back in the next round. The reactor only sees an edge of the epoll descriptor, so wait
  // on it only once the set had nothing ready; after many busy rounds, yield to the rest of the
  // worker (ng commands, timers) with a post instead.
  std::array<epoll_event, 128> events;
  for (int round = 0; round < 16; ++round) {
    const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 0);
    if (n <= 0) {
      armEpoll();
      return;
    }
    for (int i = 0; i < n; ++i) {
      auto* s = static_cast<Stream*>(events[i].data.ptr);
      // Streams are closed only by signalling and timers, which never run inside this loop.
      onReadable(*s);
    }
  }
  asio::post(io_, [this] { pollStreams(); });
}

void Relay::onReadable(Stream& s) {
  for (int round = 0; round < 4; ++round) {
    const int n = receiveBatch(s);
    if (n <= 0) {
      return;
    }
    s.lastPacketNs = nowNs();
    const size_t queued = queueForPeer(s, static_cast<size_t>(n));
    if (queued > 0) {
      sendBatch(*s.out, queued);
    }
    if (static_cast<size_t>(n) < kBatch) {
      return;
    }
  }
}

int Relay::receiveBatch(Stream& s) {
  Batch& b = *batch_;
  for (size_t i = 0; i < kBatch; ++i) {
    b.rx[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
  }
  return ::recvmmsg(s.fd, b.rx.data(), kBatch, MSG_DONTWAIT, nullptr);
}

size_t Relay::queueForPeer(Stream& s, size_t received) {
  // Per packet: the size check, the latch (which may drop it), the stream's counters; then it is
  // queued for the peer's socket when the peer's destination is known.
  Batch& b = *batch_;
  if (fenced_) {
    counters_.drops[size_t(DropReason::kFenced)].fetch_add(received, std::memory_order_relaxed);
    return 0;
  }
  const LatchPolicy& policy = s.leg->policy;
  Stream* out = s.out;
  const bool canSend = out != nullptr && !out->closed && out->latch.destination.known() &&
                       !out->latch.destination.isUnspecified();
  size_t k = 0;
  uint64_t noDestination = 0;
  for (size_t i = 0; i < received; ++i) {
    const msghdr& h = b.rx[i].msg_hdr;
    const unsigned len = b.rx[i].msg_len;
    if (h.msg_flags & MSG_TRUNC) {
      ++s.errors;
      counters_.drops[size_t(DropReason::kOversize)].fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const auto verdict =
        latchOnPacket(s.latch, policy, static_cast<const sockaddr*>(h.msg_name), h.msg_namelen);
    if (verdict == LatchVerdict::kDropStrict) {
      counters_.drops[size_t(DropReason::kStrictSource)].fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (verdict != LatchVerdict::kForward) {
      s.leg->latchChanged = true;  // written to the store at the next tick (media.state)
    }
    ++s.packets;
    s.bytes += len;
    if (!canSend) {
      ++noDestination;
      continue;
    }
    b.txIov[k] = {b.data[i].data(), len};
    b.tx[k].msg_hdr.msg_name = &out->latch.destination.sa;
    b.tx[k].msg_hdr.msg_namelen = out->latch.destination.len;
    ++k;
  }
  if (noDestination > 0) {
    counters_.drops[size_t(DropReason::kNoDestination)].fetch_add(noDestination,
                                                                  std::memory_order_relaxed);
  }
  return k;
}

void Relay::sendBatch(Stream& out, size_t queued) {
  Batch& b = *batch_;
  size_t sent = 0;
  while (sent < queued) {
    const int r =
        ::sendmmsg(out.fd, b.tx.data() + sent, static_cast<unsigned>(queued - sent), MSG_DONTWAIT);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r <= 0) {
      // Skip the packet the kernel refused and go on with the rest.
      ++out.errors;
      counters_.drops[size_t(DropReason::kSendError)].fetch_add(1, std::memory_order_relaxed);
      ++sent;
      continue;
    }
    uint64_t bytes = 0;
    for (size_t j = sent; j < sent + static_cast<size_t>(r); ++j) {
      bytes += b.txIov[j].iov_len;
    }
    counters_.packetsRelayed.fetch_add(static_cast<uint64_t>(r), std::memory_order_relaxed);
    counters_.bytesRelayed.fetch_add(bytes, std::memory_order_relaxed);
    sent += static_cast<size_t>(r);
  }
}

}  // namespace evosip::media
