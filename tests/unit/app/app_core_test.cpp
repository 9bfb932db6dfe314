// The app's SIP dialogs as the router sees them: INVITE answers and refusals, the 2xx until the
// ACK, BYE and CANCEL both ways, re-INVITEs, drain and shutdown. On the manual clock.
#include "app_core_fixture.hpp"

namespace evosip::app::test {
namespace {

TEST_F(AppCoreTest, HangupAnswersTheGivenStatus) {
  deliver(invite("X-Evosip-Action: Hangup\r\nX-Evosip-Status: 486\r\n"));
  EXPECT_NE(find("SIP/2.0 486 Busy Here\r\n"), "");
  EXPECT_EQ(core().calls(), 0u);
}

TEST_F(AppCoreTest, UnknownActionIs501NamingItAndNoCodecIs488) {
  deliver(invite("X-Evosip-Action: Fax\r\n"));
  EXPECT_NE(find("SIP/2.0 501 Unknown Action Fax\r\n"), "");
  deliver(invite("X-Evosip-Action: Echo\r\n", "c2", "18"));
  EXPECT_NE(find("SIP/2.0 488 "), "");
  EXPECT_EQ(core().counters().rejected.load(), 2u);
}

TEST_F(AppCoreTest, MissingActionIs400AndAnExtensionItRequiresIs420) {
  deliver(invite(""));
  EXPECT_NE(find("SIP/2.0 400 Missing X-Evosip-Action\r\n"), "");
  deliver(invite("X-Evosip-Action: Echo\r\nRequire: 100rel\r\n", "c2"));
  const std::string bad = find("SIP/2.0 420 Bad Extension\r\n");
  EXPECT_NE(bad.find("Unsupported: 100rel\r\n"), std::string::npos) << bad;
  EXPECT_EQ(core().calls(), 0u);
}

TEST_F(AppCoreTest, OptionsIs200WithAllowAndOtherMethodsOutsideADialogAre405) {
  deliver(
      "OPTIONS sip:app@127.0.0.1:5999 SIP/2.0\r\nVia: SIP/2.0/UDP "
      "127.0.0.1:5070;branch=z9hG4bK-o\r\n"
      "From: <sip:r@evosip.local>;tag=a\r\nTo: <sip:app@evosip.local>\r\nCall-ID: o1\r\n"
      "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
  EXPECT_NE(find("SIP/2.0 200 OK").find("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n"),
            std::string::npos);
  deliver(inDialog("INFO", 2, "nosuchtag", "o2"));
  EXPECT_NE(find("SIP/2.0 405"), "");
}

TEST_F(AppCoreTest, TheOkIsRetransmittedOnT1DoublingUntilTheAck) {
  shared_.settings.rtpPeerTimeout = 0s;
  deliver(invite("X-Evosip-Action: Echo\r\n"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 200 OK"));
  const TimePoint answeredAt = findSent("SIP/2.0 200 OK")->at;
  const std::string ok = find("SIP/2.0 200 OK");
  EXPECT_EQ(ok.find("X-Evosip"), std::string::npos);
  EXPECT_NE(ok.find("Record-Route: <sip:127.0.0.1:5070;lr>\r\n"), std::string::npos);
  EXPECT_NE(ok.find("Contact: <sip:app@127.0.0.1:5999>\r\n"), std::string::npos);
  EXPECT_NE(ok.find("RTP/AVP 0 101\r\n"), std::string::npos);
  // 0.5 s, 1.5 s, 3.5 s after the answer: T1, then doubling.
  advance(1600ms);
  std::vector<std::chrono::milliseconds> at;
  for (const auto& s : sent_) {
    if (s.bytes.rfind("SIP/2.0 200 OK", 0) == 0) {
      EXPECT_EQ(s.bytes, ok);
      at.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(s.at - answeredAt));
    }
  }
  ASSERT_EQ(at.size(), 3u);
  EXPECT_NEAR(at[1].count(), 500, 10);
  EXPECT_NEAR(at[2].count(), 1500, 10);
  deliver(inDialog("ACK", 1, toTag(ok)));
  advance(4000ms);
  EXPECT_EQ(count("SIP/2.0 200 OK"), 3);
  EXPECT_EQ(core().calls(), 1u);
}

TEST_F(AppCoreTest, WithoutAnAckTheAppGivesUpAfter64T1WithABye) {
  shared_.settings.rtpPeerTimeout = 0s;
  deliver(invite("X-Evosip-Action: Echo\r\n"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 200 OK"));
  const TimePoint answeredAt = findSent("SIP/2.0 200 OK")->at;
  ASSERT_TRUE(advanceUntilSent("BYE ", 33s));
  const auto byeAfter = findSent("BYE ")->at - answeredAt;
  EXPECT_GE(byeAfter, 32s);
  EXPECT_LT(byeAfter, 32s + 50ms);
  // 0.5, 1.5, 3.5, 7.5, then every 4 s up to 31.5 s: 10 retransmissions.
  EXPECT_EQ(count("SIP/2.0 200 OK"), 11);
  EXPECT_EQ(core().calls(), 0u);
}

TEST_F(AppCoreTest, AnInviteRetransmittedAfterTheOkGetsTheSameOk) {
  deliver(invite("X-Evosip-Action: Echo\r\n"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 200 OK"));
  advance(100ms);
  deliver(invite("X-Evosip-Action: Echo\r\n"));
  EXPECT_EQ(count("SIP/2.0 200 OK"), 2);
  EXPECT_EQ(sent_.back().bytes, find("SIP/2.0 200 OK"));
  EXPECT_EQ(core().calls(), 1u);
}

TEST_F(AppCoreTest, ByeFromTheCallerIsAnsweredAndEndsTheCallAndItsMedia) {
  const std::string ok = answered("X-Evosip-Action: Playback\r\nX-Evosip-Sound: long\r\n");
  caller_.sendAudio(sdpPort(ok), true);
  advance(200ms);
  ASSERT_FALSE(caller_.received().empty());
  deliver(inDialog("BYE", 2, toTag(ok)));
  EXPECT_NE(find("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-BYE2c1"), "");
  EXPECT_EQ(core().calls(), 0u);
  EXPECT_EQ(core().counters().byesReceived.load(), 1u);
  caller_.clear();
  advance(200ms);
  EXPECT_TRUE(caller_.received().empty());
  EXPECT_EQ(find("BYE "), "");  // the app sends none of its own
  EXPECT_TRUE(bindable(sdpPort(ok)));
}

TEST_F(AppCoreTest, ByeForAnUnknownDialogIs481) {
  const std::string ok = answered("X-Evosip-Action: Echo\r\n");
  deliver(inDialog("BYE", 2, "not-our-tag"));
  EXPECT_NE(find("SIP/2.0 481"), "");
  EXPECT_EQ(core().calls(), 1u);
}

TEST_F(AppCoreTest, CancelDuringEarlyMediaIs487) {
  deliver(
      invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: tone\r\nX-Evosip-Option: noanswer\r\n"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 183"));
  deliver(
      "CANCEL sip:100@127.0.0.1:5999 SIP/2.0\r\nVia: SIP/2.0/UDP "
      "127.0.0.1:5070;branch=z9hG4bK-c1\r\n"
      "From: <sip:alice@evosip.local>;tag=ft\r\nTo: <sip:100@evosip.local>\r\nCall-ID: c1\r\n"
      "CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n");
  EXPECT_NE(find("SIP/2.0 487 Request Terminated"), "");
  EXPECT_EQ(core().calls(), 0u);
  EXPECT_EQ(core().counters().cancelled.load(), 1u);
  caller_.clear();
  advance(100ms);
  EXPECT_TRUE(caller_.received().empty());
}

TEST_F(AppCoreTest, TheAppsByeWaitsForTheAckAndFollowsTheRouteSet) {
  deliver(invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: tone\r\n"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 200 OK"));
  const std::string ok = find("SIP/2.0 200 OK");
  advance(450ms);  // the 0.2 s prompt is over, the ACK has not come
  EXPECT_EQ(find("BYE "), "");
  deliver(inDialog("ACK", 1, toTag(ok)));
  const std::string bye = find("BYE ");
  ASSERT_NE(bye, "");
  EXPECT_EQ(bye.rfind("BYE sip:alice@127.0.0.1:5555 SIP/2.0\r\n", 0), 0u) << bye;
  EXPECT_NE(bye.find("Route: <sip:127.0.0.1:5070;lr>\r\n"), std::string::npos);
  EXPECT_NE(bye.find("From: <sip:100@evosip.local>;tag=" + toTag(ok)), std::string::npos);
  EXPECT_NE(bye.find("To: <sip:alice@evosip.local>;tag=ft\r\n"), std::string::npos);
  EXPECT_NE(bye.find("Via: SIP/2.0/UDP 127.0.0.1:5999;branch="), std::string::npos);
  const Sent* s = findSent("BYE ");
  EXPECT_EQ(s->to.remote.str(), "127.0.0.1:5070");  // the first route
  EXPECT_EQ(core().calls(), 0u);
}

TEST_F(AppCoreTest, ReInviteMovesTheMediaToTheNewAddress) {
  shared_.settings.rtpPeerTimeout = 0s;
  const std::string ok = answered("X-Evosip-Action: Playback\r\nX-Evosip-Sound: long\r\n");
  advance(100ms);
  ASSERT_FALSE(caller_.received().empty());
  other_.clear();
  deliver(inDialog("INVITE", 2, toTag(ok), "c1", sdp(other_.port())));
  ASSERT_EQ(count("SIP/2.0 200 OK"), 2);
  const std::string ok2 = sent_.back().bytes;
  EXPECT_NE(ok2.find(" 2 IN IP4 127.0.0.1\r\ns=evosip"), std::string::npos) << ok2;  // o= v2
  EXPECT_EQ(ok2.find("Record-Route"), std::string::npos);
  EXPECT_EQ(sdpPort(ok2), sdpPort(ok));
  deliver(inDialog("ACK", 2, toTag(ok)));
  advance(20ms);
  caller_.clear();
  advance(200ms);
  EXPECT_TRUE(caller_.received().empty());
  ASSERT_GE(other_.received().size(), 10u);
  EXPECT_TRUE(other_.received().front().header().marker);
}

TEST_F(AppCoreTest, ReInviteToHoldStopsTheRtpAndResumeRestartsIt) {
  shared_.settings.rtpTimeout = 1s;
  shared_.settings.rtpPeerTimeout = 0s;
  const std::string ok = answered("X-Evosip-Action: Echo\r\n");
  deliver(inDialog("INVITE", 2, toTag(ok), "c1", sdp(caller_.port(), "0 8 101", "a=sendonly\r\n")));
  const std::string held = sent_.back().bytes;
  EXPECT_NE(held.find("a=recvonly\r\n"), std::string::npos) << held;
  deliver(inDialog("ACK", 2, toTag(ok)));
  // Held: no RTP timeout although nothing comes.
  advance(3s);
  EXPECT_EQ(find("BYE "), "");
  deliver(inDialog("INVITE", 3, toTag(ok), "c1", sdp(caller_.port())));
  EXPECT_NE(sent_.back().bytes.find("a=sendrecv\r\n"), std::string::npos);
  deliver(inDialog("ACK", 3, toTag(ok)));
  // Resumed: the RTP timeout runs again.
  EXPECT_TRUE(advanceUntilSent("BYE ", 2s));
}

TEST_F(AppCoreTest, ReInviteBeforeTheAckIs491) {
  deliver(invite("X-Evosip-Action: Echo\r\n"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 200 OK"));
  deliver(inDialog("INVITE", 2, toTag(find("SIP/2.0 200 OK")), "c1", sdp(other_.port())));
  EXPECT_NE(find("SIP/2.0 491 Request Pending"), "");
}

TEST_F(AppCoreTest, ReInviteForAnUnknownDialogIs481) {
  deliver(inDialog("INVITE", 2, "nosuchtag", "c9", sdp(other_.port())));
  EXPECT_NE(find("SIP/2.0 481"), "");
}

TEST_F(AppCoreTest, DrainRefusesNewCallsWith503AndKeepsTheCallsInProgress) {
  const std::string ok = answered("X-Evosip-Action: Playback\r\nX-Evosip-Sound: tone\r\n");
  shared_.draining = true;
  deliver(invite("X-Evosip-Action: Echo\r\n", "c2"));
  EXPECT_NE(find("SIP/2.0 503 Draining"), "");
  EXPECT_EQ(core().calls(), 1u);
  // The call in progress plays to its end.
  ASSERT_TRUE(advanceUntilSent("BYE ", 1s));
  EXPECT_EQ(caller_.received().size(), 10u);
}

TEST_F(AppCoreTest, ShutdownEndsCallsWithoutSignallingAndStoresTheRecordingAtOnce) {
  shared_.settings.voicemailSilence = 0s;
  const std::string ok = answered("X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: bob\r\n");
  const uint16_t port = sdpPort(ok);
  advance(400ms);  // the beep (0.3 s)
  for (int i = 0; i < 50; ++i) {
    caller_.sendAudio(port, true);
    advance(20ms);
  }
  // From now on the blocking pool takes work and never runs it (it is stopping).
  holdBlocking_ = true;
  const size_t before = sent_.size();
  core().closeAll();
  EXPECT_EQ(sent_.size(), before);  // no BYE, no response
  EXPECT_EQ(core().calls(), 0u);
  EXPECT_TRUE(blocked_.empty());
  auto box = listMailbox(shared_.settings.voicemailDir, "bob");
  ASSERT_TRUE(box.has_value());
  ASSERT_EQ(box->size(), 1u);
  EXPECT_NEAR((*box)[0].durationS, 1.0, 0.1);
  EXPECT_TRUE(bindable(port));
}

TEST_F(AppCoreTest, CallsBeyondThePortRangeAre503AndAPortIsReusedAfterItsCall) {
  ports_ = osPortRange(1);
  deliver(invite("X-Evosip-Action: Echo\r\n"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 200 OK"));
  const std::string ok = find("SIP/2.0 200 OK");
  deliver(invite("X-Evosip-Action: Echo\r\n", "c2"));
  EXPECT_NE(find("SIP/2.0 503 No RTP Port"), "");
  deliver(inDialog("ACK", 1, toTag(ok)));
  deliver(inDialog("BYE", 2, toTag(ok)));
  advance(20ms);
  sent_.clear();
  deliver(invite("X-Evosip-Action: Echo\r\n", "c3"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 200 OK"));
  EXPECT_EQ(sdpPort(find("SIP/2.0 200 OK")), sdpPort(ok));
}

}  // namespace
}  // namespace evosip::app::test
