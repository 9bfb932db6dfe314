// The fence of a relay that cannot write its heartbeat (heartbeat_fence.hpp): it is up strictly
// before a peer may take an address over (heartbeat_ttl after the last write was sent), counts a
// write from when it was sent, and lifts once every address left has a fresh heartbeat.
#include <gtest/gtest.h>

#include <evosip/media/heartbeat_fence.hpp>

namespace evosip::media {
namespace {

using namespace std::chrono_literals;
using TimePoint = HeartbeatFence::TimePoint;

const TimePoint t0 = TimePoint() + 1000s;

TEST(HeartbeatFence, NothingServedIsNeverFenced) {
  HeartbeatFence f(1200ms, 300ms);
  EXPECT_FALSE(f.deadline());
  EXPECT_FALSE(f.fencedAt(t0 + 1h));
}

TEST(HeartbeatFence, FencesAtTtlMinusMarginAfterTheLastWriteWasSent) {
  HeartbeatFence f(1200ms, 300ms);
  f.written("a", t0);
  EXPECT_EQ(*f.deadline(), t0 + 900ms);
  EXPECT_FALSE(f.fencedAt(t0 + 899ms));
  EXPECT_TRUE(f.fencedAt(t0 + 900ms));
  // The earliest a peer may take over: the key expires heartbeat_ttl after the store received
  // the write, which is after it was sent.
  EXPECT_LT(*f.deadline(), t0 + 1200ms);
  // Renewed every heartbeat_ms: never fenced.
  for (auto t = t0; t < t0 + 10s; t += 300ms) {
    f.written("a", t);
    EXPECT_FALSE(f.fencedAt(t + 300ms));
  }
}

TEST(HeartbeatFence, ALateConfirmationCountsFromItsSendTime) {
  HeartbeatFence f(1200ms, 300ms);
  f.written("a", t0);
  // The store answered at t0 + 2 s a write sent at t0 + 200 ms (it sat in a queue): the key may
  // expire at t0 + 1.4 s already, so the relay stays fenced.
  f.written("a", t0 + 200ms);
  EXPECT_TRUE(f.fencedAt(t0 + 2s));
  // An older confirmation arriving after a newer one does not move the time back.
  f.written("a", t0 + 1900ms);
  f.written("a", t0 + 1800ms);
  EXPECT_EQ(*f.deadline(), t0 + 1900ms + 900ms);
  EXPECT_FALSE(f.fencedAt(t0 + 2s));
}

TEST(HeartbeatFence, OneStaleAddressFencesTheRelay) {
  HeartbeatFence f(1200ms, 300ms);
  f.written("self", t0 + 1s);
  f.written("peer", t0);  // taken over; its heartbeat not renewed since
  EXPECT_TRUE(f.fencedAt(t0 + 1s));
  f.written("peer", t0 + 1s);
  EXPECT_FALSE(f.fencedAt(t0 + 1s));
}

TEST(HeartbeatFence, ALostAddressLeavesAndTheRestLiftsTheFence) {
  HeartbeatFence f(1200ms, 300ms);
  f.written("self", t0);
  f.written("peer", t0);
  EXPECT_TRUE(f.fencedAt(t0 + 5s));
  // Healed: its own heartbeat is written again, the peer's address is held by another relay.
  f.written("self", t0 + 5s);
  EXPECT_TRUE(f.fencedAt(t0 + 5s));
  f.drop("peer");
  EXPECT_FALSE(f.serves("peer"));
  EXPECT_FALSE(f.fencedAt(t0 + 5s));
  // Its own address lost too: nothing left to serve, nothing to fence (standby instead).
  f.drop("self");
  EXPECT_FALSE(f.fencedAt(t0 + 1h));
}

}  // namespace
}  // namespace evosip::media
