// The io_uring packet path of one worker's relay (media.io_uring: true, where the kernel allows
// it). The ring itself is IoUringRing (io_uring_ring.hpp); here is what the relay does with its
// completions:
//   startRing        at the first stream, on the worker thread: the ring, or epoll if refused
//   ringLoop         (RelaySettings::waitInRing) the worker waits inside io_uring_enter
//   pollRing         (otherwise) the reactor waits on the ring's eventfd
//   reapRing         per completion: a failed send, a wake-up, or a received datagram
//   relayRingPacket  per datagram: size check, latch, counters, one send SQE to the peer
//   addRingStats     the pass's counts into the worker's counters, once per pass
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/eventfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include <evosip/log/log.hpp>
#include <evosip/media/relay.hpp>

#include "call.hpp"
#include "io_uring_ring.hpp"

namespace evosip::media {

void Relay::startRing() {
  ringTried_ = true;
  if (!settings_.ioUring) {
    return;
  }
  std::string why;
  // Every port of this worker's range is one socket at most (an RTP and an RTCP port per pair).
  const auto maxStreams = static_cast<unsigned>(2 * ports_.capacity());
  if (wakeFd_ >= 0) {
    // The worker waits inside the ring (ringLoop): no eventfd for the reactor.
    ring_ = IoUringRing::open(-1, maxStreams, &why);
    if (ring_) {
      ring_->armWake(wakeFd_);
      ring_->submitOnly();
      ringLoopRunning_ = true;
      boost::asio::post(io_, [this] { ringLoop(); });
      return;
    }
  } else if (const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); efd >= 0) {
    ring_ = IoUringRing::open(efd, maxStreams, &why);
    if (ring_) {
      ringEvent_.assign(efd);
      armRing();
      return;
    }
    ::close(efd);
  } else {
    why = fmt::format("eventfd: {}", std::strerror(errno));
  }
  log::get("media")->info("io_uring not available ({}): relaying with epoll", why);
}

void Relay::armRing() {
  ringEvent_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [this](const boost::system::error_code& ec) {
                          if (!ec) {
                            pollRing();
                          }
                        });
}

#ifndef EVOSIP_HAVE_URING

void Relay::pollRing() {}
void Relay::ringLoop() {}
bool Relay::drainRing(RingStats&) {
  return false;
}
void Relay::relayRingPacket(Stream&, char*, unsigned, int64_t, RingStats&) {}

#else

void Relay::relayRingPacket(Stream& s, char* buf, unsigned len, int64_t now, RingStats& st) {
  IoUringRing& r = *ring_;
  auto* msg = io_uring_recvmsg_validate(buf, static_cast<int>(len), &r.recvTemplate_);
  if (msg == nullptr) {
    return;
  }
  if (msg->flags & MSG_TRUNC) {
    ++s.errors;
    ++st.drops[size_t(DropReason::kOversize)];
    return;
  }
  if (fenced_) {
    s.lastPacketNs = now;  // the call's parties are there: not idle
    ++st.drops[size_t(DropReason::kFenced)];
    return;
  }
  const socklen_t nameLen = std::min<socklen_t>(msg->namelen, r.recvTemplate_.msg_namelen);
  const auto verdict = latchOnPacket(
      s.latch, s.leg->policy, static_cast<const sockaddr*>(io_uring_recvmsg_name(msg)), nameLen);
  if (verdict == LatchVerdict::kDropStrict) {
    ++st.drops[size_t(DropReason::kStrictSource)];
    return;
  }
  if (verdict != LatchVerdict::kForward) {
    s.leg->latchChanged = true;  // written to the store at the next tick (media.state)
  }
  const uint32_t size =
      io_uring_recvmsg_payload_length(msg, static_cast<int>(len), &r.recvTemplate_);
  s.lastPacketNs = now;
  ++st.received;
  ++s.packets;
  s.bytes += size;
  Stream* out = s.out;
  if (out == nullptr || out->closed || !out->latch.destination.known() ||
      out->latch.destination.isUnspecified()) {
    ++st.drops[size_t(DropReason::kNoDestination)];
    return;
  }
  io_uring_sqe* e = r.sqe();
  if (e == nullptr) {
    ++out->errors;
    ++st.drops[size_t(DropReason::kSendError)];
    return;
  }
  io_uring_prep_send(e, out->ringFixed ? int(out->ringSlot) : out->fd,
                     io_uring_recvmsg_payload(msg, &r.recvTemplate_), size, MSG_DONTWAIT);
  if (out->ringFixed) {
    e->flags |= IOSQE_FIXED_FILE;
  }
  io_uring_prep_send_set_addr(e, out->latch.destination.addr(),
                              static_cast<uint16_t>(out->latch.destination.len));
  e->flags |= IOSQE_CQE_SKIP_SUCCESS;  // only a failed send completes
  io_uring_sqe_set_data64(e,
                          IoUringRing::tag(IoUringRing::kSend, out->ringSlot, out->ringGen, size));
  ++st.relayed;
  st.bytes += size;
}

unsigned Relay::reapRing(RingStats& stats, int64_t now, bool* woken) {
  IoUringRing& r = *ring_;
  unsigned seen = 0;
  unsigned head;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&r.ring_, head, cqe) {
    ++seen;
    const uint64_t t = cqe->user_data;
    const IoUringRing::Kind kind = IoUringRing::kindOf(t);
    if (kind == IoUringRing::kSend) {
      // Only failed sends complete (IOSQE_CQE_SKIP_SUCCESS).
      if (Stream* out = r.streamOf(t)) {
        ++out->errors;
      }
      ++stats.failed;
      stats.failedBytes += IoUringRing::lenOf(t);
      continue;
    }
    if (kind == IoUringRing::kWake) {
      *woken = true;
      if (wakeFd_ >= 0 && ringLoopRunning_) {
        r.armWake(wakeFd_);
      }
      continue;
    }
    if (kind != IoUringRing::kRecv) {
      continue;
    }
    Stream* s = r.streamOf(t);
    if (s != nullptr && !(cqe->flags & IORING_CQE_F_MORE)) {
      r.armReceive(*s);  // the multishot receive ended (no buffer left, error): again
    }
    if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
      continue;
    }
    const unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (s != nullptr && cqe->res >= 0) {
      relayRingPacket(*s, r.buffer(bid), static_cast<unsigned>(cqe->res), now, stats);
    }
    // Handed back to the kernel after the next submit, when the send that may point into it
    // has completed (MSG_DONTWAIT: a send completes or fails inside its submit, never later).
    r.recycleLater(bid);
  }
  io_uring_cq_advance(&r.ring_, seen);
  return seen;
}

bool Relay::drainRing(RingStats& stats) {
  IoUringRing& r = *ring_;
  const int64_t now = nowNs();
  // The eventfd only says that receive work was queued: run it, relay what it produced, submit
  // the sends (which also runs work queued meanwhile) and repeat until nothing is left. Bounded:
  // after many busy rounds, yield to the rest of the worker with a post.
  r.submitAndCollect();
  bool more = true;
  bool woken = false;
  for (int round = 0; round < 16 && more; ++round) {
    const unsigned seen = reapRing(stats, now, &woken);
    const bool queued = io_uring_sq_ready(&r.ring_) > 0;
    if (seen == 0 && !queued && !r.workPending()) {
      more = false;
      break;
    }
    r.submitAndCollect();
    more = io_uring_cq_ready(&r.ring_) > 0 || r.workPending();
  }
  return more;
}

void Relay::addRingStats(RingStats& stats) {
  const uint64_t failed = stats.failed, failedBytes = stats.failedBytes;
  if (stats.relayed != 0 || failed != 0) {
    // Once per pass, not per packet. A send that failed in a later pass than the one that
    // counted it makes the difference wrap, which the modular atomic addition turns into the
    // subtraction it is.
    counters_.packetsRelayed.fetch_add(stats.relayed - failed, std::memory_order_relaxed);
    counters_.bytesRelayed.fetch_add(stats.bytes - failedBytes, std::memory_order_relaxed);
    stats.drops[size_t(DropReason::kSendError)] += failed;
  }
  for (size_t i = 0; i < stats.drops.size(); ++i) {
    if (stats.drops[i] != 0) {
      counters_.drops[i].fetch_add(stats.drops[i], std::memory_order_relaxed);
    }
  }
  stats = RingStats{};
}

void Relay::pollRing() {
  // Reset the eventfd first: Asio re-registers it with every wait (EPOLL_CTL_MOD), which reports
  // a non-zero counter as readable at once. Work queued after this read signals it again.
  uint64_t signals;
  [[maybe_unused]] auto n = ::read(ringEvent_.native_handle(), &signals, sizeof signals);
  RingStats stats;
  const bool more = drainRing(stats);
  addRingStats(stats);
  if (more) {
    boost::asio::post(io_, [this] { pollRing(); });
  } else {
    armRing();
  }
}

void Relay::ringLoop() {
  // The worker waits for packets inside io_uring_enter: one system call per wakeup submits the
  // sends of the previous batch, sleeps until a receive completes (DEFER_TASKRUN: the kernel
  // queues receives as task work and wakes this thread), runs the queued receives and returns
  // their completions. It goes back to its io_context when wake() was called (an ng command was
  // posted), when the io_context was stopped, after settings.ringIdleWait without packets and after
  // kRingBusyNs of relaying (its timers).
  IoUringRing& r = *ring_;
  const int64_t start = steadyNs();
  const int64_t ringIdleWaitNs =
      std::chrono::duration_cast<std::chrono::nanoseconds>(settings_.ringIdleWait).count();
  RingStats stats;
  for (;;) {
    r.submitAndWait(ringIdleWaitNs);
    bool woken = false;
    const unsigned seen = reapRing(stats, nowNs(), &woken);
    addRingStats(stats);
    if (woken || seen == 0 || io_.stopped() || steadyNs() - start >= kRingBusyNs) {
      break;
    }
  }
  if (io_uring_sq_ready(&r.ring_) > 0) {
    r.submitOnly();  // the sends of the last batch leave now, not after the posted handlers
  }
  boost::asio::post(io_, [this] { ringLoop(); });
}

#endif

}  // namespace evosip::media
