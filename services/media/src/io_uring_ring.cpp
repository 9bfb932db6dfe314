// The io_uring instance of one worker's packet path; see io_uring_ring.hpp.
#include "io_uring_ring.hpp"

#include <cstring>
#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>

#include "call.hpp"

namespace evosip::media {

#ifndef EVOSIP_HAVE_URING

std::unique_ptr<IoUringRing> IoUringRing::open(int, unsigned, std::string* why) {
  *why = "built without liburing";
  return nullptr;
}
IoUringRing::~IoUringRing() = default;
void IoUringRing::watch(Stream&) {}
void IoUringRing::unwatch(Stream&) {}

#else

std::unique_ptr<IoUringRing> IoUringRing::open(int eventFd, unsigned maxStreams, std::string* why) {
  std::unique_ptr<IoUringRing> r(new IoUringRing());
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
  r->buffers_ = std::make_unique<runtime::ProvidedBuffers>(r->ring_, 0, kBuffers, kBufferSize);
  if (!r->buffers_->ok(why)) {
    return nullptr;
  }
  r->recvTemplate_.msg_namelen = sizeof(sockaddr_in6);
  r->recycle_.reserve(kBuffers);
  r->slots_.push_back(nullptr);  // slot 0 is never a stream
  return r;
}

IoUringRing::~IoUringRing() {
  if (buffers_ != nullptr) {
    buffers_->forget();  // the ring's exit drops the registration (on any thread)
  }
  if (ringOpen_) {
    io_uring_queue_exit(&ring_);  // cancels the receives and drops their sockets
  }
}

io_uring_sqe* IoUringRing::sqe() {
  io_uring_sqe* e = io_uring_get_sqe(&ring_);
  if (e == nullptr) {
    submitOnly();
    e = io_uring_get_sqe(&ring_);
  }
  return e;
}

void IoUringRing::armReceive(Stream& s) {
  io_uring_sqe* e = sqe();
  if (e == nullptr) {
    return;  // cannot happen right after a submit; the stream stays silent rather than crash
  }
  io_uring_prep_recvmsg_multishot(e, s.ringFixed ? int(s.ringSlot) : s.fd, &recvTemplate_, 0);
  e->flags |= IOSQE_BUFFER_SELECT | (s.ringFixed ? IOSQE_FIXED_FILE : 0);
  e->buf_group = buffers_->group();
  io_uring_sqe_set_data64(e, tag(kRecv, s.ringSlot, s.ringGen));
}

void IoUringRing::watch(Stream& s) {
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

void IoUringRing::unwatch(Stream& s) {
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

void IoUringRing::submitOnly() {
  io_uring_submit(&ring_);
  recycleNow();
}

void IoUringRing::submitAndCollect() {
  io_uring_submit_and_get_events(&ring_);
  recycleNow();
}

unsigned IoUringRing::flushSq() {
  // liburing's __io_uring_flush_sq (no SQPOLL): publish the queued SQEs to the kernel.
  io_uring_sq& sq = ring_.sq;
  const unsigned tail = sq.sqe_tail;
  if (sq.sqe_head != tail) {
    sq.sqe_head = tail;
    io_uring_smp_store_release(sq.ktail, tail);
  }
  return tail - IO_URING_READ_ONCE(*sq.khead);
}

void IoUringRing::submitAndWait(int64_t timeoutNs) {
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

void IoUringRing::armWake(int fd) {
  if (io_uring_sqe* e = sqe()) {
    io_uring_prep_read(e, fd, &wakeCount_, sizeof wakeCount_, 0);
    io_uring_sqe_set_data64(e, tag(kWake, 0, 0));
  }
}

bool IoUringRing::workPending() const {
  return (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0;
}

void IoUringRing::recycleNow() {
  if (recycle_.empty()) {
    return;
  }
  buffers_->recycle(recycle_);
  recycle_.clear();
}

#endif

}  // namespace evosip::media
