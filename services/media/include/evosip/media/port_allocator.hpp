#pragma once
// RTP/RTCP port pairs of one worker (docs/architecture.md "media"). The configured range
// media.port_min..port_max is split into disjoint per-worker sub-ranges, so each worker allocates
// from its own allocator without locks. A pair is an even RTP port and the RTCP port after it.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <evosip/base/result.hpp>

namespace evosip::media {

struct PortRange {
  uint16_t first = 0;  // even: the first RTP port
  uint16_t last = 0;   // the last RTCP port (odd), first <= last
  size_t pairs() const { return first > last ? 0 : (size_t(last) - first + 1) / 2; }
};

// Splits min..max into `workers` disjoint sub-ranges of whole pairs (even RTP port, RTCP = RTP +
// 1). Fails when there are fewer pairs than workers.
Result<std::vector<PortRange>> splitPortRange(uint16_t min, uint16_t max, size_t workers);

class PortAllocator {
 public:
  explicit PortAllocator(PortRange range);

  // The next free pair after the last one handed out (wrapping around at the end of the range):
  // returns its RTP port. kUnavailable when every pair is taken.
  Result<uint16_t> allocate();
  // Gives a pair back (by its RTP port); ports outside the range or already free are ignored.
  void release(uint16_t rtpPort);

  size_t capacity() const { return used_.size(); }
  size_t inUse() const { return inUse_; }
  const PortRange& range() const { return range_; }

 private:
  PortRange range_;
  std::vector<bool> used_;  // one flag per pair
  size_t next_ = 0;         // where the next search starts
  size_t inUse_ = 0;
};

}  // namespace evosip::media
