#include <chrono>

#include <gtest/gtest.h>

#include <evosip/rtp/pacer.hpp>

namespace evosip::rtp {
namespace {

using namespace std::chrono_literals;
using TimePoint = Pacer::TimePoint;

const TimePoint kStart = TimePoint(1000s);

TEST(Pacer, OnePacketPerPtimeOnAnAbsoluteSchedule) {
  Pacer pacer({}, kStart);
  EXPECT_EQ(pacer.nextDue(), kStart);
  EXPECT_EQ(pacer.poll(kStart - 1us).send, 0u);
  EXPECT_EQ(pacer.poll(kStart).send, 1u);
  EXPECT_EQ(pacer.poll(kStart).send, 0u);  // nothing twice
  EXPECT_EQ(pacer.nextDue(), kStart + 20ms);
  // The loop wakes 3 ms late every time; the schedule does not slide.
  for (int n = 1; n <= 100; ++n) {
    const auto due = pacer.nextDue();
    EXPECT_EQ(due, kStart + n * 20ms);
    const auto d = pacer.poll(due + 3ms);
    EXPECT_EQ(d.send, 1u);
    EXPECT_EQ(d.skipped, 0u);
  }
  EXPECT_EQ(pacer.nextDue(), kStart + 101 * 20ms);
  EXPECT_EQ(pacer.sent(), 101u);
  EXPECT_EQ(pacer.jitter().count(), 101u);
  EXPECT_GE(pacer.jitter().p50(), 3000us);
  EXPECT_LE(pacer.jitter().p50(), 3000us + 375us);  // within the bucket's 12.5 %
  EXPECT_EQ(pacer.jitter().max(), 3000us);
}

TEST(Pacer, LateWakeUpCatchesUpThenSkips) {
  Pacer pacer({.ptime = 20ms, .maxBurst = 3}, kStart);
  ASSERT_EQ(pacer.poll(kStart).send, 1u);
  // Woke 45 ms after the packet due at +20: +20, +40 and +60 are due (3 <= burst).
  auto d = pacer.poll(kStart + 65ms);
  EXPECT_EQ(d.send, 3u);  // +20, +40, +60
  EXPECT_EQ(d.skipped, 0u);
  EXPECT_EQ(pacer.nextDue(), kStart + 80ms);
  // A 200 ms stall: +80..+260 due (10 packets), 3 sent, 7 skipped.
  d = pacer.poll(kStart + 265ms);
  EXPECT_EQ(d.send, 3u);
  EXPECT_EQ(d.skipped, 7u);
  EXPECT_EQ(pacer.nextDue(), kStart + 280ms);
  EXPECT_EQ(pacer.sent(), 7u);
  EXPECT_EQ(pacer.skipped(), 7u);
  // Back on schedule.
  d = pacer.poll(kStart + 280ms);
  EXPECT_EQ(d.send, 1u);
  EXPECT_EQ(d.skipped, 0u);
  // Lateness of the sent ones only: the +220, +240, +260 packets at +265 -> 45, 25, 5 ms.
  EXPECT_EQ(pacer.jitter().max(), 45000us);
}

TEST(Pacer, RestartBeginsANewSchedule) {
  Pacer pacer({}, kStart);
  pacer.poll(kStart);
  pacer.poll(kStart + 20ms);
  const TimePoint resume = kStart + 5s + 7ms;
  pacer.restart(resume);
  EXPECT_EQ(pacer.nextDue(), resume);
  EXPECT_EQ(pacer.poll(resume + 1ms).send, 1u);
  EXPECT_EQ(pacer.nextDue(), resume + 20ms);
}

TEST(Pacer, NonIntegralPtimeDoesNotDrift) {
  Pacer pacer({.ptime = 30ms}, kStart);
  TimePoint now = kStart;
  uint64_t sent = 0;
  // A loop that polls every 7 ms for ten minutes sends exactly one packet per 30 ms.
  for (int i = 0; i < 10 * 60 * 1000 / 7; ++i) {
    sent += pacer.poll(now).send;
    now += 7ms;
  }
  const auto elapsed = now - 7ms - kStart;
  EXPECT_EQ(sent, static_cast<uint64_t>(elapsed / 30ms) + 1);
  EXPECT_LE(pacer.jitter().max(), 7000us);
}

TEST(JitterHistogram, Percentiles) {
  JitterHistogram h;
  EXPECT_EQ(h.p50(), 0us);
  for (int i = 0; i < 98; ++i) {
    h.record(100us);
  }
  h.record(5ms);
  h.record(20ms);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_GE(h.p50(), 100us);
  EXPECT_LE(h.p50(), 112us);
  EXPECT_GE(h.p99(), 5000us);
  EXPECT_LE(h.p99(), 5625us);
  EXPECT_EQ(h.percentile(100), 20000us);
  EXPECT_EQ(h.max(), 20000us);
  EXPECT_EQ(h.mean(), (98 * 100us + 5000us + 20000us) / 100);
  h.record(-5ms);  // early counts as on time
  EXPECT_EQ(h.percentile(0), 0us);
  h.reset();
  EXPECT_EQ(h.count(), 0u);
}

TEST(JitterHistogram, SmallValuesAreExactAndBucketsBoundTheError) {
  JitterHistogram h;
  h.record(7us);
  EXPECT_EQ(h.p50(), 7us);
  for (int64_t v : {8, 9, 15, 16, 17, 100, 999, 1000, 123456, 999999999}) {
    JitterHistogram one;
    one.record(std::chrono::microseconds(v));
    one.record(std::chrono::microseconds(v * 10 + 10));  // keeps max above the bucket
    const auto p = one.percentile(50).count();
    EXPECT_GE(p, v);
    EXPECT_LE(p, v + v / 8) << v;
  }
}

}  // namespace
}  // namespace evosip::rtp
