#include <vector>

#include <gtest/gtest.h>

#include <evosip/app/pacing_grid.hpp>

namespace evosip::app {
namespace {

using namespace std::chrono;
using TP = PacingGrid::TimePoint;

const TP kOrigin = TP(seconds(100));

std::vector<PacingGrid::Tick> poll(PacingGrid& g, TP now) {
  std::vector<PacingGrid::Tick> out;
  g.poll(now, [&](const PacingGrid::Tick& t) { out.push_back(t); });
  return out;
}

TEST(PacingGrid, OneTickPerMillisecondOnAnAbsoluteSchedule) {
  PacingGrid g({}, kOrigin);
  EXPECT_EQ(g.tickLength(), milliseconds(1));
  EXPECT_TRUE(poll(g, kOrigin - microseconds(1)).empty());
  auto t = poll(g, kOrigin);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].slot, 0u);
  EXPECT_EQ(t[0].cycle, 0u);
  EXPECT_TRUE(poll(g, kOrigin).empty());  // each tick once
  // Woken 300 µs late for tick 1: it is still due at origin + 1 ms (no drift).
  t = poll(g, kOrigin + microseconds(1300));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].due, kOrigin + milliseconds(1));
  EXPECT_EQ(g.nextDue(), kOrigin + milliseconds(2));
}

TEST(PacingGrid, SlotsRepeatEveryFramePeriod) {
  PacingGrid g({}, kOrigin);
  auto t = poll(g, kOrigin + milliseconds(45));
  ASSERT_EQ(t.size(), 40u);  // at most maxLateTicks after a stall
  t = poll(g, kOrigin + milliseconds(65));
  ASSERT_EQ(t.size(), 20u);
  for (const auto& tick : t) {
    EXPECT_EQ(tick.slot, tick.index % 20);
    EXPECT_EQ(tick.cycle, tick.index / 20);
    EXPECT_EQ(tick.due, kOrigin + milliseconds(tick.index));
  }
}

TEST(PacingGrid, ALongStallDropsOldTicksAndCountsThem) {
  PacingGrid g({}, kOrigin);
  poll(g, kOrigin);
  auto t = poll(g, kOrigin + milliseconds(100));  // ticks 1..100 are due
  ASSERT_EQ(t.size(), 40u);
  EXPECT_EQ(t.front().index, 61u);
  EXPECT_EQ(t.back().index, 100u);
  EXPECT_EQ(g.skippedTicks(), 60u);
}

TEST(PacingGrid, ResyncAfterIdleDoesNotCatchUp) {
  PacingGrid g({}, kOrigin);
  poll(g, kOrigin);
  g.resync(kOrigin + milliseconds(500) + microseconds(10));
  EXPECT_EQ(g.nextDue(), kOrigin + milliseconds(501));
  auto t = poll(g, kOrigin + milliseconds(501));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(g.skippedTicks(), 0u);
}

TEST(PacingGrid, CallsSpreadOverTheLeastLoadedSlots) {
  PacingGrid g({}, kOrigin);
  std::vector<uint32_t> slots;
  for (int i = 0; i < 40; ++i) {
    slots.push_back(g.acquireSlot());
  }
  for (uint32_t s = 0; s < 20; ++s) {
    EXPECT_EQ(g.load(s), 2u);
  }
  EXPECT_EQ(g.active(), 40u);
  g.releaseSlot(7);
  EXPECT_EQ(g.acquireSlot(), 7u);
  g.releaseSlot(99);  // not a slot: ignored
  EXPECT_EQ(g.active(), 40u);
}

TEST(PacingGrid, ACallSendsEvery20msInItsSlot) {
  // A call in slot 5 starting at 3 ms sends at 5, 25, 45 ms with cycles 0, 1, 2.
  PacingGrid g({}, kOrigin);
  poll(g, kOrigin + milliseconds(3));
  EXPECT_EQ(g.nextCycleOf(5), 0u);
  EXPECT_EQ(g.nextCycleOf(2), 1u);  // slot 2 of this cycle has passed
  std::vector<TP> sends;
  for (int ms = 4; ms <= 50; ++ms) {
    for (const auto& t : poll(g, kOrigin + milliseconds(ms))) {
      if (t.slot == 5) {
        sends.push_back(t.due);
      }
    }
  }
  ASSERT_EQ(sends.size(), 3u);
  EXPECT_EQ(sends[1] - sends[0], milliseconds(20));
  EXPECT_EQ(sends[2] - sends[1], milliseconds(20));
}

}  // namespace
}  // namespace evosip::app
