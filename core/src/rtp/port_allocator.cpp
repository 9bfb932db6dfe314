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

PortAllocator::PortAllocator(PortRange range)
    : range_(range), used_(range.pairs(), false), at_(range.pairs(), 0) {
  free_.reserve(used_.size());
  for (size_t i = used_.size(); i > 0; --i) {
    at_[i - 1] = static_cast<uint32_t>(free_.size());
    free_.push_back(static_cast<uint32_t>(i - 1));
  }
}

void PortAllocator::take(size_t position) {
  const uint32_t pair = free_[position];
  free_[position] = free_.back();
  at_[free_[position]] = static_cast<uint32_t>(position);
  free_.pop_back();
  used_[pair] = true;
}

Result<uint16_t> PortAllocator::allocate() {
  if (free_.empty()) {
    return makeError(Errc::kUnavailable,
                     fmt::format("no free port pair in {}..{}", range_.first, range_.last));
  }
  const size_t pick = ::arc4random_uniform(static_cast<uint32_t>(free_.size()));
  const uint32_t pair = free_[pick];
  take(pick);
  return static_cast<uint16_t>(range_.first + 2 * pair);
}

std::optional<size_t> PortAllocator::pairOf(uint16_t rtpPort) const {
  if (rtpPort < range_.first || rtpPort > range_.last || (rtpPort - range_.first) % 2 != 0) {
    return std::nullopt;
  }
  return (rtpPort - range_.first) / 2;
}

bool PortAllocator::reserve(uint16_t rtpPort) {
  const auto pair = pairOf(rtpPort);
  if (!pair || used_[*pair]) {
    return false;
  }
  take(at_[*pair]);
  return true;
}

void PortAllocator::release(uint16_t rtpPort) {
  const auto pair = pairOf(rtpPort);
  if (pair && used_[*pair]) {
    used_[*pair] = false;
    at_[*pair] = static_cast<uint32_t>(free_.size());
    free_.push_back(static_cast<uint32_t>(*pair));
  }
}

}  // namespace evosip::rtp
