#pragma once
// Time source injected into everything that has timers, so tests can drive time by hand.

#include <chrono>

namespace evosip::runtime {

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
  // Wall-clock time, for what other hosts must read the same way (nonce timestamps, records).
  virtual std::chrono::system_clock::time_point wallNow() const {
    return std::chrono::system_clock::now();
  }
};

class SteadyClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
  static SteadyClock& instance();
};

}  // namespace evosip::runtime
