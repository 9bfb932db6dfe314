#pragma once
// A thread with its own io_context and one Store, where a role keeps its state in the shared
// store off its workers (a relay's media.state, an app's app.state): the records and leases are
// written there, and the callbacks of the store run there. start() opens the store and runs the
// first step on the thread; stop() runs the last step there and waits a bounded time for it,
// then closes the store on the thread and joins it.

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <evosip/store/store.hpp>

namespace evosip::store {

class StoreThread {
 public:
  StoreThread();
  ~StoreThread();
  StoreThread(const StoreThread&) = delete;
  StoreThread& operator=(const StoreThread&) = delete;

  boost::asio::io_context& io() { return io_; }
  // On the thread only: the store, null before start() and once stop() closed it (a timer that
  // fired before stop() cancelled it finds it null).
  Store* store() const { return store_.get(); }
  bool running() const { return thread_.joinable(); }

  // Opens a store of `factory` (null: one made from `settings`), then runs `first` on the thread.
  void start(std::shared_ptr<StoreFactory> factory, const Settings& settings,
             std::function<void()> first);
  // On the thread: `last` (none: skipped), which calls its argument once its writes are
  // confirmed (waited for at most `wait`); then `close` (cancel the timers), the store closed,
  // the thread joined. Does nothing when not running.
  void stop(std::function<void(std::function<void()> done)> last, std::chrono::milliseconds wait,
            std::function<void()> close);

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<Store> store_;
  std::thread thread_;
};

}  // namespace evosip::store
