#pragma once
// RTP/RTCP port pairs of one worker, for the media relay and the app (docs/architecture.md). The
// configured range (media.port_min..port_max, app.rtp_port_min..max) is split into disjoint
// per-worker sub-ranges, so each worker allocates from its own allocator without locks. A pair is
// an even RTP port and the RTCP port after it. Pairs are handed out at random (arc4random:
// unpredictable), so that the ports of the next call cannot be guessed from the last one and
// media cannot be injected into a call before its parties have sent anything.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include <evosip/base/result.hpp>

namespace evosip::rtp {

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

  // A free pair chosen at random: returns its RTP port. kUnavailable when every pair is taken.
  Result<uint16_t> allocate();
  // Marks a given pair taken (by its RTP port): a pair a socket holds already, such as a call's
  // restored from the store after a restart, which allocate() must not hand out. False when the
  // port is outside the range, not a pair's RTP port, or taken already (nothing changes then:
  // the caller must not release it).
  bool reserve(uint16_t rtpPort);
  // Gives a pair back (by its RTP port); ports outside the range or already free are ignored.
  void release(uint16_t rtpPort);

  size_t capacity() const { return used_.size(); }
  size_t inUse() const { return used_.size() - free_.size(); }
  size_t available() const { return free_.size(); }
  const PortRange& range() const { return range_; }

 private:
  // The pair of an RTP port of the range.
  std::optional<size_t> pairOf(uint16_t rtpPort) const;
  // Takes the free pair at `position` of free_.
  void take(size_t position);

  PortRange range_;
  std::vector<bool> used_;      // one flag per pair
  std::vector<uint32_t> free_;  // indexes of the free pairs, in no particular order
  std::vector<uint32_t> at_;    // per pair: its position in free_ while it is free
};

}  // namespace evosip::rtp
