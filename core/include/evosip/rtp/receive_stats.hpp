#pragma once
// Receive-side bookkeeping for one RTP stream (what a recorder needs, not a jitter buffer):
// classifies each packet by its sequence number as in order, after a gap, late, duplicate or
// a restart, and counts loss the RFC 3550 (A.3) way: expected - received.

#include <cstdint>

namespace evosip::rtp {

enum class Arrival : uint8_t {
  kFirst,      // the first packet of the stream
  kInOrder,    // the next sequence number, or after a gap (see `missing`)
  kLate,       // behind the newest, not seen before (reordered): already counted as missing
  kDuplicate,  // seen before
  kStray,      // a jump of more than kMaxDropout, not (yet) confirmed: ignore the packet
  kRestart,    // the packet after a stray one followed it: the sender restarted; counting
               // continues from here (the stray packet is counted as well)
};

struct ArrivalInfo {
  Arrival kind = Arrival::kFirst;
  uint16_t missing = 0;         // kInOrder: packets skipped before this one
  uint32_t timestampDelta = 0;  // kInOrder: timestamp minus the newest packet's before it
};

class ReceiveStats {
 public:
  static constexpr uint16_t kMaxDropout = 3000;  // RFC 3550 A.1
  static constexpr uint16_t kMaxMisorder = 100;

  ArrivalInfo onPacket(uint16_t sequence, uint32_t timestamp);

  uint64_t received() const { return received_; }  // distinct packets, duplicates excluded
  uint64_t expected() const;                       // newest - first + 1 (since the restart)
  uint64_t lost() const;                           // expected - received, never negative
  uint64_t late() const { return late_; }
  uint64_t duplicates() const { return duplicates_; }
  uint64_t strays() const { return strays_; }
  uint64_t restarts() const { return restarts_; }
  uint64_t extendedHighest() const { return cycles_ + maxSeq_; }

 private:
  void start(uint16_t sequence, uint32_t timestamp);

  bool started_ = false;
  uint16_t maxSeq_ = 0;
  uint64_t cycles_ = 0;  // count of sequence wraps << 16
  uint64_t baseSeq_ = 0;
  uint32_t maxTimestamp_ = 0;
  uint64_t window_ = 0;  // bit i: maxSeq_ - i has been received
  uint64_t received_ = 0;
  uint64_t receivedBefore_ = 0;  // before the last restart
  uint64_t expectedBefore_ = 0;
  uint64_t late_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t restarts_ = 0;
  uint64_t strays_ = 0;
  bool pendingRestart_ = false;
  uint16_t restartSeq_ = 0;
};

}  // namespace evosip::rtp
