// The epoll instance a worker thread waits in; see worker_epoll.hpp.
#include <array>
#include <cerrno>
#include <cstring>
#include <sys/epoll.h>
#include <unistd.h>

#include <fmt/format.h>

#include <evosip/runtime/worker_epoll.hpp>

#include "asio_reactor_access.hpp"

namespace evosip::runtime {

namespace {

thread_local WorkerEpoll* tCurrentEpoll = nullptr;

constexpr uint64_t kReactor = UINT64_MAX;  // the event of the io_context's reactor
constexpr int kEventsPerWait = 64;

uint64_t eventData(uint32_t slot, uint32_t generation) {
  return (uint64_t(generation) << 32) | slot;
}

}  // namespace

std::unique_ptr<WorkerEpoll> WorkerEpoll::open(boost::asio::io_context& io, std::string* why) {
  if (!AsioReactorAccess::supported()) {
    *why = "this Boost.Asio's reactor cannot be watched from another epoll instance";
    return nullptr;
  }
  std::unique_ptr<WorkerEpoll> e(new WorkerEpoll(io));
  e->epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (e->epollFd_ < 0) {
    *why = fmt::format("epoll_create1: {}", std::strerror(errno));
    return nullptr;
  }
  e->reactorFd_ = AsioReactorAccess::epollFd(io);
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: readable while the reactor has something ready
  ev.data.u64 = kReactor;
  if (::epoll_ctl(e->epollFd_, EPOLL_CTL_ADD, e->reactorFd_, &ev) != 0) {
    *why = fmt::format("epoll_ctl (the reactor's descriptor): {}", std::strerror(errno));
    return nullptr;
  }
  return e;
}

WorkerEpoll::~WorkerEpoll() {
  if (epollFd_ >= 0) {
    ::close(epollFd_);
  }
}

WorkerEpoll* WorkerEpoll::current() {
  return tCurrentEpoll;
}

uint64_t WorkerEpoll::watch(int fd, std::function<void()> onReady) {
  if (freeSlots_.empty()) {
    freeSlots_.push_back(static_cast<uint32_t>(watches_.size()));
    watches_.emplace_back();
  }
  const uint32_t slot = freeSlots_.back();
  Watch& w = watches_[slot];
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.u64 = eventData(slot, w.generation);
  if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return 0;
  }
  freeSlots_.pop_back();
  // The reactor's record of the descriptor stays (Asio closes the socket); its readiness no
  // longer wakes the reactor as well.
  ::epoll_ctl(reactorFd_, EPOLL_CTL_DEL, fd, nullptr);
  w.fd = fd;
  w.onReady = std::move(onReady);
  return eventData(slot, w.generation) + (uint64_t(1) << 63);  // never 0
}

void WorkerEpoll::unwatch(uint64_t id) {
  const uint64_t data = id & ~(uint64_t(1) << 63);
  const auto slot = static_cast<uint32_t>(data);
  if (id == 0 || slot >= watches_.size() || watches_[slot].generation != uint32_t(data >> 32) ||
      watches_[slot].fd < 0) {
    return;
  }
  Watch& w = watches_[slot];
  ::epoll_ctl(epollFd_, EPOLL_CTL_DEL, w.fd, nullptr);
  w.fd = -1;
  w.onReady = nullptr;
  ++w.generation;  // an event of the old watch still in hand is ignored
  freeSlots_.push_back(slot);
}

void WorkerEpoll::run() {
  tCurrentEpoll = this;
  struct Clear {
    ~Clear() { tCurrentEpoll = nullptr; }
  } clear;
  std::array<epoll_event, kEventsPerWait> events{};
  io_.poll();
  while (!io_.stopped()) {
    // After prepareSleep(), a stop() or a post interrupts the reactor; one that came before it
    // is seen here.
    const bool sleep = AsioReactorAccess::prepareSleep(io_) && !io_.stopped();
    const int n = ::epoll_wait(epollFd_, events.data(), kEventsPerWait, sleep ? -1 : 0);
    if (n < 0 && errno != EINTR) {
      io_.run_one();  // cannot wait here (cannot happen with a valid descriptor): Asio's wait
      continue;
    }
    bool reactor = false;
    for (int i = 0; i < n; ++i) {
      reactor = reactor || events[i].data.u64 == kReactor;
    }
    // What was posted to the worker, or completed by its reactor, runs first, as in WorkerRing.
    if (!sleep || reactor || AsioReactorAccess::handlersQueued(io_)) {
      io_.poll();
      if (io_.stopped()) {
        break;
      }
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events[i].data.u64;
      const auto slot = static_cast<uint32_t>(data);
      if (data == kReactor || slot >= watches_.size() ||
          watches_[slot].generation != uint32_t(data >> 32) || !watches_[slot].onReady) {
        continue;
      }
      // A copy: the call may unwatch (and so destroy) the watch's own function.
      const std::function<void()> onReady = watches_[slot].onReady;
      onReady();
    }
  }
}

}  // namespace evosip::runtime
