// When a relay must fence itself (heartbeat_fence.hpp).
#include <algorithm>

#include <evosip/media/heartbeat_fence.hpp>

namespace evosip::media {

void HeartbeatFence::written(const std::string& instance, TimePoint sent) {
  auto [it, inserted] = written_.try_emplace(instance, sent);
  if (!inserted) {
    it->second = std::max(it->second, sent);  // confirmations may come back out of order
  }
}

void HeartbeatFence::drop(const std::string& instance) {
  written_.erase(instance);
}

std::optional<HeartbeatFence::TimePoint> HeartbeatFence::deadline() const {
  if (written_.empty()) {
    return std::nullopt;
  }
  auto oldest = std::min_element(written_.begin(), written_.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
  return oldest->second + ttl_ - margin_;
}

bool HeartbeatFence::fencedAt(TimePoint now) const {
  const auto d = deadline();
  return d && now >= *d;
}

}  // namespace evosip::media
