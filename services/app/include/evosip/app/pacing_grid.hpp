#pragma once
// The send schedule of one worker (docs/architecture.md "app"): one timer drives every call
// the worker plays to. The 20 ms frame period is cut into `slots` ticks (1 ms each by
// default); each call is given the least loaded slot when it starts sending and sends one
// frame at every tick of its slot, so a call's packets are exactly 20 ms apart and the work
// of N calls is spread over the period (N/20 sends per tick) instead of one burst.
//
// The schedule is absolute (origin + k * tick): a late wake-up never shifts later ticks.
// After a long stall, ticks older than `maxLateTicks` are dropped (counted); the calls notice
// from the tick's cycle number that they missed frames and skip that much audio and RTP time.
// The caller owns the clock and passes the time in (tests use a manual one).

#include <chrono>
#include <cstdint>
#include <vector>

namespace evosip::app {

class PacingGrid {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  struct Settings {
    std::chrono::nanoseconds ptime = std::chrono::milliseconds(20);
    uint32_t slots = 20;
    uint32_t maxLateTicks = 40;  // two frame periods
  };

  struct Tick {
    uint64_t index = 0;  // ticks since the origin
    uint32_t slot = 0;   // index % slots
    uint64_t cycle = 0;  // index / slots: the frame number of every call in this slot
    TimePoint due;
  };

  PacingGrid(const Settings& settings, TimePoint origin);

  std::chrono::nanoseconds tickLength() const { return tick_; }
  const Settings& settings() const { return settings_; }

  // The ticks due at `now`, oldest first, each once. fn(const Tick&).
  template <typename Fn>
  void poll(TimePoint now, Fn&& fn) {
    if (now < dueOf(next_)) {
      return;
    }
    const uint64_t last = indexAtOrBefore(now);
    if (last >= next_ + settings_.maxLateTicks) {
      skipped_ += last - settings_.maxLateTicks + 1 - next_;
      next_ = last - settings_.maxLateTicks + 1;
    }
    for (; next_ <= last; ++next_) {
      fn(tickOf(next_));
    }
  }

  // When the next tick is due.
  TimePoint nextDue() const { return dueOf(next_); }
  // After an idle time: the next tick is the first grid point at or after `now` (no catch-up).
  void resync(TimePoint now);

  // Slot bookkeeping: the least loaded slot (lowest index on ties), and giving it back.
  uint32_t acquireSlot();
  void releaseSlot(uint32_t slot);
  uint32_t load(uint32_t slot) const { return load_[slot]; }
  uint64_t active() const { return active_; }

  uint64_t skippedTicks() const { return skipped_; }

  Tick tickOf(uint64_t index) const {
    return {index, static_cast<uint32_t>(index % settings_.slots), index / settings_.slots,
            dueOf(index)};
  }
  // The cycle (frame number) a call sending from now on in `slot` sends first.
  uint64_t nextCycleOf(uint32_t slot) const;

 private:
  TimePoint dueOf(uint64_t index) const { return origin_ + tick_ * static_cast<int64_t>(index); }
  uint64_t indexAtOrBefore(TimePoint t) const;

  Settings settings_;
  std::chrono::nanoseconds tick_;
  TimePoint origin_;
  uint64_t next_ = 0;
  uint64_t skipped_ = 0;
  std::vector<uint32_t> load_;
  uint64_t active_ = 0;
};

}  // namespace evosip::app
