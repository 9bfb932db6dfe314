#include <cstdlib>

#include <fmt/format.h>

#include <evosip/rtp/port_allocator.hpp>

namespace evosip::rtp {

Result<std::vector<PortRange>> splitPortRange(uint16_t min, uint16_t max, size_t workers) {
  if (workers == 0) {
    return makeError(Errc::kInvalid, "no workers");
  }
  const uint32_t first = (min % 2 == 0) ? min : uint32_t(min) + 1;
  if (first + 1 > max) {
    return makeError(Errc::kInvalid,
                     fmt::format("{}..{} holds no RTP/RTCP port pair (even RTP port, odd RTCP "
                                 "port)",
                                 min, max));
  }
  const size_t pairs = (size_t(max) - first + 1) / 2;
  if (pairs < workers) {
    return makeError(Errc::kInvalid, fmt::format("{}..{} holds {} port pairs, fewer than the {} "
                                                 "workers (each worker needs its own pairs)",
                                                 min, max, pairs, workers));
  }
  std::vector<PortRange> out;
  const size_t base = pairs / workers;
  const size_t extra = pairs % workers;
  uint32_t at = first;
  for (size_t w = 0; w < workers; ++w) {
    const size_t n = base + (w < extra ? 1 : 0);
    PortRange r;
    r.first = static_cast<uint16_t>(at);
    r.last = static_cast<uint16_t>(at + 2 * n - 1);
    out.push_back(r);
    at += 2 * static_cast<uint32_t>(n);
  }
  return out;
}

PortAllocator::PortAllocator(PortRange range) : range_(range), used_(range.pairs(), false) {
  free_.reserve(used_.size());
  for (size_t i = used_.size(); i > 0; --i) {
    free_.push_back(static_cast<uint32_t>(i - 1));
  }
}

Result<uint16_t> PortAllocator::allocate() {
  if (free_.empty()) {
    return makeError(Errc::kUnavailable,
                     fmt::format("no free port pair in {}..{}", range_.first, range_.last));
  }
  const size_t pick = ::arc4random_uniform(static_cast<uint32_t>(free_.size()));
  const uint32_t at = free_[pick];
  free_[pick] = free_.back();
  free_.pop_back();
  used_[at] = true;
  return static_cast<uint16_t>(range_.first + 2 * at);
}

void PortAllocator::release(uint16_t rtpPort) {
  if (rtpPort < range_.first || rtpPort > range_.last || (rtpPort - range_.first) % 2 != 0) {
    return;
  }
  const size_t at = (rtpPort - range_.first) / 2;
  if (used_[at]) {
    used_[at] = false;
    free_.push_back(static_cast<uint32_t>(at));
  }
}

}  // namespace evosip::rtp
