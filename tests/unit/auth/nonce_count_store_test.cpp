#include <manual_clock.hpp>

#include <gtest/gtest.h>

#include <evosip/auth/nonce_count_store.hpp>

namespace evosip::auth {
namespace {

using std::chrono::seconds;

constexpr auto kFresh = NonceCountVerdict::kFresh;
constexpr auto kReplay = NonceCountVerdict::kReplay;

TEST(NonceCountStoreTest, AcceptsOnlyIncreasingCounts) {
  test::ManualClock clock;
  MemoryNonceCountStore store({}, clock);
  EXPECT_EQ(store.checkAndSet("n1", 1, seconds(300)), kFresh);
  EXPECT_EQ(store.checkAndSet("n1", 1, seconds(300)), kReplay);
  EXPECT_EQ(store.checkAndSet("n1", 2, seconds(300)), kFresh);
  EXPECT_EQ(store.checkAndSet("n1", 5, seconds(300)), kFresh);
  EXPECT_EQ(store.checkAndSet("n1", 4, seconds(300)), kReplay);
  // Counts are per nonce.
  EXPECT_EQ(store.checkAndSet("n2", 1, seconds(300)), kFresh);
  EXPECT_EQ(store.checkAndSet("n2", 0, seconds(300)), kReplay);
  EXPECT_EQ(store.checkAndSet("n3", 0, seconds(300)), kReplay);
  EXPECT_EQ(store.size(), 2u);
}

TEST(NonceCountStoreTest, CallbackFormAnswersInline) {
  test::ManualClock clock;
  MemoryNonceCountStore store({}, clock);
  NonceCountStore& base = store;
  std::vector<NonceCountVerdict> got;
  base.checkAndSet("n", 1, seconds(10), [&](NonceCountVerdict v) { got.push_back(v); });
  base.checkAndSet("n", 1, seconds(10), [&](NonceCountVerdict v) { got.push_back(v); });
  EXPECT_EQ(got, (std::vector<NonceCountVerdict>{kFresh, kReplay}));
}

TEST(NonceCountStoreTest, RecordsExpireWithTheirTtl) {
  test::ManualClock clock;
  MemoryNonceCountStore store({}, clock);
  EXPECT_EQ(store.checkAndSet("n1", 3, seconds(10)), kFresh);
  clock.advance(seconds(9));
  EXPECT_EQ(store.checkAndSet("n1", 3, seconds(1)), kReplay);  // a shorter ttl keeps the longer
  EXPECT_EQ(store.checkAndSet("n2", 1, seconds(100)), kFresh);
  clock.advance(seconds(1));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.checkAndSet("n2", 2, seconds(100)), kFresh);  // drops n1 on the way
  EXPECT_EQ(store.size(), 1u);
}

TEST(NonceCountStoreTest, BoundedWithoutOpeningAReplayWindow) {
  test::ManualClock clock;
  MemoryNonceCountStore store({.maxEntries = 3}, clock);
  // Four nonces issued and used one second apart (t = 0..3 s, expiring at 300..303 s): the
  // record that expires first is dropped for room.
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(store.checkAndSet("n" + std::to_string(i), 1, seconds(300)), kFresh);
    clock.advance(seconds(1));
  }
  EXPECT_EQ(store.size(), 3u);
  // t = 4 s. n0's record is gone, but replaying it is still refused (its expiry, 300 s, is
  // not after the dropped one's), and so is a never-seen nonce as old as it.
  EXPECT_EQ(store.checkAndSet("n0", 1, seconds(296)), kReplay);
  EXPECT_EQ(store.checkAndSet("older", 1, seconds(290)), kReplay);
  // Nonces that expire later than the dropped one plus the slack (2 s) are unaffected.
  EXPECT_EQ(store.checkAndSet("n4", 1, seconds(300)), kFresh);
  EXPECT_EQ(store.size(), 3u);
  EXPECT_EQ(store.checkAndSet("n3", 1, seconds(299)), kReplay);
  EXPECT_EQ(store.checkAndSet("n3", 2, seconds(299)), kFresh);
  // Once the dropped records' time has passed, the table works as before.
  clock.advance(seconds(400));
  EXPECT_EQ(store.checkAndSet("late", 1, seconds(300)), kFresh);
  EXPECT_EQ(store.size(), 1u);
}

}  // namespace
}  // namespace evosip::auth
