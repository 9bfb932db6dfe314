// The io_uring instance a worker thread waits in; see worker_ring.hpp.
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <evosip/runtime/worker_pool.hpp>
#include <evosip/runtime/worker_ring.hpp>

#include "asio_reactor_access.hpp"

namespace evosip::runtime {

bool parseIoMode(std::string_view text, IoMode& mode) {
  if (text == "auto") {
    mode = IoMode::kAuto;
  } else if (text == "io_uring") {
    mode = IoMode::kIoUring;
  } else if (text == "epoll") {
    mode = IoMode::kEpoll;
  } else {
    return false;
  }
  return true;
}

std::string_view ioModeName(IoMode mode) {
  switch (mode) {
    case IoMode::kAuto:
      return "auto";
    case IoMode::kIoUring:
      return "io_uring";
    case IoMode::kEpoll:
      return "epoll";
  }
  return "?";
}

#ifdef EVOSIP_HAVE_URING

namespace {

thread_local WorkerRing* tCurrentRing = nullptr;

constexpr unsigned kSqEntries = 512;
constexpr unsigned kCqEntries = 8192;
constexpr uint64_t kReactorReady = 1;  // payload of the ring's own poll of the reactor
// Completions handed out per pass before the io_context's handlers and timers get a turn.
constexpr unsigned kMaxCompletionsPerPass = 1024;

}  // namespace

ProvidedBuffers::ProvidedBuffers(io_uring& ring, uint16_t group, unsigned count, unsigned size)
    : ring_(ring), group_(group), count_(count), size_(size) {
  const size_t ringBytes = size_t(count) * sizeof(io_uring_buf);
  bytes_ = ringBytes + size_t(count) * size;
  // Pages are touched only by the datagrams that arrive in them.
  void* mem = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    error_ = errno;
    mem = nullptr;
    return;
  }
  bufRing_ = static_cast<io_uring_buf_ring*>(mem);
  buffers_ = static_cast<char*>(mem) + ringBytes;
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = count;
  reg.bgid = group;
  if (int rc = io_uring_register_buf_ring(&ring_, &reg, 0); rc < 0) {
    error_ = -rc;
    return;
  }
  registered_ = true;
  io_uring_buf_ring_init(bufRing_);
  const int mask = io_uring_buf_ring_mask(count);
  for (unsigned i = 0; i < count; ++i) {
    io_uring_buf_ring_add(bufRing_, buffer(i), size, static_cast<uint16_t>(i), mask,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(bufRing_, static_cast<int>(count));
}

ProvidedBuffers::~ProvidedBuffers() {
  release();
  if (bufRing_ != nullptr) {
    ::munmap(bufRing_, bytes_);
  }
}

bool ProvidedBuffers::ok(std::string* why) const {
  if (error_ != 0 && why != nullptr) {
    *why = fmt::format("provided buffers: {}", std::strerror(error_));
  }
  return error_ == 0;
}

void ProvidedBuffers::recycle(unsigned bid) {
  io_uring_buf_ring_add(bufRing_, buffer(bid), size_, static_cast<uint16_t>(bid),
                        io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(bufRing_, 1);
}

void ProvidedBuffers::recycle(std::span<const uint16_t> bids) {
  const int mask = io_uring_buf_ring_mask(count_);
  int i = 0;
  for (uint16_t bid : bids) {
    io_uring_buf_ring_add(bufRing_, buffer(bid), size_, bid, mask, i++);
  }
  io_uring_buf_ring_advance(bufRing_, i);
}

void ProvidedBuffers::release() {
  if (registered_) {
    io_uring_unregister_buf_ring(&ring_, group_);
    registered_ = false;
  }
}

std::unique_ptr<WorkerRing> WorkerRing::open(boost::asio::io_context& io, std::string* why) {
  if (!AsioReactorAccess::supported()) {
    *why = "this Boost.Asio's reactor cannot be watched from io_uring";
    return nullptr;
  }
  std::unique_ptr<WorkerRing> r(new WorkerRing(io));
  io_uring_params p{};
  // One thread submits and reaps (the worker; the ring is enabled on it): receives run as
  // deferred task work when the worker enters the ring, in one batch, instead of interrupting
  // it per datagram.
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
            IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE | IORING_SETUP_R_DISABLED;
  p.cq_entries = kCqEntries;
  if (int rc = io_uring_queue_init_params(kSqEntries, &r->ring_, &p); rc < 0) {
    *why = fmt::format("io_uring_setup: {}", std::strerror(-rc));
    return nullptr;
  }
  r->open_ = true;
  r->reactorFd_ = AsioReactorAccess::epollFd(io);
  r->clients_.push_back(nullptr);  // id 0: the ring's own poll of the reactor
  // The provided-buffer ring the receives need (kernel 5.19): probe it now rather than fail
  // on the first socket.
  ProvidedBuffers probe(r->ring_, 0, 1, 64);
  if (!probe.ok(why)) {
    return nullptr;
  }
  return r;
}

WorkerRing::~WorkerRing() {
  if (open_) {
    io_uring_queue_exit(&ring_);  // cancels what is outstanding
  }
}

WorkerRing* WorkerRing::current() {
  return tCurrentRing;
}

uint8_t WorkerRing::addClient(RingClient* client) {
  for (size_t i = 1; i < clients_.size(); ++i) {
    if (clients_[i] == nullptr) {
      clients_[i] = client;
      return static_cast<uint8_t>(i);
    }
  }
  if (clients_.size() > 255) {
    return 0;
  }
  clients_.push_back(client);
  return static_cast<uint8_t>(clients_.size() - 1);
}

void WorkerRing::detachFromReactor(int fd) {
  // The reactor's record of the descriptor stays; it removes nothing more when the descriptor
  // is closed (EPOLL_CTL_DEL of a closed descriptor is not needed, and its failure is ignored).
  ::epoll_ctl(reactorFd_, EPOLL_CTL_DEL, fd, nullptr);
}

void WorkerRing::removeClient(uint8_t id) {
  if (id != 0 && id < clients_.size()) {
    clients_[id] = nullptr;
  }
}

io_uring_sqe* WorkerRing::sqe() {
  io_uring_sqe* e = io_uring_get_sqe(&ring_);
  if (e == nullptr) {
    submit();
    e = io_uring_get_sqe(&ring_);
  }
  return e;
}

void WorkerRing::submit() {
  notifyEntering();
  io_uring_submit_and_get_events(&ring_);
  notifySubmitted();
}

void WorkerRing::notifyEntering() {
  for (RingClient* c : clients_) {
    if (c != nullptr) {
      c->beforeEnter();
    }
  }
}

void WorkerRing::notifySubmitted() {
  for (RingClient* c : clients_) {
    if (c != nullptr) {
      c->afterSubmit();
    }
  }
}

void WorkerRing::armReactorPoll() {
  if (reactorArmed_) {
    return;
  }
  if (io_uring_sqe* e = sqe()) {
    io_uring_prep_poll_add(e, reactorFd_, POLLIN);
    io_uring_sqe_set_data64(e, tag(0, kReactorReady));
    reactorArmed_ = true;
  }
}

void WorkerRing::enter(bool sleep) {
  // One system call: submits what the last pass queued (sends, re-armed receives), runs the
  // receives the kernel deferred and, with nothing to do, sleeps until a completion.
  notifyEntering();
  if (sleep && io_uring_cq_ready(&ring_) == 0) {
    io_uring_submit_and_wait(&ring_, 1);
  } else {
    io_uring_submit_and_get_events(&ring_);
  }
  notifySubmitted();
}

bool WorkerRing::reap() {
  io_uring_cqe* cqe = nullptr;
  unsigned n = 0;
  // Each completion is consumed before it is handed out: a handler that throws does not see
  // it again when run() is called once more.
  while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe != nullptr) {
    if (++n > kMaxCompletionsPerPass) {
      return false;  // more next pass
    }
    const io_uring_cqe c = *cqe;
    io_uring_cqe_seen(&ring_, cqe);
    const size_t id = c.user_data >> 56;
    if (id == 0) {
      if (payloadOf(c.user_data) == kReactorReady) {
        reactorArmed_ = false;  // the io_context ran since (run()); armed again next pass
      }
      continue;
    }
    if (id < clients_.size() && clients_[id] != nullptr) {
      clients_[id]->onCompletion(c);
    }
  }
  return true;
}

bool WorkerRing::reactorPollCompleted() {
  unsigned head;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    if ((cqe->user_data >> 56) == 0 && payloadOf(cqe->user_data) == kReactorReady) {
      return true;
    }
  }
  return false;
}

void WorkerRing::run() {
  tCurrentRing = this;
  struct Clear {
    ~Clear() { tCurrentRing = nullptr; }
  } clear;
  if (!enabled_) {
    // This thread is the ring's only submitter from here on (io_uring_enable_rings, which this
    // liburing declares but does not export).
    ::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
    enabled_ = true;
  }
  io_.poll();
  while (!io_.stopped()) {
    armReactorPoll();
    // After prepareSleep(), a stop() or a post interrupts the reactor; one that came before it
    // is seen here.
    const bool sleep = AsioReactorAccess::prepareSleep(io_) && !io_.stopped();
    enter(sleep);
    // What was posted to the worker, or completed by its reactor, before these completions
    // arrived runs first, in the order an io_context alone would have kept: a request's state
    // posted by another worker is in place before that request's answer is handled here.
    if (!sleep || reactorPollCompleted() || AsioReactorAccess::handlersQueued(io_)) {
      io_.poll();
      if (io_.stopped()) {
        break;
      }
    }
    reap();
  }
}

#endif

}  // namespace evosip::runtime
