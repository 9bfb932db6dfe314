#include <gtest/gtest.h>

#include <evosip/media/latch.hpp>

namespace evosip::media {
namespace {

Endpoint ep(const char* ip, uint16_t port) {
  return *Endpoint::parse(ip, port);
}

LatchState fromSdp(const char* ip, uint16_t port) {
  LatchState s;
  s.destination = ep(ip, port);
  return s;
}

TEST(Latch, FirstPacketLatchesTheRealSource) {
  LatchState s = fromSdp("10.0.0.5", 4000);  // private address in the SDP
  const Endpoint nat = ep("203.0.113.9", 61000);
  EXPECT_EQ(latchOnPacket(s, {}, nat.addr(), nat.len), LatchVerdict::kLatched);
  EXPECT_TRUE(s.latched);
  EXPECT_EQ(s.destination, nat);
  EXPECT_EQ(latchOnPacket(s, {}, nat.addr(), nat.len), LatchVerdict::kForward);
}

TEST(Latch, OtherSourcesAreForwardedButDoNotMoveTheLatch) {
  LatchState s = fromSdp("10.0.0.5", 4000);
  const Endpoint first = ep("203.0.113.9", 61000), other = ep("198.51.100.1", 5000);
  latchOnPacket(s, {}, first.addr(), first.len);
  EXPECT_EQ(latchOnPacket(s, {}, other.addr(), other.len), LatchVerdict::kForward);
  EXPECT_EQ(s.destination, first);
}

TEST(Latch, StrictSourceDropsOtherSourcesAfterLatching) {
  LatchState s = fromSdp("10.0.0.5", 4000);
  LatchPolicy p;
  p.strictSource = true;
  const Endpoint first = ep("203.0.113.9", 61000), samehostOtherPort = ep("203.0.113.9", 61002);
  EXPECT_EQ(latchOnPacket(s, p, first.addr(), first.len), LatchVerdict::kLatched);
  EXPECT_EQ(latchOnPacket(s, p, samehostOtherPort.addr(), samehostOtherPort.len),
            LatchVerdict::kDropStrict);
  EXPECT_EQ(latchOnPacket(s, p, first.addr(), first.len), LatchVerdict::kForward);
  EXPECT_EQ(s.destination, first);
}

TEST(Latch, StrictSourceLearnsOnlyFromTheSignalledAddress) {
  // Received-from with SIP-source-address (or media-address) named 203.0.113.9: an injected packet
  // from elsewhere that arrives first does not take the stream over.
  LatchState s = fromSdp("203.0.113.9", 4000);
  s.signalled = s.destination;
  s.signalledFromSip = true;
  LatchPolicy p;
  p.strictSource = true;
  const Endpoint attacker = ep("198.51.100.66", 4000), nat = ep("203.0.113.9", 61000);
  EXPECT_EQ(latchOnPacket(s, p, attacker.addr(), attacker.len), LatchVerdict::kDropStrict);
  EXPECT_FALSE(s.latched);
  EXPECT_EQ(s.destination, ep("203.0.113.9", 4000));
  // The phone itself, from another port (its NAT's): latches.
  EXPECT_EQ(latchOnPacket(s, p, nat.addr(), nat.len), LatchVerdict::kLatched);
  EXPECT_EQ(s.destination, nat);
  EXPECT_EQ(latchOnPacket(s, p, attacker.addr(), attacker.len), LatchVerdict::kDropStrict);
  // Without strict-source whoever sends first latches (rtpengine's default learning).
  LatchState loose = fromSdp("203.0.113.9", 4000);
  loose.signalled = loose.destination;
  EXPECT_EQ(latchOnPacket(loose, {}, attacker.addr(), attacker.len), LatchVerdict::kLatched);
}

TEST(Latch, StrictSourceWithAnSdpAddressLatchesTheFirstPacketFromAnywhere) {
  // A callee behind NAT names its private address in the SDP and sends from its public one: the
  // first packet latches, and only then are other sources dropped.
  LatchState s = fromSdp("10.0.0.5", 4000);
  s.signalled = s.destination;
  LatchPolicy p;
  p.strictSource = true;
  const Endpoint nat = ep("203.0.113.9", 61000), other = ep("198.51.100.66", 4000);
  EXPECT_EQ(latchOnPacket(s, p, nat.addr(), nat.len), LatchVerdict::kLatched);
  EXPECT_EQ(s.destination, nat);
  EXPECT_EQ(latchOnPacket(s, p, nat.addr(), nat.len), LatchVerdict::kForward);
  EXPECT_EQ(latchOnPacket(s, p, other.addr(), other.len), LatchVerdict::kDropStrict);
  EXPECT_EQ(s.destination, nat);
}

TEST(Latch, StrictSourceWithoutANamedAddressLatchesTheFirstPacket) {
  LatchState s = fromSdp("0.0.0.0", 9);  // ICE placeholder or old-style hold
  s.signalled = s.destination;
  LatchPolicy p;
  p.strictSource = true;
  const Endpoint browser = ep("198.51.100.7", 50000), other = ep("198.51.100.8", 50000);
  EXPECT_EQ(latchOnPacket(s, p, browser.addr(), browser.len), LatchVerdict::kLatched);
  EXPECT_EQ(latchOnPacket(s, p, other.addr(), other.len), LatchVerdict::kDropStrict);
}

TEST(Latch, MediaHandoverMovesTheDestination) {
  LatchState s = fromSdp("10.0.0.5", 4000);
  LatchPolicy p;
  p.mediaHandover = true;
  const Endpoint first = ep("203.0.113.9", 61000), moved = ep("203.0.113.10", 62000);
  latchOnPacket(s, p, first.addr(), first.len);
  EXPECT_EQ(latchOnPacket(s, p, moved.addr(), moved.len), LatchVerdict::kMoved);
  EXPECT_EQ(s.destination, moved);
}

TEST(Latch, AsymmetricNeverLatches) {
  LatchState s = fromSdp("192.0.2.7", 4000);
  LatchPolicy p;
  p.asymmetric = true;
  p.strictSource = true;
  const Endpoint src = ep("192.0.2.7", 5555);
  EXPECT_EQ(latchOnPacket(s, p, src.addr(), src.len), LatchVerdict::kForward);
  EXPECT_FALSE(s.latched);
  EXPECT_EQ(s.destination, ep("192.0.2.7", 4000));
}

TEST(Latch, Ipv6AndFamilyMismatch) {
  LatchState s = fromSdp("2001:db8::1", 4000);
  const Endpoint v6 = ep("2001:db8::2", 4002), v4 = ep("192.0.2.1", 4002);
  LatchPolicy strict;
  strict.strictSource = true;
  EXPECT_EQ(latchOnPacket(s, strict, v6.addr(), v6.len), LatchVerdict::kLatched);
  EXPECT_EQ(latchOnPacket(s, strict, v4.addr(), v4.len), LatchVerdict::kDropStrict);
  EXPECT_EQ(s.destination.str(), "[2001:db8::2]:4002");
}

TEST(Endpoint, ParseAndPrint) {
  EXPECT_EQ(ep("127.0.0.1", 5).str(), "127.0.0.1:5");
  EXPECT_EQ(Endpoint::parse("[::1]", 7)->str(), "[::1]:7");
  EXPECT_FALSE(Endpoint::parse("example.com", 1));
  EXPECT_FALSE(Endpoint::parse("", 1));
  EXPECT_TRUE(ep("0.0.0.0", 1).isUnspecified());
  EXPECT_STREQ(ep("::1", 1).family(), "IPv6");
}

}  // namespace
}  // namespace evosip::media
