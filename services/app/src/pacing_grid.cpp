#include <algorithm>

#include <evosip/app/pacing_grid.hpp>

namespace evosip::app {

PacingGrid::PacingGrid(const Settings& settings, TimePoint origin)
    : settings_(settings), origin_(origin) {
  settings_.slots = std::max<uint32_t>(1, settings_.slots);
  settings_.maxLateTicks = std::max<uint32_t>(1, settings_.maxLateTicks);
  tick_ = settings_.ptime / settings_.slots;
  load_.assign(settings_.slots, 0);
}

uint64_t PacingGrid::indexAtOrBefore(TimePoint t) const {
  if (t < origin_) {
    return 0;
  }
  return static_cast<uint64_t>((t - origin_) / tick_);
}

void PacingGrid::resync(TimePoint now) {
  if (now <= dueOf(next_)) {
    return;
  }
  uint64_t i = indexAtOrBefore(now);
  if (dueOf(i) < now) {
    ++i;
  }
  next_ = i;
}

uint32_t PacingGrid::acquireSlot() {
  uint32_t best = 0;
  for (uint32_t s = 1; s < settings_.slots; ++s) {
    if (load_[s] < load_[best]) {
      best = s;
    }
  }
  ++load_[best];
  ++active_;
  return best;
}

void PacingGrid::releaseSlot(uint32_t slot) {
  if (slot < load_.size() && load_[slot] > 0) {
    --load_[slot];
    --active_;
  }
}

uint64_t PacingGrid::nextCycleOf(uint32_t slot) const {
  const uint64_t cycle = next_ / settings_.slots;
  return (next_ % settings_.slots) <= slot ? cycle : cycle + 1;
}

}  // namespace evosip::app
