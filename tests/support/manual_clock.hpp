#pragma once
// A clock that moves only when the test says so (RFC 3261 timers, failover deadlines, nonce
// ages): steady and wall time advance together.

#include <chrono>

#include <evosip/runtime/clock.hpp>

namespace evosip::test {

class ManualClock final : public runtime::Clock {
 public:
  time_point now() const override { return now_; }
  std::chrono::system_clock::time_point wallNow() const override {
    return wallStart_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            now_ - time_point{std::chrono::seconds(1000)});
  }
  void advance(std::chrono::nanoseconds d) { now_ += d; }

 private:
  time_point now_{std::chrono::seconds(1000)};
  std::chrono::system_clock::time_point wallStart_{std::chrono::seconds(1'800'000'000)};
};

}  // namespace evosip::test
