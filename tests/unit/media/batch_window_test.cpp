// The io_uring worker's batch window: the time in which two more packets are expected at the
// measured rate, at most the configured maximum.
#include <gtest/gtest.h>

#include <evosip/media/batch_window.hpp>

namespace evosip::media {
namespace {

// Feeds `pps` for `ms` milliseconds in passes of 100 us.
void feed(BatchWindow& w, int64_t& now, uint64_t pps, int ms) {
  for (int i = 0; i < ms * 10; ++i) {
    now += 100'000;
    w.onPass(pps / 10'000, now);
  }
}

TEST(BatchWindow, StartsAtTheMaximum) {
  BatchWindow w(100);
  EXPECT_EQ(w.us(), 100u);
  BatchWindow off(0);
  int64_t now = 1'000'000'000;
  feed(off, now, 10'000, 50);
  EXPECT_EQ(off.us(), 0u);  // 0 stays off whatever the rate
}

TEST(BatchWindow, ShrinksWithTheRateAndGrowsBack) {
  BatchWindow w(100);
  int64_t now = 1'000'000'000;
  feed(w, now, 10'000, 30);  // 2 packets take 200 us: capped
  EXPECT_EQ(w.us(), 100u);
  feed(w, now, 50'000, 30);  // 2 packets in 40 us
  EXPECT_EQ(w.us(), 40u);
  feed(w, now, 200'000, 30);
  EXPECT_EQ(w.us(), 10u);
  feed(w, now, 20'000, 30);
  EXPECT_EQ(w.us(), 100u);
}

TEST(BatchWindow, IdleMeansTheMaximum) {
  BatchWindow w(100);
  int64_t now = 1'000'000'000;
  feed(w, now, 100'000, 30);
  EXPECT_EQ(w.us(), 20u);
  now += 1'000'000'000;  // a second without a pass, then one packet
  w.onPass(1, now);
  EXPECT_EQ(w.us(), 100u);
}

}  // namespace
}  // namespace evosip::media
