#include <gtest/gtest.h>

#include <evosip/edge/rate_limiter.hpp>

namespace evosip::edge {
namespace {

const auto kA = boost::asio::ip::make_address("192.0.2.1");
const auto kB = boost::asio::ip::make_address("2001:db8::1");
constexpr int64_t kSecond = 1'000'000'000;

TEST(RateLimiterTest, DisabledAllowsEverything) {
  RateLimiter off(0, 0);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(off.allow(kA, 0));
  }
}

TEST(RateLimiterTest, BurstThenRefillAtTheConfiguredRate) {
  RateLimiter limiter(10, 10);
  int allowed = 0;
  for (int i = 0; i < 100; ++i) {
    allowed += limiter.allow(kA, 0) ? 1 : 0;
  }
  EXPECT_EQ(allowed, 10);
  EXPECT_FALSE(limiter.allow(kA, kSecond / 20));  // half a token
  EXPECT_TRUE(limiter.allow(kA, kSecond / 10));   // one token after 100 ms
  allowed = 0;
  for (int i = 0; i < 100; ++i) {
    allowed += limiter.allow(kA, 10 * kSecond) ? 1 : 0;  // capped at the burst
  }
  EXPECT_EQ(allowed, 10);
}

TEST(RateLimiterTest, SourcesHaveTheirOwnBuckets) {
  RateLimiter limiter(1, 1);
  EXPECT_TRUE(limiter.allow(kA, 0));
  EXPECT_FALSE(limiter.allow(kA, 0));
  EXPECT_TRUE(limiter.allow(kB, 0));
  EXPECT_FALSE(limiter.allow(kB, 0));
}

TEST(RateLimiterTest, MemoryIsBoundedByTheSlotTable) {
  RateLimiter limiter(1, 1, 64);
  EXPECT_TRUE(limiter.allow(kA, 0));
  EXPECT_FALSE(limiter.allow(kA, 0));  // its one token is spent
  // 10,000 other sources pass through the 64 slots: each takes a slot over with a full bucket.
  int allowed = 0;
  for (uint32_t i = 0; i < 10000; ++i) {
    allowed += limiter.allow(boost::asio::ip::address_v4(0x0a000000 + i), 0) ? 1 : 0;
  }
  EXPECT_EQ(allowed, 10000);
  // kA's slot was taken over: the table forgot kA rather than grow, so kA starts full again.
  EXPECT_TRUE(limiter.allow(kA, 0));
  EXPECT_FALSE(limiter.allow(kA, 0));
}

}  // namespace
}  // namespace evosip::edge
