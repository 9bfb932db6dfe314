#pragma once
// A periodic tick on every worker (failover deadlines, RFC 3261 timers): one steady_timer per
// worker, re-armed after each tick, cancelled on its own worker by stop().

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include <evosip/runtime/worker_pool.hpp>

namespace evosip::role {

class WorkerTicks {
 public:
  // tick(workerIndex) runs on that worker every period, from start() until stop().
  WorkerTicks(runtime::WorkerPool& pool, std::chrono::milliseconds period,
              std::function<void(size_t)> tick);
  // Arms the timers; call once the pool runs (or before: the arming is posted).
  void start();
  // Cancels every timer on its worker; call before WorkerPool::stop().
  void stop();

 private:
  void arm(size_t worker);

  runtime::WorkerPool& pool_;
  std::chrono::milliseconds period_;
  std::function<void(size_t)> tick_;
  std::vector<std::unique_ptr<boost::asio::steady_timer>> timers_;
};

}  // namespace evosip::role
