#pragma once
// A clock that moves only when the test says so (RFC 3261 timers, failover deadlines).

#include <chrono>

#include <evosip/runtime/clock.hpp>

namespace evosip::test {

class ManualClock final : public runtime::Clock {
 public:
  time_point now() const override { return now_; }
  void advance(std::chrono::nanoseconds d) { now_ += d; }

 private:
  time_point now_{std::chrono::seconds(1000)};
};

}  // namespace evosip::test
