#pragma once
// Sending on time: an absolute schedule (start + n * ptime, so wake-up errors never
// accumulate), bounded catch-up after a late wake-up, and a histogram of how late packets
// left. The caller owns the clock and passes its time in; tests use a manual one.

#include <array>
#include <chrono>
#include <cstdint>

namespace evosip::rtp {

// Log-linear histogram of non-negative durations in microseconds: exact below 8 µs, then 8
// buckets per power of two (values within 12.5%), up to ~71 minutes.
class JitterHistogram {
 public:
  void record(std::chrono::nanoseconds value);  // negative values count as 0
  uint64_t count() const { return count_; }
  std::chrono::microseconds max() const { return std::chrono::microseconds(max_); }
  std::chrono::microseconds mean() const;
  // The value at or below which `p` percent (0..100) of the recorded values lie, rounded up to
  // its bucket's upper bound and capped at the maximum seen. 0 with nothing recorded.
  std::chrono::microseconds percentile(double p) const;
  std::chrono::microseconds p50() const { return percentile(50); }
  std::chrono::microseconds p99() const { return percentile(99); }
  void reset() { *this = JitterHistogram(); }

 private:
  static constexpr int kBuckets = 8 + 30 * 8;
  static int bucketOf(uint64_t us);
  static uint64_t bucketUpper(int bucket);

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
  uint64_t sum_ = 0;
};

struct PacerSettings {
  std::chrono::nanoseconds ptime = std::chrono::milliseconds(20);
  // At most this many packets are sent back to back after a late wake-up; older due packets
  // are skipped (the caller moves its audio and RTP timestamp on by that many frames).
  uint32_t maxBurst = 3;
};

class Pacer {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // The first packet is due at `start`.
  Pacer(const PacerSettings& settings, TimePoint start);

  struct Due {
    uint32_t send = 0;     // packets to send now, oldest first
    uint32_t skipped = 0;  // packets that were due before those and are dropped
  };
  // What is due at `now`. Every packet it tells to send counts as sent at `now` and its
  // lateness (now - its due time) goes to jitter(). Calling again at the same time returns 0.
  Due poll(TimePoint now);

  // When the next packet is due (the loop sleeps until then).
  TimePoint nextDue() const { return start_ + next_ * settings_.ptime; }
  // Starts a new schedule (after hold or a pause in sending): first packet due at `start`.
  void restart(TimePoint start);

  const JitterHistogram& jitter() const { return jitter_; }
  uint64_t sent() const { return sent_; }
  uint64_t skipped() const { return skipped_; }

 private:
  PacerSettings settings_;
  TimePoint start_;
  uint64_t next_ = 0;  // index of the next due packet on the schedule
  JitterHistogram jitter_;
  uint64_t sent_ = 0;
  uint64_t skipped_ = 0;
};

}  // namespace evosip::rtp
