#include <gtest/gtest.h>

#include <evosip/router/parked_requests.hpp>

namespace evosip::router {
namespace {

using namespace std::chrono_literals;
using TimePoint = ParkedRequests::TimePoint;

transport::DnsQuery name(std::string host) {
  return transport::DnsQuery{std::move(host), 5060, "_sip._udp"};
}

TEST(ParkedRequests, AnswerTakesEveryRequestOfItsNameOnly) {
  ParkedRequests parked(8);
  const TimePoint t0{};
  int resumed = 0;
  ASSERT_TRUE(parked.park(1, name("a.test"), t0 + 1s, [&] { ++resumed; }));
  ASSERT_TRUE(parked.park(2, name("b.test"), t0 + 1s, [&] { resumed += 10; }));
  ASSERT_TRUE(parked.park(3, name("a.test"), t0 + 1s, [&] { ++resumed; }));
  auto taken = parked.take(name("a.test"));
  ASSERT_EQ(taken.size(), 2u);
  for (auto& p : taken) {
    p.resume();
  }
  EXPECT_EQ(resumed, 2);
  EXPECT_EQ(parked.size(), 1u);
  EXPECT_TRUE(parked.take(name("a.test")).empty());
}

TEST(ParkedRequests, RefusesBeyondCapacityAndTwiceTheSameRequest) {
  ParkedRequests parked(2);
  const TimePoint t0{};
  EXPECT_TRUE(parked.park(1, name("a.test"), t0 + 1s, [] {}));
  EXPECT_FALSE(parked.park(1, name("b.test"), t0 + 1s, [] {}));
  EXPECT_TRUE(parked.park(2, name("b.test"), t0 + 1s, [] {}));
  EXPECT_FALSE(parked.park(3, name("c.test"), t0 + 1s, [] {}));
  EXPECT_EQ(parked.size(), 2u);
  parked.take(name("a.test"));
  EXPECT_TRUE(parked.park(3, name("c.test"), t0 + 1s, [] {}));
}

TEST(ParkedRequests, ZeroCapacityParksNothing) {
  ParkedRequests parked(0);
  EXPECT_FALSE(parked.park(1, name("a.test"), TimePoint{} + 1s, [] {}));
  EXPECT_EQ(parked.size(), 0u);
}

TEST(ParkedRequests, DeadlinesExpireInTurn) {
  ParkedRequests parked(8);
  const TimePoint t0{};
  parked.park(1, name("a.test"), t0 + 1s, [] {});
  parked.park(2, name("b.test"), t0 + 3s, [] {});
  parked.park(3, name("c.test"), t0 + 2s, [] {});
  EXPECT_TRUE(parked.takeExpired(t0 + 999ms).empty());
  auto first = parked.takeExpired(t0 + 1s);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].server, 1u);
  EXPECT_TRUE(parked.takeExpired(t0 + 1500ms).empty());
  auto rest = parked.takeExpired(t0 + 10s);
  EXPECT_EQ(rest.size(), 2u);
  EXPECT_EQ(parked.size(), 0u);
  // A later request after the room emptied still gets its deadline.
  parked.park(4, name("d.test"), t0 + 11s, [] {});
  EXPECT_TRUE(parked.takeExpired(t0 + 10500ms).empty());
  EXPECT_EQ(parked.takeExpired(t0 + 11s).size(), 1u);
}

TEST(ParkedRequests, DropsRequestsWhoseTransactionEnded) {
  ParkedRequests parked(8);
  const TimePoint t0{};
  for (uint64_t id = 1; id <= 4; ++id) {
    parked.park(id, name("a.test"), t0 + 1s, [] {});
  }
  EXPECT_EQ(parked.dropIf([](uint64_t id) { return id % 2 == 0; }), 2u);
  EXPECT_EQ(parked.size(), 2u);
  auto left = parked.take(name("a.test"));
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].server, 1u);
  EXPECT_EQ(left[1].server, 3u);
}

}  // namespace
}  // namespace evosip::router
