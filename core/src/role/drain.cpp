#include <evosip/role/drain.hpp>

namespace evosip::role {

std::string_view drainStateName(DrainState s) {
  switch (s) {
    case DrainState::kServing:
      return "serving";
    case DrainState::kDraining:
      return "draining";
    case DrainState::kStopping:
      return "stopping";
  }
  return "serving";
}

Drain::Drain(DrainSettings settings, const runtime::Clock& clock)
    : settings_(settings), clock_(clock) {}

bool Drain::begin() {
  std::lock_guard lock(mutex_);
  if (state_ != DrainState::kServing) {
    return false;
  }
  state_ = DrainState::kDraining;
  quietSince_ = clock_.now();
  lastActivity_.reset();
  busy_ = false;
  return true;
}

bool Drain::beginStop() {
  std::lock_guard lock(mutex_);
  if (state_ == DrainState::kStopping) {
    return false;
  }
  const auto now = clock_.now();
  if (state_ == DrainState::kServing) {
    // A drain an RPC began keeps its quiet time: arrivals stopped when it began.
    quietSince_ = now;
    lastActivity_.reset();
    busy_ = false;
  }
  state_ = DrainState::kStopping;
  deadline_ = now + settings_.timeout;
  return true;
}

bool Drain::end() {
  std::lock_guard lock(mutex_);
  if (state_ == DrainState::kStopping) {
    return false;
  }
  state_ = DrainState::kServing;
  return true;
}

DrainState Drain::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

bool Drain::poll(uint64_t inProgress, uint64_t activity) {
  std::lock_guard lock(mutex_);
  if (state_ == DrainState::kServing) {
    return false;
  }
  const auto now = clock_.now();
  // Quiet from the first poll that sees no work (the work ended between two polls) or from
  // the poll that saw the latest arrival.
  if (inProgress > 0 || busy_ || (lastActivity_ && *lastActivity_ != activity)) {
    quietSince_ = now;
  }
  busy_ = inProgress > 0;
  lastActivity_ = activity;
  if (state_ != DrainState::kStopping) {
    return false;
  }
  if (inProgress == 0 && now - quietSince_ >= settings_.idle) {
    return true;
  }
  if (now >= deadline_) {
    timedOut_ = true;
    return true;
  }
  return false;
}

bool Drain::timedOut() const {
  std::lock_guard lock(mutex_);
  return timedOut_;
}

}  // namespace evosip::role
