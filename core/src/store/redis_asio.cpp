#include "redis_asio.hpp"

#include <hiredis/async.h>
#include <memory>
#include <poll.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>

namespace evosip::store::detail {

namespace {

namespace asio = boost::asio;

// Asio registers descriptors edge-triggered and its waits are never speculative, while hiredis
// reads or writes once per event and expects to be told again while the socket stays ready.
// So before waiting, poll(2) checks readiness: a socket that is ready already is handled at once.
class AsioEvents : public std::enable_shared_from_this<AsioEvents> {
 public:
  AsioEvents(redisAsyncContext* context, const asio::any_io_executor& executor)
      : context_(context), socket_(executor, context->c.fd) {}

  static void install(redisAsyncContext* context, const asio::any_io_executor& executor) {
    auto events = std::make_shared<AsioEvents>(context, executor);
    events->self_ = events;  // released by cleanup
    context->ev.data = events.get();
    context->ev.addRead = [](void* p) { static_cast<AsioEvents*>(p)->want(kRead, true); };
    context->ev.delRead = [](void* p) { static_cast<AsioEvents*>(p)->want(kRead, false); };
    context->ev.addWrite = [](void* p) { static_cast<AsioEvents*>(p)->want(kWrite, true); };
    context->ev.delWrite = [](void* p) { static_cast<AsioEvents*>(p)->want(kWrite, false); };
    context->ev.cleanup = [](void* p) { static_cast<AsioEvents*>(p)->detach(); };
  }

 private:
  enum Direction { kRead = 0, kWrite = 1 };

  void want(Direction d, bool on) {
    wanted_[d] = on;
    arm(d);
  }

  void arm(Direction d) {
    if (context_ == nullptr || !wanted_[d] || armed_[d]) {
      return;
    }
    armed_[d] = true;
    auto onReady = [self = shared_from_this(), d](boost::system::error_code ec) {
      self->ready(d, ec);
    };
    pollfd p{socket_.native_handle(), static_cast<short>(d == kRead ? POLLIN : POLLOUT), 0};
    if (::poll(&p, 1, 0) > 0) {
      asio::post(socket_.get_executor(), [onReady]() { onReady({}); });
    } else {
      socket_.async_wait(d == kRead ? asio::posix::descriptor_base::wait_read
                                    : asio::posix::descriptor_base::wait_write,
                         onReady);
    }
  }

  void ready(Direction d, boost::system::error_code ec) {
    armed_[d] = false;
    if (ec || context_ == nullptr || !wanted_[d]) {
      return;
    }
    // Either call may free the context, which detaches us (context_ becomes null).
    if (d == kRead) {
      redisAsyncHandleRead(context_);
    } else {
      redisAsyncHandleWrite(context_);
    }
    arm(kRead);
    arm(kWrite);
  }

  void detach() {
    context_ = nullptr;
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    socket_.release();  // hiredis closes the socket itself
    self_.reset();      // pending handlers still hold a reference
  }

  redisAsyncContext* context_;
  asio::posix::stream_descriptor socket_;
  bool wanted_[2] = {false, false};
  bool armed_[2] = {false, false};
  std::shared_ptr<AsioEvents> self_;
};

}  // namespace

void attachToAsio(redisAsyncContext* context, const boost::asio::any_io_executor& executor) {
  AsioEvents::install(context, executor);
}

}  // namespace evosip::store::detail
