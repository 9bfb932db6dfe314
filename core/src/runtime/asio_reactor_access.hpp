#pragma once
// What a worker that waits in io_uring needs of its io_context's scheduler, which Asio does
// not expose: the reactor's epoll descriptor (watched by the ring) and the switch that makes
// work posted from other threads interrupt the reactor while the worker sleeps in the ring.
// Built against the internals of Boost.Asio 1.81 only; supported() is false elsewhere.

#include <boost/asio/io_context.hpp>

namespace evosip::runtime {

class AsioReactorAccess {
 public:
  // False when this Boost's Asio internals are not the ones this file knows.
  static bool supported();
  // The reactor's epoll descriptor (the reactor is created when it does not exist yet, and its
  // task queued, so that running the io_context runs it).
  static int epollFd(boost::asio::io_context& io);
  // Before the worker sleeps outside the io_context: true when no handler is queued, and then
  // work posted from now on interrupts the reactor (its epoll descriptor turns readable), as
  // while a thread blocks in io_context::run(); false when handlers are queued (run them).
  static bool prepareSleep(boost::asio::io_context& io);
  // Handlers are queued (posted, or completed by the reactor) and wait for io_context::poll().
  static bool handlersQueued(boost::asio::io_context& io);
};

}  // namespace evosip::runtime
