#include <fmt/format.h>

#include <evosip/media/port_allocator.hpp>

namespace evosip::media {

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

PortAllocator::PortAllocator(PortRange range) : range_(range), used_(range.pairs(), false) {}

Result<uint16_t> PortAllocator::allocate() {
  const size_t n = used_.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t at = (next_ + i) % n;
    if (!used_[at]) {
      used_[at] = true;
      ++inUse_;
      next_ = (at + 1) % n;
      return static_cast<uint16_t>(range_.first + 2 * at);
    }
  }
  return makeError(Errc::kUnavailable,
                   fmt::format("no free port pair in {}..{}", range_.first, range_.last));
}

void PortAllocator::release(uint16_t rtpPort) {
  if (rtpPort < range_.first || rtpPort > range_.last || (rtpPort - range_.first) % 2 != 0) {
    return;
  }
  const size_t at = (rtpPort - range_.first) / 2;
  if (used_[at]) {
    used_[at] = false;
    --inUse_;
  }
}

}  // namespace evosip::media
