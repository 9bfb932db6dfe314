// The app's RTP as the caller's phone sees it: the pacing of the stream, the latch, the peer
// and RTP timeouts, the maximum call duration. On the manual clock.
#include "app_core_fixture.hpp"

namespace evosip::app::test {
namespace {

TEST_F(AppCoreTest, PacketsLeaveExactly20MsApart) {
  answered("X-Evosip-Action: Playback\r\nX-Evosip-Sound: long\r\n");
  advance(1000ms);
  const auto& packets = caller_.received();
  ASSERT_GE(packets.size(), 48u);
  // The first one leaves at the core's next tick after the answer; then one every 20 ms.
  EXPECT_LE(packets[1].at - packets[0].at, 20ms);
  for (size_t i = 2; i < packets.size(); ++i) {
    EXPECT_EQ(packets[i].at - packets[i - 1].at, 20ms) << i;
  }
  // Prepared up to 10 ms ahead: at most one more than has left.
  EXPECT_GE(core().counters().pacedPackets.load(), packets.size());
  EXPECT_LE(core().counters().pacedPackets.load(), packets.size() + 1);
  EXPECT_EQ(core().pacingStats().sent.load(), packets.size());
  EXPECT_EQ(core().pacingStats().failed.load(), 0u);
}

TEST_F(AppCoreTest, PacedSendsWithAndWithoutIoUringCarryTheSameStream) {
  for (bool ring : {true, false}) {
    SCOPED_TRACE(ring ? "io_uring" : "sendto");
    shared_.settings.ioUring = ring;
    core_.reset();
    sent_.clear();
    caller_.clear();
    if (!ring) {
      EXPECT_FALSE(core().batchedSends());
    }
    const std::string ok = answered("X-Evosip-Action: Playback\r\nX-Evosip-Sound: tone\r\n");
    ASSERT_TRUE(advanceUntilSent("BYE ", 1s));
    advance(20ms);
    const auto& packets = caller_.received();
    ASSERT_EQ(packets.size(), 10u);
    EXPECT_EQ(packets[9].header().sequence, uint16_t(packets[0].header().sequence + 9));
    EXPECT_EQ(packets[9].header().timestamp, packets[0].header().timestamp + 9 * 160);
    EXPECT_EQ(core().pacingStats().sent.load(), 10u);
    // The call's RTP socket is closed with the call: its port can be bound again.
    EXPECT_EQ(core().calls(), 0u);
    EXPECT_TRUE(bindable(sdpPort(ok)));
  }
}

TEST_F(AppCoreTest, MediaGoesToTheSdpAddressThenLatchesToTheFirstSource) {
  shared_.settings.rtpPeerTimeout = 0s;
  const std::string ok = answered("X-Evosip-Action: Playback\r\nX-Evosip-Sound: long\r\n");
  advance(100ms);
  EXPECT_FALSE(caller_.received().empty());
  // The phone is behind a NAT: its packets come from another port than its SDP says.
  other_.sendAudio(sdpPort(ok), false);
  advance(20ms);
  caller_.clear();
  other_.clear();
  advance(200ms);
  EXPECT_TRUE(caller_.received().empty());
  EXPECT_GE(other_.received().size(), 9u);
}

TEST_F(AppCoreTest, RtcpAndGarbageLatchNothing) {
  shared_.settings.rtpPeerTimeout = 0s;
  const std::string ok = answered("X-Evosip-Action: Playback\r\nX-Evosip-Sound: long\r\n");
  const uint8_t garbage[] = {1, 2, 3};
  other_.sendRaw(sdpPort(ok), garbage);
  advance(40ms);
  caller_.clear();
  advance(100ms);
  EXPECT_GE(caller_.received().size(), 4u);
  EXPECT_TRUE(other_.received().empty());
}

TEST_F(AppCoreTest, DigitsFromAnotherSourceThanTheLatchedPeerAreIgnored) {
  deliver(
      invite("X-Evosip-Action: Menu\r\nX-Evosip-Sound: tone\r\n"
             "X-Evosip-Targets: 1=sip:100@evosip.local,2=sip:101@evosip.local\r\n"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 183"));
  const uint16_t port = sdpPort(find("SIP/2.0 183"));
  caller_.sendAudio(port, false);  // the peer's first packet latches the call to it
  advance(20ms);
  other_.sendDigit(port, '2');
  advance(500ms);
  EXPECT_EQ(find("SIP/2.0 302"), "");
  EXPECT_EQ(core().counters().redirects.load(), 0u);
  caller_.sendDigit(port, '2');
  advance(5ms);
  EXPECT_NE(find("SIP/2.0 302").find("Contact: <sip:101@evosip.local>\r\n"), std::string::npos);
}

TEST_F(AppCoreTest, AnAnsweredCallWhosePeerNeverSendsIsHungUpAfterThePeerTimeout) {
  shared_.settings.rtpPeerTimeout = 1s;
  const std::string ok = answered("X-Evosip-Action: Playback\r\nX-Evosip-Sound: long\r\n");
  const TimePoint answeredAt = findSent("SIP/2.0 200 OK")->at;
  ASSERT_TRUE(advanceUntilSent("BYE ", 3s));
  const auto after = findSent("BYE ")->at - answeredAt;
  EXPECT_GE(after, 1s);
  EXPECT_LT(after, 1s + 120ms);  // not after the 5 s prompt
  EXPECT_EQ(core().counters().rtpTimeouts.load(), 1u);
  // No RTP after the BYE.
  caller_.clear();
  advance(100ms);
  EXPECT_TRUE(caller_.received().empty());
}

TEST_F(AppCoreTest, EarlyMediaIsExemptFromThePeerTimeout) {
  shared_.settings.rtpPeerTimeout = 1s;
  deliver(
      invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: long\r\n"
             "X-Evosip-Option: noanswer\r\n"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 183"));
  advance(3s);
  EXPECT_EQ(count("SIP/2.0 480"), 0);
  EXPECT_EQ(core().counters().rtpTimeouts.load(), 0u);
}

TEST_F(AppCoreTest, APeerThatSendsKeepsItsCallAndGetsTheWholePrompt) {
  shared_.settings.rtpPeerTimeout = 1s;
  writeSound("two", 2);
  const std::string ok = answered("X-Evosip-Action: Playback\r\nX-Evosip-Sound: two\r\n");
  caller_.sendAudio(sdpPort(ok), false);
  ASSERT_TRUE(advanceUntilSent("BYE ", 3s));
  EXPECT_EQ(core().counters().rtpTimeouts.load(), 0u);
  EXPECT_EQ(caller_.received().size(), 100u);
}

TEST_F(AppCoreTest, ACallThatNeedsInputEndsAfterTheRtpTimeout) {
  shared_.settings.rtpTimeout = 2s;
  shared_.settings.rtpPeerTimeout = 0s;
  const std::string ok = answered("X-Evosip-Action: Echo\r\n");
  caller_.sendAudio(sdpPort(ok), true);
  advance(1ms);
  const TimePoint lastPacket = clock_.now();
  ASSERT_TRUE(advanceUntilSent("BYE ", 3s));
  const auto after = findSent("BYE ")->at - lastPacket;
  EXPECT_GE(after, 2s - 1ms);
  EXPECT_LT(after, 2s + 120ms);
  EXPECT_EQ(core().counters().rtpTimeouts.load(), 1u);
}

TEST_F(AppCoreTest, EveryCallEndsAtTheMaximumDuration) {
  shared_.settings.maxCall = 2s;
  const std::string ok = answered("X-Evosip-Action: Echo\r\n");
  const TimePoint answeredAt = findSent("SIP/2.0 200 OK")->at;
  bool bye = false;
  for (int i = 0; i < 150 && !bye; ++i) {
    caller_.sendAudio(sdpPort(ok), true);  // a live peer
    advance(20ms);
    bye = !find("BYE ").empty();
  }
  ASSERT_TRUE(bye);
  EXPECT_LT(findSent("BYE ")->at - answeredAt, 2s + 120ms);
  EXPECT_EQ(core().counters().maxDurationEnds.load(), 1u);
}

}  // namespace
}  // namespace evosip::app::test
