#include <evosip/rtp/receive_stats.hpp>

namespace evosip::rtp {

void ReceiveStats::start(uint16_t sequence, uint32_t timestamp) {
  started_ = true;
  maxSeq_ = sequence;
  cycles_ = 0;
  baseSeq_ = sequence;
  maxTimestamp_ = timestamp;
  window_ = 1;
  pendingRestart_ = false;
  ++received_;
}

uint64_t ReceiveStats::expected() const {
  if (!started_) {
    return 0;
  }
  return expectedBefore_ + (cycles_ + maxSeq_ - baseSeq_ + 1);
}

uint64_t ReceiveStats::lost() const {
  const uint64_t e = expected();
  return e > received_ ? e - received_ : 0;
}

ArrivalInfo ReceiveStats::onPacket(uint16_t sequence, uint32_t timestamp) {
  ArrivalInfo info;
  if (!started_) {
    start(sequence, timestamp);
    info.kind = Arrival::kFirst;
    return info;
  }
  const uint16_t delta = static_cast<uint16_t>(sequence - maxSeq_);
  if (delta == 0) {
    ++duplicates_;
    info.kind = Arrival::kDuplicate;
    return info;
  }
  if (delta < kMaxDropout) {
    if (sequence < maxSeq_) {
      cycles_ += 0x10000;
    }
    window_ = delta >= 64 ? 1 : (window_ << delta) | 1;
    maxSeq_ = sequence;
    info.kind = Arrival::kInOrder;
    info.missing = static_cast<uint16_t>(delta - 1);
    info.timestampDelta = timestamp - maxTimestamp_;
    maxTimestamp_ = timestamp;
    pendingRestart_ = false;
    ++received_;
    return info;
  }
  const uint16_t behind = static_cast<uint16_t>(maxSeq_ - sequence);
  if (behind <= kMaxMisorder) {
    if (behind < 64) {
      const uint64_t bit = uint64_t{1} << behind;
      if ((window_ & bit) != 0) {
        ++duplicates_;
        info.kind = Arrival::kDuplicate;
        return info;
      }
      window_ |= bit;
    }
    const uint64_t highest = cycles_ + maxSeq_;
    if (highest >= behind && highest - behind < baseSeq_) {
      baseSeq_ = highest - behind;  // older than the first packet seen: widen the expectation
    }
    ++late_;
    ++received_;
    info.kind = Arrival::kLate;
    return info;
  }
  // A very large jump: a restarted sender if the next packet follows it (RFC 3550 A.1).
  if (pendingRestart_ && sequence == restartSeq_) {
    expectedBefore_ = expected();
    ++restarts_;
    start(sequence, timestamp);
    ++received_;  // the stray packet before this one
    if (sequence == 0) {
      cycles_ = 0x10000;  // the stray packet was 0xFFFF, in the cycle before
      baseSeq_ = 0xFFFF;
    } else {
      baseSeq_ = sequence - 1u;
    }
    window_ = 3;
    info.kind = Arrival::kRestart;
    return info;
  }
  pendingRestart_ = true;
  restartSeq_ = static_cast<uint16_t>(sequence + 1);
  ++strays_;
  info.kind = Arrival::kStray;
  return info;
}

}  // namespace evosip::rtp
