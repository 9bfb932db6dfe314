#pragma once
// Private to the relay: the io_uring instance of one worker's packet path (docs/architecture.md
// "media"); what the relay does with its completions is relay_io_uring.cpp.
//
// Every stream socket has one multishot recvmsg outstanding that takes its buffers from one
// provided-buffer ring (runtime::ProvidedBuffers, as the SIP workers' rings); the ring runs with
// DEFER_TASKRUN, so the kernel queues receives as task work and runs them, in one batch, when the
// worker enters the ring. A pass relays each received datagram with one send SQE (IORING_OP_SEND
// with the destination address, MSG_DONTWAIT so it completes or fails during the submit, success
// CQE skipped) and hands the buffers back after the submit. Two ways to wait: with
// RelaySettings::waitInRing (MediaService) the worker thread sleeps in io_uring_enter itself, which
// submits the previous pass's sends, waits for a receive and runs the queued receives: one system
// call per wakeup (Relay::ringLoop); a read of a wake eventfd ends the wait when work is posted to
// the worker's io_context. Without it (tests that poll the io_context) the ring signals an eventfd
// that the Asio reactor waits on (Relay::pollRing). Not a runtime::WorkerRing: that one waits on
// the worker's Asio reactor too, for any client; this one waits for packets alone, with a timeout,
// and names sockets in a registered file table.

// Built only with liburing (EVOSIP_HAVE_URING); IoUringRing::open() returns nullptr when
// the kernel or a seccomp profile refuses io_uring, and the relay keeps its epoll path.

#include <cstdint>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <vector>

#ifdef EVOSIP_HAVE_URING
#include <liburing.h>

#include <evosip/runtime/worker_ring.hpp>
#endif

#include "call.hpp"

namespace evosip::media {

class IoUringRing {
 public:
  // A new ring whose completions are signalled on `eventFd` (-1: none, the worker waits inside
  // the ring); nullptr when io_uring is not available (the reason is written to `why`).
  // At most maxStreams sockets are watched at once (the size of the registered file table).
  static std::unique_ptr<IoUringRing> open(int eventFd, unsigned maxStreams, std::string* why);
  ~IoUringRing();
  IoUringRing(const IoUringRing&) = delete;
  IoUringRing& operator=(const IoUringRing&) = delete;

  // A stream's socket starts (watch) and stops (unwatch, before its fd is closed) receiving.
  void watch(Stream& s);
  void unwatch(Stream& s);

#ifdef EVOSIP_HAVE_URING
  static constexpr unsigned kBuffers = 4096;     // provided receive buffers (power of two)
  static constexpr unsigned kPayload = 2048;     // larger datagrams are dropped as oversize
  static constexpr unsigned kBufferSize = 2112;  // recvmsg_out header + name + payload, rounded
  static constexpr unsigned kSqEntries = 1024;

  enum Kind : uint64_t { kRecv = 1, kSend = 2, kIgnore = 3, kWake = 0 };
  static uint64_t tag(Kind k, uint32_t slot, uint16_t gen, uint32_t len = 0) {
    return (uint64_t(k) << 62) | (uint64_t(len & 0x3fff) << 48) | (uint64_t(gen) << 32) | slot;
  }
  static Kind kindOf(uint64_t t) {
    return Kind(t >> 62);
  }
  static uint32_t lenOf(uint64_t t) {
    return uint32_t(t >> 48) & 0x3fff;
  }
  // The open stream a completion names, or nullptr (closed since).
  Stream* streamOf(uint64_t t) const {
    const uint32_t slot = uint32_t(t);
    Stream* s = slot < slots_.size() ? slots_[slot] : nullptr;
    return s != nullptr && s->ringGen == uint16_t(t >> 32) ? s : nullptr;
  }

  // Queues the multishot receive of a stream (submitted with the next submit).
  void armReceive(Stream& s);
  // An SQE, submitting what is queued first when the submission queue is full.
  io_uring_sqe* sqe();
  // Submits queued SQEs and runs the deferred receive work; then returns the buffers used by
  // the packets whose sends were just submitted.
  void submitAndCollect();
  void submitOnly();
  // Submits what is queued and waits, in one io_uring_enter, until a completion is there or
  // timeoutNs passed; then returns the buffers of the packets whose sends were just submitted.
  void submitAndWait(int64_t timeoutNs);
  // Queues a read of the eventfd `fd` whose completion (kind kWake) ends a wait.
  void armWake(int fd);
  // Deferred receive work is still queued in the kernel (more than one enter's worth).
  bool workPending() const;
  char* buffer(unsigned bid) {
    return buffers_->buffer(bid);
  }
  void recycleLater(unsigned bid) {
    recycle_.push_back(static_cast<uint16_t>(bid));
  }
  void recycleNow();

  io_uring ring_{};
  msghdr recvTemplate_{};  // name room for sockaddr_in6, no control data

 private:
  IoUringRing() = default;
  std::unique_ptr<runtime::ProvidedBuffers> buffers_;  // the receives' buffer ring (group 0)
  unsigned flushSq();
  uint64_t wakeCount_ = 0;         // the wake eventfd's counter, read by the ring
  std::vector<uint16_t> recycle_;  // buffers to hand back after the next submit
  std::vector<Stream*> slots_;
  std::vector<uint32_t> freeSlots_;
  bool ringOpen_ = false;
  bool fixedFiles_ = false;  // the registered file table exists
#endif
};

}  // namespace evosip::media
