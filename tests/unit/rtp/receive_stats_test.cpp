#include <gtest/gtest.h>

#include <evosip/rtp/receive_stats.hpp>

namespace evosip::rtp {
namespace {

TEST(ReceiveStats, InOrderStream) {
  ReceiveStats s;
  EXPECT_EQ(s.expected(), 0u);
  EXPECT_EQ(s.onPacket(65534, 1000).kind, Arrival::kFirst);
  for (uint16_t seq : {65535, 0, 1, 2}) {
    const auto a = s.onPacket(seq, 0);
    EXPECT_EQ(a.kind, Arrival::kInOrder);
    EXPECT_EQ(a.missing, 0);
  }
  EXPECT_EQ(s.received(), 5u);
  EXPECT_EQ(s.expected(), 5u);
  EXPECT_EQ(s.lost(), 0u);
  EXPECT_EQ(s.extendedHighest(), 0x10000u + 2);
}

TEST(ReceiveStats, GapsReportWhatIsMissingAndTheTimestampStep) {
  ReceiveStats s;
  s.onPacket(10, 1600);
  const auto a = s.onPacket(11, 1760);
  EXPECT_EQ(a.timestampDelta, 160u);
  const auto gap = s.onPacket(14, 2240);
  EXPECT_EQ(gap.kind, Arrival::kInOrder);
  EXPECT_EQ(gap.missing, 2);
  EXPECT_EQ(gap.timestampDelta, 480u);  // the recorder fills 320 samples of silence
  EXPECT_EQ(s.lost(), 2u);
  // One of the missing two arrives late: no longer lost.
  EXPECT_EQ(s.onPacket(12, 1920).kind, Arrival::kLate);
  EXPECT_EQ(s.lost(), 1u);
  EXPECT_EQ(s.late(), 1u);
}

TEST(ReceiveStats, Duplicates) {
  ReceiveStats s;
  s.onPacket(100, 0);
  s.onPacket(101, 160);
  s.onPacket(103, 480);
  EXPECT_EQ(s.onPacket(103, 480).kind, Arrival::kDuplicate);
  EXPECT_EQ(s.onPacket(101, 160).kind, Arrival::kDuplicate);
  EXPECT_EQ(s.onPacket(102, 320).kind, Arrival::kLate);
  EXPECT_EQ(s.onPacket(102, 320).kind, Arrival::kDuplicate);
  EXPECT_EQ(s.duplicates(), 3u);
  EXPECT_EQ(s.received(), 4u);
  EXPECT_EQ(s.lost(), 0u);
}

TEST(ReceiveStats, ReorderedBeforeTheFirstPacket) {
  ReceiveStats s;
  s.onPacket(500, 0);
  EXPECT_EQ(s.onPacket(499, 0).kind, Arrival::kLate);
  EXPECT_EQ(s.expected(), 2u);
  EXPECT_EQ(s.lost(), 0u);
}

TEST(ReceiveStats, OneStrayPacketIsIgnored) {
  ReceiveStats s;
  s.onPacket(1000, 0);
  EXPECT_EQ(s.onPacket(40000, 0).kind, Arrival::kStray);
  EXPECT_EQ(s.onPacket(1001, 160).kind, Arrival::kInOrder);
  EXPECT_EQ(s.lost(), 0u);
  EXPECT_EQ(s.strays(), 1u);
}

TEST(ReceiveStats, ASenderRestartIsFollowed) {
  ReceiveStats s;
  s.onPacket(1000, 0);
  s.onPacket(1001, 160);
  s.onPacket(1003, 480);  // one lost before the restart
  EXPECT_EQ(s.onPacket(30000, 9).kind, Arrival::kStray);
  EXPECT_EQ(s.onPacket(30001, 169).kind, Arrival::kRestart);
  EXPECT_EQ(s.onPacket(30002, 329).kind, Arrival::kInOrder);
  EXPECT_EQ(s.restarts(), 1u);
  EXPECT_EQ(s.received(), 6u);
  EXPECT_EQ(s.expected(), 7u);
  EXPECT_EQ(s.lost(), 1u);
}

TEST(ReceiveStats, RestartAcrossTheWrap) {
  ReceiveStats s;
  s.onPacket(20000, 0);
  EXPECT_EQ(s.onPacket(65535, 0).kind, Arrival::kStray);
  EXPECT_EQ(s.onPacket(0, 0).kind, Arrival::kRestart);
  EXPECT_EQ(s.onPacket(1, 0).kind, Arrival::kInOrder);
  EXPECT_EQ(s.expected(), 4u);
  EXPECT_EQ(s.lost(), 0u);
}

TEST(ReceiveStats, LongGapResetsTheDuplicateWindow) {
  ReceiveStats s;
  s.onPacket(0, 0);
  const auto a = s.onPacket(200, 0);
  EXPECT_EQ(a.kind, Arrival::kInOrder);
  EXPECT_EQ(a.missing, 199);
  EXPECT_EQ(s.onPacket(150, 0).kind, Arrival::kLate);
  EXPECT_EQ(s.onPacket(150, 0).kind, Arrival::kDuplicate);
  EXPECT_EQ(s.lost(), 198u);
}

}  // namespace
}  // namespace evosip::rtp
