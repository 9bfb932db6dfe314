#include <set>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/rtp/packetizer.hpp>

namespace evosip::rtp {
namespace {

TEST(Packetizer, SequenceTimestampAndMarker) {
  Packetizer p({.payloadType = 8}, StreamStart{0x11223344, 65534, 0xFFFFFF00u});
  EXPECT_EQ(p.samplesPerFrame(), 160u);
  const auto h1 = p.next();
  EXPECT_TRUE(h1.marker);
  EXPECT_EQ(h1.payloadType, 8);
  EXPECT_EQ(h1.ssrc, 0x11223344u);
  EXPECT_EQ(h1.sequence, 65534);
  EXPECT_EQ(h1.timestamp, 0xFFFFFF00u);
  const auto h2 = p.next();
  EXPECT_FALSE(h2.marker);
  EXPECT_EQ(h2.sequence, 65535);
  EXPECT_EQ(h2.timestamp, 0xFFFFFFA0u);
  const auto h3 = p.next();
  EXPECT_EQ(h3.sequence, 0);             // wraps
  EXPECT_EQ(h3.timestamp, 0x00000040u);  // wraps
  EXPECT_EQ(p.packetsSent(), 3u);
}

TEST(Packetizer, SilenceAdvancesTheTimestampAndMarksTheNextTalkspurt) {
  Packetizer p({}, StreamStart{1, 100, 1000});
  p.next();
  p.next();
  p.skip(160 * 10);  // 200 ms not sent
  const auto h = p.next();
  EXPECT_TRUE(h.marker);
  EXPECT_EQ(h.sequence, 102);  // no gap in sequence numbers
  EXPECT_EQ(h.timestamp, 1000u + 2 * 160 + 1600);
  EXPECT_FALSE(p.next().marker);
  p.startTalkspurt();
  EXPECT_TRUE(p.next().marker);
}

TEST(Packetizer, PtimeAndClockRateSetTheFrame) {
  Packetizer p30({.ptime = std::chrono::milliseconds(30)}, StreamStart{});
  EXPECT_EQ(p30.samplesPerFrame(), 240u);
  EXPECT_EQ(p30.next().timestamp, 0u);
  EXPECT_EQ(p30.next().timestamp, 240u);
  Packetizer wide({.payloadType = 9, .clockRate = 16000}, StreamStart{});
  EXPECT_EQ(wide.samplesPerFrame(), 320u);
}

TEST(Packetizer, EventsShareTheSequenceSpace) {
  Packetizer p({}, StreamStart{7, 10, 5000});
  p.next();
  const auto ev = p.nextWithTimestamp(101, p.timestamp(), true);
  EXPECT_EQ(ev.sequence, 11);
  EXPECT_EQ(ev.payloadType, 101);
  EXPECT_EQ(ev.timestamp, 5160u);
  EXPECT_TRUE(ev.marker);
  EXPECT_EQ(ev.ssrc, 7u);
  EXPECT_EQ(p.timestamp(), 5160u);  // events do not move the audio clock
  EXPECT_EQ(p.next().sequence, 12);
}

TEST(Packetizer, PacketizeWritesAParsablePacket) {
  Packetizer p({}, StreamStart{0xABCDEF01u, 1, 2});
  std::vector<uint8_t> payload(160, 0xFF);
  uint8_t buf[200];
  auto n = p.packetize(payload, buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 172u);
  auto pkt = parseRtp(std::span<const uint8_t>(buf, *n));
  ASSERT_TRUE(pkt);
  EXPECT_TRUE(pkt->header.marker);
  EXPECT_EQ(pkt->header.ssrc, 0xABCDEF01u);
  EXPECT_EQ(pkt->payload.size(), 160u);
  EXPECT_EQ(p.timestamp(), 162u);
  // Too small: error, and nothing consumed.
  auto small = p.packetize(payload, std::span<uint8_t>(buf, 100));
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().code, Errc::kTooLarge);
  EXPECT_EQ(p.sequence(), 2);
  EXPECT_EQ(p.timestamp(), 162u);
}

TEST(Packetizer, RandomStartsDiffer) {
  std::set<uint32_t> ssrcs;
  std::set<uint32_t> timestamps;
  for (int i = 0; i < 8; ++i) {
    Packetizer p({});
    ssrcs.insert(p.ssrc());
    timestamps.insert(p.timestamp());
  }
  // 8 draws of 32 random bits: a collision is a one-in-~10^8 event.
  EXPECT_EQ(ssrcs.size(), 8u);
  EXPECT_EQ(timestamps.size(), 8u);
}

}  // namespace
}  // namespace evosip::rtp
