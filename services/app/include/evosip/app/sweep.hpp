#pragma once
// A periodic look at every call, spread over several ticks: each tick looks at the next
// ceil(size / parts) entries of a list, round robin, so every entry is looked at about once per
// `parts` ticks and no single tick pays for all of them. The app's deadline sweep (maximum
// duration, RTP timeout, menu timers) ran over all calls every 100 ms on the pacing thread:
// 2,000 calls took 0.5 ms there (a cache miss or three per call on the VM), and the paced tick
// behind it left that much late - one tick in a hundred, exactly the p99.
//
// Entries may be removed between ticks (swap with the last): an entry then moved behind the
// cursor waits one more round, none is skipped for good.

#include <algorithm>
#include <cstddef>

namespace evosip::app {

class RoundRobinSweep {
 public:
  explicit RoundRobinSweep(size_t parts) : parts_(std::max<size_t>(1, parts)) {}

  // fn(index) for this tick's share of a list of `size` entries.
  template <typename Fn>
  void next(size_t size, Fn&& fn) {
    if (size == 0) {
      cursor_ = 0;
      return;
    }
    const size_t count = (size + parts_ - 1) / parts_;
    for (size_t i = 0; i < count; ++i) {
      if (cursor_ >= size) {
        cursor_ = 0;
      }
      fn(cursor_++);
    }
  }

 private:
  size_t parts_;
  size_t cursor_ = 0;
};

}  // namespace evosip::app
