#pragma once
// The drain of one instance (DESIGN.md section 8): instance.drain or the first SIGTERM turn
// readiness off and make the role refuse new work; work in progress goes on. After a SIGTERM
// the process exits once nothing has been in progress (and nothing has arrived) for the idle
// time, or when the drain timeout passes, whichever comes first. instance.undrain ends a drain
// an RPC began; it is refused once a signal began the stop.
//
// Thread-safe: the control thread (RPCs, /readyz) and the signal thread call it.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>

#include <evosip/runtime/clock.hpp>

namespace evosip::role {

enum class DrainState {
  kServing,   // takes new work
  kDraining,  // instance.drain: refuses new work, serves what is in progress, does not exit
  kStopping,  // SIGTERM: as kDraining, and exits when drained or at the timeout
};

std::string_view drainStateName(DrainState s);

struct DrainSettings {
  std::chrono::seconds timeout{30};   // drain_timeout_s
  std::chrono::milliseconds idle{0};  // drain_idle_s
};

class Drain {
 public:
  Drain(DrainSettings settings, const runtime::Clock& clock);

  // instance.drain. False when the instance was draining already.
  bool begin();
  // The first SIGTERM: drains (if not yet) and starts the timeout. False when stopping already.
  bool beginStop();
  // instance.undrain. False (and nothing changes) while stopping.
  bool end();

  DrainState state() const;
  bool draining() const { return state() != DrainState::kServing; }

  // True once a stopping instance may exit: nothing in progress and no new arrival (activity is
  // a running count of arrivals, 0 for a role that does not count them) for the idle time since
  // the drain began, or the timeout passed since the stop began. Call it periodically.
  bool poll(uint64_t inProgress, uint64_t activity);
  // The exit poll() allowed came from the timeout, with work still in progress.
  bool timedOut() const;

 private:
  DrainSettings settings_;
  const runtime::Clock& clock_;
  mutable std::mutex mutex_;
  DrainState state_ = DrainState::kServing;
  runtime::Clock::time_point quietSince_{};
  runtime::Clock::time_point deadline_{};
  std::optional<uint64_t> lastActivity_;
  bool busy_ = false;  // the last poll saw work in progress
  bool timedOut_ = false;
};

}  // namespace evosip::role
