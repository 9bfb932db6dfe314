// The io_uring packet path of one worker; see packet_ring.hpp.
#include "packet_ring.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

#include <evosip/log/log.hpp>
#include <evosip/media/relay.hpp>

#include "stream.hpp"

namespace evosip::media {

#ifndef EVOSIP_MEDIA_HAVE_URING

std::unique_ptr<PacketRing> PacketRing::open(int, unsigned, std::string* why) {
  *why = "built without liburing";
  return nullptr;
}
PacketRing::~PacketRing() = default;
void PacketRing::watch(Stream&) {}
void PacketRing::unwatch(Stream&) {}

void Relay::pollRing() {}
void Relay::ringLoop() {}
bool Relay::drainRing(RingStats&) {
  return false;
}
void Relay::relayRingPacket(Stream&, char*, unsigned, int64_t, RingStats&) {}

#else

std::unique_ptr<PacketRing> PacketRing::open(int eventFd, unsigned maxStreams, std::string* why) {
  std::unique_ptr<PacketRing> r(new PacketRing());
  io_uring_params p{};
  // One thread submits and reaps (the worker): receives run as deferred task work when the
  // worker asks for them, in one batch, instead of interrupting it per packet.
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
            IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
  p.cq_entries = 4 * kBuffers;
  if (int rc = io_uring_queue_init_params(kSqEntries, &r->ring_, &p); rc < 0) {
    *why = fmt::format("io_uring_setup: {}", std::strerror(-rc));
    return nullptr;
  }
  r->ringOpen_ = true;
  // Registered files: a send names its socket by table index, without the file lookup and
  // reference count of every send (fget/fput). The table cannot be larger than RLIMIT_NOFILE
  // (nor can the number of sockets); a stream without a table entry is named by descriptor.
  unsigned tableSize = maxStreams + 1;
  if (rlimit rl{}; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < tableSize) {
    tableSize = static_cast<unsigned>(rl.rlim_cur);
  }
  r->fixedFiles_ = io_uring_register_files_sparse(&r->ring_, tableSize) == 0;
  if (eventFd < 0) {
    if (!(p.features & IORING_FEAT_EXT_ARG)) {
      *why = "io_uring without IORING_FEAT_EXT_ARG (waits with a timeout)";
      return nullptr;
    }
  } else if (int rc = io_uring_register_eventfd(&r->ring_, eventFd); rc < 0) {
    *why = fmt::format("io_uring_register_eventfd: {}", std::strerror(-rc));
    return nullptr;
  }
  const size_t ringBytes = kBuffers * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, ringBytes + size_t(kBuffers) * kBufferSize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    *why = fmt::format("mmap: {}", std::strerror(errno));
    return nullptr;
  }
  r->bufRing_ = static_cast<io_uring_buf_ring*>(mem);
  r->buffers_ = static_cast<char*>(mem) + ringBytes;
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = kBuffers;
  reg.bgid = 0;
  if (int rc = io_uring_register_buf_ring(&r->ring_, &reg, 0); rc < 0) {
    *why = fmt::format("io_uring_register_buf_ring: {}", std::strerror(-rc));
    return nullptr;
  }
  io_uring_buf_ring_init(r->bufRing_);
  const int mask = io_uring_buf_ring_mask(kBuffers);
  for (unsigned i = 0; i < kBuffers; ++i) {
    io_uring_buf_ring_add(r->bufRing_, r->buffer(i), kBufferSize, static_cast<uint16_t>(i), mask,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(r->bufRing_, kBuffers);
  r->recvTemplate_.msg_namelen = sizeof(sockaddr_in6);
  r->recycle_.reserve(kBuffers);
  r->slots_.push_back(nullptr);  // slot 0 is never a stream
  return r;
}

PacketRing::~PacketRing() {
  if (ringOpen_) {
    io_uring_queue_exit(&ring_);  // cancels the receives and drops their sockets
  }
  if (bufRing_ != nullptr) {
    ::munmap(bufRing_, kBuffers * sizeof(io_uring_buf) + size_t(kBuffers) * kBufferSize);
  }
}

io_uring_sqe* PacketRing::sqe() {
  io_uring_sqe* e = io_uring_get_sqe(&ring_);
  if (e == nullptr) {
    submitOnly();
    e = io_uring_get_sqe(&ring_);
  }
  return e;
}

void PacketRing::armReceive(Stream& s) {
  io_uring_sqe* e = sqe();
  if (e == nullptr) {
    return;  // cannot happen right after a submit; the stream stays silent rather than crash
  }
  io_uring_prep_recvmsg_multishot(e, s.ringFixed ? int(s.ringSlot) : s.fd, &recvTemplate_, 0);
  e->flags |= IOSQE_BUFFER_SELECT | (s.ringFixed ? IOSQE_FIXED_FILE : 0);
  e->buf_group = 0;
  io_uring_sqe_set_data64(e, tag(kRecv, s.ringSlot, s.ringGen));
}

void PacketRing::watch(Stream& s) {
  if (freeSlots_.empty()) {
    freeSlots_.push_back(static_cast<uint32_t>(slots_.size()));
    slots_.push_back(nullptr);
  }
  s.ringSlot = freeSlots_.back();
  freeSlots_.pop_back();
  slots_[s.ringSlot] = &s;
  s.ringFixed = fixedFiles_ && io_uring_register_files_update(&ring_, s.ringSlot, &s.fd, 1) == 1;
  armReceive(s);
  submitOnly();
}

void PacketRing::unwatch(Stream& s) {
  if (s.ringSlot == 0 || slots_[s.ringSlot] != &s) {
    return;
  }
  slots_[s.ringSlot] = nullptr;
  freeSlots_.push_back(s.ringSlot);
  // Cancel the receive so that the socket is released when its descriptor is closed (and its
  // port can be bound again at once). Fails harmlessly off the worker thread (at shutdown, the
  // ring's exit releases it).
  if (io_uring_sqe* e = sqe()) {
    io_uring_prep_cancel_fd(
        e, s.ringFixed ? int(s.ringSlot) : s.fd,
        IORING_ASYNC_CANCEL_ALL | (s.ringFixed ? IORING_ASYNC_CANCEL_FD_FIXED : 0));
    io_uring_sqe_set_data64(e, tag(kIgnore, 0, 0));
    submitOnly();
  }
  if (s.ringFixed) {
    const int none = -1;  // the table's reference to the socket goes too
    io_uring_register_files_update(&ring_, s.ringSlot, &none, 1);
    s.ringFixed = false;
  }
  ++s.ringGen;
}

void PacketRing::submitOnly() {
  io_uring_submit(&ring_);
  recycleNow();
}

void PacketRing::submitAndCollect() {
  io_uring_submit_and_get_events(&ring_);
  recycleNow();
}

unsigned PacketRing::flushSq() {
  // liburing's __io_uring_flush_sq (no SQPOLL): publish the queued SQEs to the kernel.
  io_uring_sq& sq = ring_.sq;
  const unsigned tail = sq.sqe_tail;
  if (sq.sqe_head != tail) {
    sq.sqe_head = tail;
    io_uring_smp_store_release(sq.ktail, tail);
  }
  return tail - IO_URING_READ_ONCE(*sq.khead);
}

void PacketRing::submitAndWait(int64_t timeoutNs) {
  const unsigned toSubmit = flushSq();
  __kernel_timespec ts{timeoutNs / 1000000000, timeoutNs % 1000000000};
  io_uring_getevents_arg arg{};
  arg.ts = reinterpret_cast<uint64_t>(&ts);
  unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
  const unsigned waitNr = io_uring_cq_ready(&ring_) > 0 ? 0 : 1;
  io_uring_enter2(static_cast<unsigned>(ring_.ring_fd), toSubmit, waitNr, flags,
                  reinterpret_cast<sigset_t*>(&arg), sizeof arg);
  recycleNow();
}

void PacketRing::armWake(int fd) {
  if (io_uring_sqe* e = sqe()) {
    io_uring_prep_read(e, fd, &wakeCount_, sizeof wakeCount_, 0);
    io_uring_sqe_set_data64(e, tag(kWake, 0, 0));
  }
}

bool PacketRing::workPending() const {
  return (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0;
}

void PacketRing::recycleNow() {
  if (recycle_.empty()) {
    return;
  }
  const int mask = io_uring_buf_ring_mask(kBuffers);
  int i = 0;
  for (uint16_t bid : recycle_) {
    io_uring_buf_ring_add(bufRing_, buffer(bid), kBufferSize, bid, mask, i++);
  }
  io_uring_buf_ring_advance(bufRing_, i);
  recycle_.clear();
}

void Relay::relayRingPacket(Stream& s, char* buf, unsigned len, int64_t now, RingStats& st) {
  PacketRing& r = *ring_;
  auto* msg = io_uring_recvmsg_validate(buf, static_cast<int>(len), &r.recvTemplate_);
  if (msg == nullptr) {
    return;
  }
  if (msg->flags & MSG_TRUNC) {
    ++s.errors;
    ++st.drops[size_t(DropReason::kOversize)];
    return;
  }
  const socklen_t nameLen = std::min<socklen_t>(msg->namelen, r.recvTemplate_.msg_namelen);
  const auto verdict = latchOnPacket(
      s.latch, s.leg->policy, static_cast<const sockaddr*>(io_uring_recvmsg_name(msg)), nameLen);
  if (verdict == LatchVerdict::kDropStrict) {
    ++st.drops[size_t(DropReason::kStrictSource)];
    return;
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
  io_uring_sqe_set_data64(e, PacketRing::tag(PacketRing::kSend, out->ringSlot, out->ringGen, size));
  ++st.relayed;
  st.bytes += size;
}

unsigned Relay::reapRing(RingStats& stats, int64_t now, bool* woken) {
  PacketRing& r = *ring_;
  unsigned seen = 0;
  unsigned head;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&r.ring_, head, cqe) {
    ++seen;
    const uint64_t t = cqe->user_data;
    const PacketRing::Kind kind = PacketRing::kindOf(t);
    if (kind == PacketRing::kSend) {
      // Only failed sends complete (IOSQE_CQE_SKIP_SUCCESS).
      if (Stream* out = r.streamOf(t)) {
        ++out->errors;
      }
      ++stats.failed;
      stats.failedBytes += PacketRing::lenOf(t);
      continue;
    }
    if (kind == PacketRing::kWake) {
      *woken = true;
      if (wakeFd_ >= 0 && ringLoopRunning_) {
        r.armWake(wakeFd_);
      }
      continue;
    }
    if (kind != PacketRing::kRecv) {
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
  PacketRing& r = *ring_;
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
  // posted), when the io_context was stopped, after kRingIdleWaitNs without packets and after
  // kRingBusyNs of relaying (its timers).
  PacketRing& r = *ring_;
  const int64_t start = steadyNs();
  RingStats stats;
  for (;;) {
    r.submitAndWait(kRingIdleWaitNs);
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
