#include <gtest/gtest.h>

#include <evosip/edge/auth_ban.hpp>

namespace evosip::edge {
namespace {

const auto kA = boost::asio::ip::make_address("192.0.2.1");
const auto kB = boost::asio::ip::make_address("2001:db8::1");
constexpr int64_t kSecond = 1'000'000'000;

AuthBanSettings settings(uint32_t failures, size_t slots = 1024) {
  AuthBanSettings s;
  s.failures = failures;
  s.window = std::chrono::seconds(60);
  s.banFor = std::chrono::seconds(300);
  s.slots = slots;
  return s;
}

TEST(AuthBanTest, TheNthFailureInTheWindowBansForTheBanTime) {
  AuthBanTable bans(settings(3), 42);
  int64_t t = 1000 * kSecond;
  EXPECT_FALSE(bans.recordFailure(kA, t));
  EXPECT_FALSE(bans.recordFailure(kA, t + kSecond));
  EXPECT_FALSE(bans.banned(kA, t + kSecond));
  EXPECT_TRUE(bans.recordFailure(kA, t + 2 * kSecond));  // the ban starts here
  EXPECT_TRUE(bans.banned(kA, t + 2 * kSecond));
  EXPECT_FALSE(bans.banned(kB, t + 2 * kSecond));  // others are not
  EXPECT_TRUE(bans.banned(kA, t + 301 * kSecond));
  EXPECT_FALSE(bans.banned(kA, t + 303 * kSecond));  // it expires
  EXPECT_EQ(bans.activeBans(t + 303 * kSecond), 0u);
}

TEST(AuthBanTest, FailuresOutsideTheWindowDoNotAddUp) {
  AuthBanTable bans(settings(3), 42);
  int64_t t = 1000 * kSecond;
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(bans.recordFailure(kB, t));
    EXPECT_FALSE(bans.recordFailure(kB, t + kSecond));
    t += 61 * kSecond;  // the window restarts
  }
  EXPECT_FALSE(bans.banned(kB, t));
}

TEST(AuthBanTest, DisabledNeverBans) {
  AuthBanTable bans(settings(0), 42);
  EXPECT_FALSE(bans.enabled());
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(bans.recordFailure(kA, i));
  }
  EXPECT_FALSE(bans.banned(kA, 100));
  EXPECT_EQ(bans.slots(), 0u);
}

// Many addresses cannot grow the table, nor push out the bans it holds: a set whose slots are
// all banned keeps them, and the newcomers are not tracked until one expires.
TEST(AuthBanTest, MemoryIsFixedAndBansSurviveAFloodOfNewAddresses) {
  AuthBanTable bans(settings(2, 64), 7);
  ASSERT_EQ(bans.slots(), 64u);
  const int64_t t = 1000 * kSecond;
  bans.recordFailure(kA, t);
  ASSERT_TRUE(bans.recordFailure(kA, t));
  for (uint32_t i = 0; i < 100000; ++i) {
    const auto ip = boost::asio::ip::address_v4(0x0a000000u + i);
    bans.recordFailure(ip, t + 1);
    bans.recordFailure(ip, t + 1);
  }
  EXPECT_EQ(bans.slots(), 64u);
  EXPECT_TRUE(bans.banned(kA, t + 2));
  EXPECT_LE(bans.activeBans(t + 2), 64u);
  EXPECT_GT(bans.activeBans(t + 2), 32u);  // the table filled with bans
}

}  // namespace
}  // namespace evosip::edge
