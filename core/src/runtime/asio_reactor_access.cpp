#include "asio_reactor_access.hpp"

#include <boost/version.hpp>

#if BOOST_VERSION / 100 == 1081 && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && !defined(BOOST_ASIO_DISABLE_THREADS)
#define EVOSIP_ASIO_ACCESS 1
#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/op_queue.hpp>
#include <boost/asio/detail/scheduler.hpp>
#endif

namespace evosip::runtime {

#ifdef EVOSIP_ASIO_ACCESS

namespace {

namespace detail = boost::asio::detail;

// Names a private member: an explicit instantiation may take its address (the standard does
// not check access there), and the friend function hands that address out.
template <typename Tag, typename Tag::type Member>
struct Expose {
  friend typename Tag::type member(Tag) { return Member; }
};

struct SchedulerMutex {
  using type = detail::conditionally_enabled_mutex detail::scheduler::*;
  friend type member(SchedulerMutex);
};
struct SchedulerQueue {
  using type = detail::op_queue<detail::scheduler_operation> detail::scheduler::*;
  friend type member(SchedulerQueue);
};
struct SchedulerInterrupted {
  using type = bool detail::scheduler::*;
  friend type member(SchedulerInterrupted);
};
struct ReactorEpollFd {
  using type = int detail::epoll_reactor::*;
  friend type member(ReactorEpollFd);
};

template struct Expose<SchedulerMutex, &detail::scheduler::mutex_>;
template struct Expose<SchedulerQueue, &detail::scheduler::op_queue_>;
template struct Expose<SchedulerInterrupted, &detail::scheduler::task_interrupted_>;
template struct Expose<ReactorEpollFd, &detail::epoll_reactor::epoll_fd_>;

}  // namespace

bool AsioReactorAccess::supported() {
  return true;
}

int AsioReactorAccess::epollFd(boost::asio::io_context& io) {
  auto& reactor = boost::asio::use_service<detail::epoll_reactor>(io);
  // Asio queues its reactor task only once an I/O object or timer exists. Until then nothing
  // runs the reactor, whose descriptor stays readable (its interrupter is set at creation): a
  // worker watching it would wake at once, forever. Queue the task now, as a socket would.
  boost::asio::use_service<detail::scheduler>(io).init_task();
  return reactor.*member(ReactorEpollFd{});
}

namespace {

// The reactor task is always queued while no thread runs it (the reactor exists: epollFd()),
// so a second entry is a handler waiting to run. Called with the scheduler's mutex held.
bool queued(detail::scheduler& s) {
  auto& queue = s.*member(SchedulerQueue{});
  detail::scheduler_operation* first = detail::op_queue_access::front(queue);
  return first != nullptr && detail::op_queue_access::next(first) != nullptr;
}

}  // namespace

bool AsioReactorAccess::handlersQueued(boost::asio::io_context& io) {
  auto& s = boost::asio::use_service<detail::scheduler>(io);
  detail::conditionally_enabled_mutex::scoped_lock lock(s.*member(SchedulerMutex{}));
  return queued(s);
}

bool AsioReactorAccess::prepareSleep(boost::asio::io_context& io) {
  auto& s = boost::asio::use_service<detail::scheduler>(io);
  detail::conditionally_enabled_mutex::scoped_lock lock(s.*member(SchedulerMutex{}));
  if (queued(s)) {
    return false;
  }
  // As when a thread blocks in the reactor (scheduler::do_run_one): a post now interrupts it.
  s.*member(SchedulerInterrupted{}) = false;
  return true;
}

#else

bool AsioReactorAccess::supported() {
  return false;
}
int AsioReactorAccess::epollFd(boost::asio::io_context&) {
  return -1;
}
bool AsioReactorAccess::prepareSleep(boost::asio::io_context&) {
  return false;
}
bool AsioReactorAccess::handlersQueued(boost::asio::io_context&) {
  return false;
}

#endif

}  // namespace evosip::runtime
