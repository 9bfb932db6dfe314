#include <evosip/role/worker_ticks.hpp>

namespace evosip::role {

WorkerTicks::WorkerTicks(runtime::WorkerPool& pool, std::chrono::milliseconds period,
                         std::function<void(size_t)> tick)
    : pool_(pool), period_(period), tick_(std::move(tick)) {
  for (size_t w = 0; w < pool_.size(); ++w) {
    timers_.push_back(std::make_unique<boost::asio::steady_timer>(pool_.at(w).io()));
  }
}

void WorkerTicks::start() {
  for (size_t w = 0; w < timers_.size(); ++w) {
    pool_.post(w, [this, w] { arm(w); });
  }
}

void WorkerTicks::stop() {
  for (size_t w = 0; w < timers_.size(); ++w) {
    auto* timer = timers_[w].get();
    pool_.post(w, [timer] { timer->cancel(); });
  }
}

void WorkerTicks::arm(size_t worker) {
  auto& t = *timers_[worker];
  t.expires_after(period_);
  t.async_wait([this, worker](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    tick_(worker);
    arm(worker);
  });
}

}  // namespace evosip::role
