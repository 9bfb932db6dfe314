#include <vector>

#include <gtest/gtest.h>

#include <evosip/edge/pending_table.hpp>

namespace evosip::edge {
namespace {

PendingRequest request(size_t bytes, int64_t deadline) {
  PendingRequest p;
  p.bytes.assign(bytes, 'x');
  p.callId = "c";
  p.deadlineNs = deadline;
  return p;
}

// A flood of large requests that no router answers cannot grow the table past its byte bound.
TEST(PendingTableTest, BoundedInEntriesAndInBytes) {
  PendingTable byCount(3, SIZE_MAX);
  for (uint64_t k = 0; k < 3; ++k) {
    EXPECT_TRUE(byCount.upsert(k, request(10, 100)));
  }
  EXPECT_FALSE(byCount.upsert(3, request(10, 100)));
  EXPECT_TRUE(byCount.upsert(1, request(10, 100)));  // a retransmission refreshes its entry

  PendingTable byBytes(1000, 10000);
  uint64_t k = 0;
  while (byBytes.upsert(k, request(3000, 100))) {
    ++k;
  }
  EXPECT_EQ(k, 4u);  // 4 x 3001 crosses 10000: the fifth is refused
  EXPECT_GE(byBytes.bytes(), 10000u);
  EXPECT_TRUE(byBytes.erase(0));
  EXPECT_EQ(byBytes.bytes(), 3u * 3001u);
  EXPECT_TRUE(byBytes.upsert(99, request(3000, 100)));
  size_t expired = 0;
  byBytes.expire(100, [&](uint64_t, PendingRequest&&) { ++expired; });
  EXPECT_EQ(expired, 4u);
  EXPECT_EQ(byBytes.bytes(), 0u);
  EXPECT_EQ(byBytes.size(), 0u);
}

// A "retransmission" under the same key that grew cannot carry the table past its byte bound.
TEST(PendingTableTest, AGrownRetransmissionKeepsTheFirstCopy) {
  PendingTable t(100, 5000);
  EXPECT_TRUE(t.upsert(1, request(100, 100)));
  const size_t before = t.bytes();
  EXPECT_TRUE(t.upsert(1, request(60000, 100)));
  EXPECT_EQ(t.bytes(), before);
  ASSERT_NE(t.find(1), nullptr);
  EXPECT_EQ(t.find(1)->bytes.size(), 100u);
  EXPECT_TRUE(t.upsert(1, request(120, 100)));  // within the bound it is refreshed
  EXPECT_EQ(t.find(1)->bytes.size(), 120u);
}

// A request waits router_timeout_ms, an INVITE in setup setup_check_ms: entries expire in
// deadline order whatever order they came in, and a rescheduled entry only at its new deadline.
TEST(PendingTableTest, ExpiresInDeadlineOrderAcrossDifferentTimeouts) {
  PendingTable t(100);
  EXPECT_TRUE(t.upsert(1, request(10, 1000)));
  EXPECT_TRUE(t.upsert(2, request(10, 300)));
  EXPECT_TRUE(t.upsert(3, request(10, 500)));
  t.reschedule(2, 2000);  // a call in setup: checked later
  std::vector<uint64_t> order;
  auto collect = [&](uint64_t key, PendingRequest&&) { order.push_back(key); };
  t.expire(600, collect);
  EXPECT_EQ(order, (std::vector<uint64_t>{3}));
  t.expire(1500, collect);
  EXPECT_EQ(order, (std::vector<uint64_t>{3, 1}));
  EXPECT_EQ(t.size(), 1u);
  t.expire(2000, collect);
  EXPECT_EQ(order, (std::vector<uint64_t>{3, 1, 2}));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.bytes(), 0u);
}

// A client's retransmission refreshes the bytes but keeps what the router's answers taught the
// entry (a call in setup stays one).
TEST(PendingTableTest, ARetransmissionKeepsTheSetupState) {
  PendingTable t(100);
  PendingRequest p = request(10, 100);
  p.proceeding = true;
  p.relayedProvisional = true;
  p.watchSinceNs = 42;
  EXPECT_TRUE(t.upsert(1, std::move(p)));
  EXPECT_TRUE(t.upsert(1, request(12, 900)));
  ASSERT_NE(t.find(1), nullptr);
  EXPECT_TRUE(t.find(1)->proceeding);
  EXPECT_TRUE(t.find(1)->relayedProvisional);
  EXPECT_EQ(t.find(1)->watchSinceNs, 42);
  EXPECT_EQ(t.find(1)->deadlineNs, 100);
}

// The INVITEs answered non-2xx: each router is taken once (by the ACK), expires after its
// lifetime, and the oldest goes first when the table is full.
TEST(CompletedInvites, TakenOnceExpiredAndBounded) {
  const auto router = [](uint16_t port) {
    return transport::Endpoint{boost::asio::ip::make_address("127.0.0.1"), port};
  };
  CompletedInvites t(3, 1000);
  t.add(1, router(5070), 0);
  t.add(2, router(5071), 10);
  ASSERT_TRUE(t.take(2));
  EXPECT_FALSE(t.take(2));  // its ACK took it
  EXPECT_EQ(t.take(1)->port, 5070);
  t.add(3, router(5070), 20);
  t.add(4, router(5070), 30);
  t.add(5, router(5070), 40);
  t.add(6, router(5071), 50);  // full: the oldest (3) goes
  EXPECT_EQ(t.size(), 3u);
  EXPECT_FALSE(t.take(3));
  t.expire(1035);  // 4 (added at 30) has lived 1000
  EXPECT_FALSE(t.take(4));
  EXPECT_EQ(t.take(6)->port, 5071);
  EXPECT_EQ(t.size(), 1u);
  t.expire(2000);
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace evosip::edge
