#pragma once
// The io_uring instance a worker thread waits in (WorkerPool::setIoMode). One io_uring_enter
// per wake-up submits what the worker queued since the last one and sleeps until a completion
// arrives, a descriptor or timer of the worker's io_context is ready, or work is posted to it
// (the io_context's reactor is itself watched by the ring: a poll of its epoll descriptor).
//
// Clients (the SIP transport's UDP sockets) queue SQEs whose user_data carries their client id
// (tag()); their completions come back to them on the worker thread. Built only with liburing
// (EVOSIP_HAVE_URING); WorkerRing::open() returns nullptr when the kernel, a seccomp profile or
// the Boost version refuses, and the worker waits in its io_context as before.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#ifdef EVOSIP_HAVE_URING
#include <liburing.h>
#endif

namespace evosip::runtime {

#ifdef EVOSIP_HAVE_URING

class RingClient {
 public:
  virtual ~RingClient() = default;
  // One completion of an SQE the client tagged with its id (WorkerRing::tag).
  virtual void onCompletion(const io_uring_cqe& cqe) = 0;
  // The worker is about to enter the ring (and maybe sleep there): the pass's counts out.
  virtual void beforeEnter() {}
  // The SQEs queued so far are submitted: with MSG_DONTWAIT sends, what they pointed to is
  // no longer read by the kernel and may be reused.
  virtual void afterSubmit() {}
};

// Provided receive buffers of one client (a registered buffer ring): the kernel picks one per
// received datagram; the client hands it back with recycle() once it is done with it.
class ProvidedBuffers {
 public:
  ProvidedBuffers(io_uring& ring, uint16_t group, unsigned count, unsigned size);
  ~ProvidedBuffers();
  ProvidedBuffers(const ProvidedBuffers&) = delete;
  ProvidedBuffers& operator=(const ProvidedBuffers&) = delete;
  // False (why set) when the kernel refused the registration.
  bool ok(std::string* why) const;
  uint16_t group() const { return group_; }
  unsigned size() const { return size_; }
  char* buffer(unsigned bid) { return buffers_ + size_t(bid) * size_; }
  void recycle(unsigned bid);
  // Hands back a batch with one update of the ring's tail.
  void recycle(std::span<const uint16_t> bids);
  // Unregisters the group (on the ring's thread, once no receive uses it any more).
  void release();
  // The ring is gone, and its registration with it: nothing to unregister.
  void forget() { registered_ = false; }

 private:
  io_uring& ring_;
  uint16_t group_;
  unsigned count_;
  unsigned size_;
  io_uring_buf_ring* bufRing_ = nullptr;
  char* buffers_ = nullptr;
  size_t bytes_ = 0;
  int error_ = 0;
  bool registered_ = false;
};

class WorkerRing {
 public:
  // A ring for one worker, created disabled on the calling thread and enabled by run() on the
  // worker's; nullptr (why set) when io_uring cannot be used here.
  static std::unique_ptr<WorkerRing> open(boost::asio::io_context& io, std::string* why);
  ~WorkerRing();
  WorkerRing(const WorkerRing&) = delete;
  WorkerRing& operator=(const WorkerRing&) = delete;

  // The ring the calling worker thread waits in, or nullptr.
  static WorkerRing* current();

  // Clients: ids 1..255, used in the top byte of user_data; removed ones get no completions.
  uint8_t addClient(RingClient* client);
  void removeClient(uint8_t id);
  static uint64_t tag(uint8_t client, uint64_t payload) {
    return (uint64_t(client) << 56) | (payload & ((uint64_t(1) << 56) - 1));
  }
  static uint64_t payloadOf(uint64_t userData) { return userData & ((uint64_t(1) << 56) - 1); }

  // An SQE to fill; when the submission queue is full, what is queued is submitted first.
  // nullptr only when the kernel refuses the submit.
  io_uring_sqe* sqe();
  // Submits what is queued now (and runs completions the kernel deferred), without waiting.
  void submit();
  io_uring& raw() { return ring_; }
  // A descriptor that the ring reads from now on and that an Asio object of the io_context also
  // holds (to bind, close): the reactor stops watching it, so that its readiness no longer wakes
  // the worker a second time.
  void detachFromReactor(int fd);
  uint16_t newBufferGroup() { return nextGroup_++; }

  // The worker thread's loop: the io_context's handlers and the clients' completions until the
  // io_context is stopped. Call again after it threw (a handler's exception).
  void run();

 private:
  explicit WorkerRing(boost::asio::io_context& io) : io_(io) {}
  void armReactorPoll();
  void enter(bool sleep);
  // Hands out the completions there are; false when it stopped at the per-pass limit.
  bool reap();
  // The poll of the io_context's reactor is among the completions not handed out yet.
  bool reactorPollCompleted();
  void notifyEntering();
  void notifySubmitted();

  boost::asio::io_context& io_;
  io_uring ring_{};
  bool open_ = false;
  bool enabled_ = false;
  bool reactorArmed_ = false;
  int reactorFd_ = -1;  // the io_context's epoll descriptor
  uint16_t nextGroup_ = 1;
  std::vector<RingClient*> clients_;  // by id; [0] is the ring's own
};

#else

class WorkerRing {};

#endif

}  // namespace evosip::runtime
