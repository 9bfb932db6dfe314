#pragma once
// The epoll instance a worker thread waits in when it does not wait in io_uring (sip.io: epoll,
// or auto where io_uring is refused). Descriptors watched here (the SIP transport's UDP sockets)
// are registered once, edge-triggered: no epoll_ctl per wait, as Asio's reactor needs for each
// async_wait. The io_context's own reactor is watched too (its epoll descriptor turns readable
// when one of its descriptors or timers is ready or work is posted to the worker), and its
// handlers run, with io_context::poll(), before the watched descriptors of the same wake-up.
// Built against the Asio internals runtime::AsioReactorAccess knows; open() returns nullptr
// elsewhere and the worker waits in io_context::run() as before.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

namespace evosip::runtime {

class WorkerEpoll {
 public:
  // An epoll instance for the worker of io; nullptr (why set) when it cannot be used.
  static std::unique_ptr<WorkerEpoll> open(boost::asio::io_context& io, std::string* why);
  ~WorkerEpoll();
  WorkerEpoll(const WorkerEpoll&) = delete;
  WorkerEpoll& operator=(const WorkerEpoll&) = delete;

  // The instance the calling worker thread waits in, or nullptr.
  static WorkerEpoll* current();

  // Watches fd for reading from now on (edge-triggered): onReady runs on the worker each time
  // data arrives after a read found the descriptor empty, so it must read until then (or come
  // back to it by a post). The reactor stops watching fd. Returns the watch's id (0: refused).
  uint64_t watch(int fd, std::function<void()> onReady);
  // Stops the watch before fd is closed: its onReady never runs again.
  void unwatch(uint64_t id);

  // The worker thread's loop until the io_context is stopped. Call again after it threw.
  void run();

 private:
  explicit WorkerEpoll(boost::asio::io_context& io) : io_(io) {}

  struct Watch {
    int fd = -1;
    uint32_t generation = 0;
    std::function<void()> onReady;
  };

  boost::asio::io_context& io_;
  int epollFd_ = -1;
  int reactorFd_ = -1;
  std::vector<Watch> watches_;  // by slot; an event names slot and generation
  std::vector<uint32_t> freeSlots_;
};

}  // namespace evosip::runtime
