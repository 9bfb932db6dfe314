#pragma once
// How long the relay's io_uring worker waits for more packets once one is queued
// (RelaySettings::batchWaitUs is the most), as a pure policy so that it is unit-tested. A wakeup is
// expensive (a context switch; more on a virtual machine); one that serves several packets costs
// nearly the same as one that serves one. At a low packet rate a wakeup serves about one packet, so
// the window is worth its delay; at a high rate several packets are queued by the time the worker
// runs anyway, and a long window would only add latency. So the window is the time in which
// kPacketsPerWindow more packets are expected at the rate measured over the last kIntervalNs, at
// most the maximum: 50 pps (one call) or 10k pps -> the maximum, 25k pps -> 80 us, 50k -> 40 us,
// 200k -> 10 us.

#include <algorithm>
#include <cstdint>

namespace evosip::media {

class BatchWindow {
 public:
  static constexpr uint64_t kPacketsPerWindow = 2;
  static constexpr int64_t kIntervalNs = 10'000'000;

  explicit BatchWindow(uint32_t maxUs) : maxUs_(maxUs), us_(maxUs) {}

  // After each pass: the packets it received and the time (CLOCK_MONOTONIC ns).
  void onPass(uint64_t packets, int64_t nowNs) {
    packets_ += packets;
    if (start_ == 0) {
      start_ = nowNs;
      return;
    }
    const int64_t elapsed = nowNs - start_;
    if (elapsed < kIntervalNs) {
      return;
    }
    // kPacketsPerWindow / rate, in us: kPacketsPerWindow * elapsed / packets.
    const uint64_t wantUs =
        packets_ == 0 ? maxUs_
                      : kPacketsPerWindow * static_cast<uint64_t>(elapsed) / 1000 / packets_;
    us_ = static_cast<uint32_t>(std::min<uint64_t>(wantUs, maxUs_));
    packets_ = 0;
    start_ = nowNs;
  }

  // The window for the next wait (us); 0 = wake at the first packet.
  uint32_t us() const { return us_; }

 private:
  uint32_t maxUs_;
  uint32_t us_;
  uint64_t packets_ = 0;
  int64_t start_ = 0;
};

}  // namespace evosip::media
