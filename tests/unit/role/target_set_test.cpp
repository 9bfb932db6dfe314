#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/role/target_set.hpp>

namespace evosip::role {
namespace {

std::shared_ptr<TargetSet> makeSet(const std::vector<std::string>& uris) {
  auto set = TargetSet::build(uris);
  EXPECT_TRUE(set.has_value());
  return *set;
}

TEST(TargetSetTest, RejectsBadTargets) {
  EXPECT_FALSE(TargetSet::build({"http://1.2.3.4"}).has_value());
  EXPECT_FALSE(TargetSet::build({"sip:router.example.com"}).has_value());
  EXPECT_FALSE(TargetSet::build({"sip:1.2.3.4", "sip:1.2.3.4:5060"}).has_value());
  EXPECT_TRUE(TargetSet::build({"sip:[::1]:5070", "sip:10.0.0.1"}).has_value());
}

TEST(TargetSetTest, ThreeRoutersShareHundredThousandCallIdsEvenly) {
  auto set = makeSet({"sip:10.0.0.1:5060", "sip:10.0.0.2:5060", "sip:10.0.0.3:5060"});
  std::vector<int> counts(3);
  constexpr int kCalls = 100000;
  for (int i = 0; i < kCalls; ++i) {
    std::string callId = "a84b4c76e66710-" + std::to_string(i) + "@pc33.example.com";
    size_t r = set->pick(callId, 0);
    ASSERT_LT(r, 3u);
    ++counts[r];
  }
  for (int c : counts) {
    double share = static_cast<double>(c) / kCalls;
    EXPECT_NEAR(share, 1.0 / 3, 0.02) << c;
  }
}

TEST(TargetSetTest, RemovingOneRouterMovesOnlyItsCalls) {
  auto three = makeSet({"sip:10.0.0.1:5060", "sip:10.0.0.2:5060", "sip:10.0.0.3:5060"});
  auto two = makeSet({"sip:10.0.0.1:5060", "sip:10.0.0.3:5060"});
  int moved = 0;
  int ofRemoved = 0;
  for (int i = 0; i < 100000; ++i) {
    std::string callId = std::to_string(i * 7919) + "@host";
    const std::string& before = three->at(three->pick(callId, 0)).uri;
    const std::string& after = two->at(two->pick(callId, 0)).uri;
    if (before == "sip:10.0.0.2:5060") {
      ++ofRemoved;
      continue;
    }
    if (before != after) {
      ++moved;
    }
  }
  EXPECT_EQ(moved, 0);
  EXPECT_NEAR(ofRemoved / 100000.0, 1.0 / 3, 0.02);
}

TEST(TargetSetTest, OrderDoesNotDependOnListOrderOrSpelling) {
  auto a = makeSet({"sip:10.0.0.1:5060", "sip:10.0.0.2"});
  auto b = makeSet({"sip:10.0.0.2:5060;transport=udp", "sip:10.0.0.1"});
  for (int i = 0; i < 1000; ++i) {
    std::string callId = "call-" + std::to_string(i);
    EXPECT_EQ(a->at(a->pick(callId, 0)).endpoint, b->at(b->pick(callId, 0)).endpoint);
  }
}

TEST(TargetSetTest, DownRouterIsSkippedUntilHoldDownEnds) {
  auto set = makeSet({"sip:10.0.0.1:5060", "sip:10.0.0.2:5060"});
  const std::string callId = "fixed-call-id";
  size_t first = set->pick(callId, 0);
  set->at(first).downUntilNs = 1000;
  size_t second = set->pick(callId, 500);
  EXPECT_NE(first, second);
  EXPECT_EQ(set->pick(callId, 1000), first);
  set->at(second).downUntilNs = 2000;
  EXPECT_EQ(set->pick(callId, 500), SIZE_MAX);
}

TEST(TargetSetTest, DrainingRouterTakesNewWorkOnlyWhenEveryOtherOneDrainsToo) {
  auto set = makeSet({"sip:10.0.0.1:5060", "sip:10.0.0.2:5060", "sip:10.0.0.3:5060"});
  const std::string callId = "fixed-call-id";
  const size_t first = set->pick(callId, 0);
  set->at(first).drainingUntilNs = 1000;
  EXPECT_TRUE(set->at(first).upAt(500));
  const size_t second = set->pick(callId, 500);
  ASSERT_NE(second, SIZE_MAX);
  EXPECT_NE(second, first);
  EXPECT_EQ(set->pick(callId, 1000), first);  // the hold ended
  for (size_t i = 0; i < set->size(); ++i) {
    set->at(i).drainingUntilNs = 1000;
  }
  EXPECT_EQ(set->pick(callId, 500), first);  // all drain: the rendezvous order again
  EXPECT_EQ(set->pick(callId, 500, first), second);
  set->at(first).downUntilNs = 1000;  // a dead one is never chosen
  EXPECT_EQ(set->pick(callId, 500), second);
}

TEST(TargetSetTest, PickCanKeepToOneAddressFamily) {
  auto set = *TargetSet::build({"sip:10.0.0.1", "sip:[2001:db8::1]", "sip:10.0.0.2"});
  for (int i = 0; i < 50; ++i) {
    const std::string key = "call-" + std::to_string(i);
    size_t v4 = set->pick(key, 0, SIZE_MAX, false);
    ASSERT_NE(v4, SIZE_MAX);
    EXPECT_FALSE(set->at(v4).endpoint.ip.is_v6());
    EXPECT_EQ(set->pick(key, 0, SIZE_MAX, true), 1u);
    EXPECT_EQ(set->pick(key, 0, 1, true), SIZE_MAX);  // the only IPv6 one excluded
  }
}

TEST(TargetSetTest, InheritKeepsStateOfRoutersThatStay) {
  auto old = makeSet({"sip:10.0.0.1:5060", "sip:10.0.0.2:5060"});
  old->at(0).forwarded = 42;
  old->at(0).downUntilNs = 99;
  old->at(0).drainingUntilNs = 77;
  auto fresh = makeSet({"sip:10.0.0.1:5060", "sip:10.0.0.3:5060"});
  fresh->inheritFrom(*old);
  EXPECT_EQ(fresh->at(0).forwarded.load(), 42u);
  EXPECT_EQ(fresh->at(0).downUntilNs.load(), 99);
  EXPECT_EQ(fresh->at(0).drainingUntilNs.load(), 77);
  EXPECT_EQ(fresh->at(1).forwarded.load(), 0u);
}

}  // namespace
}  // namespace evosip::role

namespace evosip::role {
namespace {

TEST(TargetSetTest, MediaRelayAddressesAsKamailioWritesThem) {
  auto set = TargetSet::buildAddresses({"udp:127.0.0.1:2223", "10.0.0.7", "[::1]:2224"}, 2223);
  ASSERT_TRUE(set) << set.error().message;
  ASSERT_EQ((*set)->size(), 3u);
  EXPECT_EQ((*set)->at(0).endpoint.str(), "127.0.0.1:2223");
  EXPECT_EQ((*set)->at(1).endpoint.str(), "10.0.0.7:2223");
  EXPECT_EQ((*set)->at(2).endpoint.str(), "[::1]:2224");
  EXPECT_EQ((*set)->at(0).uri, "udp:127.0.0.1:2223");
  EXPECT_FALSE(TargetSet::buildAddresses({"relay.example.com:2223"}, 2223));
  EXPECT_FALSE(TargetSet::buildAddresses({"127.0.0.1:2223", "udp:127.0.0.1:2223"}, 2223));
  // The same relay gets the same Call-IDs whichever spelling a router was given.
  auto other = TargetSet::buildAddresses({"127.0.0.1:2223", "10.0.0.7:2223", "[::1]:2224"}, 1);
  ASSERT_TRUE(other);
  for (int i = 0; i < 100; ++i) {
    const std::string key = "call-" + std::to_string(i);
    EXPECT_EQ((*set)->pick(key, 0), (*other)->pick(key, 0));
  }
}

}  // namespace
}  // namespace evosip::role
