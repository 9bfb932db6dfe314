// Each application as the caller hears it: Playback, Voicemail, Echo and Menu, from the INVITE
// to the last response or BYE. On the manual clock.
#include "app_core_fixture.hpp"

namespace evosip::app::test {
namespace {

// ---- Playback --------------------------------------------------------------------------------

TEST_F(AppCoreTest, PlaybackPlaysTheSoundThenByes) {
  const std::string ok = answered("X-Evosip-Action: Playback\r\nX-Evosip-Sound: tone\r\n");
  ASSERT_TRUE(advanceUntilSent("BYE ", 1s));
  const auto& packets = caller_.received();
  ASSERT_EQ(packets.size(), 10u);  // 0.2 s
  const auto first = packets[0].header();
  EXPECT_TRUE(first.marker);
  EXPECT_EQ(first.payloadType, 0);
  for (size_t i = 1; i < packets.size(); ++i) {
    const auto h = packets[i].header();
    EXPECT_EQ(h.sequence, uint16_t(first.sequence + i));
    EXPECT_EQ(h.timestamp, first.timestamp + 160 * i);
    EXPECT_EQ(h.ssrc, first.ssrc);
    EXPECT_FALSE(h.marker);
  }
  // The BYE leaves once the last packet has: not before, not a frame later.
  const auto byeAt = findSent("BYE ")->at;
  EXPECT_GE(byeAt, packets.back().at);
  EXPECT_LE(byeAt - packets.back().at, 20ms);
  EXPECT_EQ(core().calls(), 0u);
  EXPECT_EQ(core().counters().calls[size_t(Action::kPlayback)].load(), 1u);
}

TEST_F(AppCoreTest, PlaybackNoanswerPlaysAsEarlyMediaThenAnswersTheStatus) {
  deliver(
      invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: tone\r\n"
             "X-Evosip-Option: noanswer\r\nX-Evosip-Status: 486\r\n"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 183 Session Progress"));
  EXPECT_NE(find("SIP/2.0 183").find("m=audio "), std::string::npos);
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 486 Busy Here", 1s));
  EXPECT_EQ(caller_.received().size(), 10u);
  EXPECT_EQ(find("SIP/2.0 200"), "");
  EXPECT_EQ(find("BYE "), "");
  EXPECT_EQ(core().calls(), 0u);
}

TEST_F(AppCoreTest, PlaybackWithoutSoundIs400AndAMissingSoundIs404) {
  deliver(invite("X-Evosip-Action: Playback\r\n"));
  EXPECT_NE(find("SIP/2.0 400 Missing X-Evosip-Sound"), "");
  deliver(invite("X-Evosip-Action: Playback\r\nX-Evosip-Sound: nope\r\n", "c2"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 404 Sound Not Found"));
  EXPECT_EQ(core().calls(), 0u);
  EXPECT_TRUE(caller_.received().empty());
}

// ---- Voicemail -------------------------------------------------------------------------------

TEST_F(AppCoreTest, VoicemailBeepsThenRecordsUntilTheCallersBye) {
  const std::string ok = answered("X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: bob\r\n");
  const uint16_t port = sdpPort(ok);
  advance(400ms);
  EXPECT_GE(caller_.received().size(), 15u);  // the generated beep: 0.3 s, then silence
  for (int i = 0; i < 100; ++i) {
    caller_.sendAudio(port, true);
    advance(20ms);
  }
  deliver(inDialog("BYE", 2, toTag(ok)));
  auto box = listMailbox(shared_.settings.voicemailDir, "bob");
  ASSERT_TRUE(box.has_value());
  ASSERT_EQ(box->size(), 1u);
  EXPECT_NEAR((*box)[0].durationS, 2.0, 0.05);
  EXPECT_EQ((*box)[0].caller, "alice");
  EXPECT_EQ((*box)[0].callId, "c1");
  EXPECT_EQ(core().counters().recordingsWritten.load(), 1u);
}

TEST_F(AppCoreTest, VoicemailSilenceEndsTheRecordingWithABye) {
  shared_.settings.voicemailSilence = 1s;
  const std::string ok = answered("X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: bob\r\n");
  const uint16_t port = sdpPort(ok);
  advance(400ms);
  for (int i = 0; i < 25; ++i) {
    caller_.sendAudio(port, true);
    advance(20ms);
  }
  ASSERT_TRUE(talkUntilBye(port, false, 100));
  EXPECT_NEAR(onlyMessage("bob").durationS, 1.0, 0.1);  // 0.5 s of sound, 0.5 s of silence kept
}

TEST_F(AppCoreTest, VoicemailStopsAtItsMaximumLength) {
  shared_.settings.voicemailMax = 1s;
  const std::string ok = answered("X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: bob\r\n");
  const uint16_t port = sdpPort(ok);
  advance(400ms);
  ASSERT_TRUE(talkUntilBye(port, true, 150));
  EXPECT_NEAR(onlyMessage("bob").durationS, 1.0, 0.05);
}

TEST_F(AppCoreTest, VoicemailIsCutAtWhatTheMailboxQuotaStillHolds) {
  // Room for about two seconds: 16,000 bytes a second plus the files' overhead.
  shared_.settings.voicemailQuota.maxBytes = voicemailMessageBytes(2 * 8000);
  const std::string ok = answered("X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: bob\r\n");
  const uint16_t port = sdpPort(ok);
  advance(400ms);
  ASSERT_TRUE(talkUntilBye(port, true, 250));
  const auto m = onlyMessage("bob");
  EXPECT_LE(m.samples, 2u * 8000);
  EXPECT_GE(m.durationS, 1.5);
}

TEST_F(AppCoreTest, FullMailboxIsRefusedBeforeAnyMedia) {
  shared_.settings.voicemailQuota.maxMessages = 1;
  VoicemailMessage m;
  m.mailbox = "bob";
  m.id = "20250101T120000Z-00000001";
  m.file = m.id + ".wav";
  ASSERT_TRUE(storeVoicemail(shared_.settings.voicemailDir, m, std::vector<int16_t>(800)));
  deliver(invite("X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: bob\r\n"));
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 486 Mailbox Full"));
  EXPECT_EQ(find("SIP/2.0 200"), "");
  EXPECT_EQ(core().calls(), 0u);
  EXPECT_EQ(core().counters().mailboxFull.load(), 1u);
  advance(100ms);
  EXPECT_TRUE(caller_.received().empty());
  // Another mailbox has room.
  deliver(invite("X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: carol\r\n", "c2"));
  EXPECT_TRUE(advanceUntilSent("SIP/2.0 200 OK"));
}

TEST_F(AppCoreTest, AMailboxNameThatIsAPathIs400AndMakesNoDirectory) {
  deliver(invite("X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: ../etc\r\n"));
  EXPECT_NE(find("SIP/2.0 400 Invalid X-Evosip-Mailbox"), "");
  EXPECT_FALSE(fs::exists(fs::path(shared_.settings.voicemailDir) / ".." / "etc"));
}

// ---- Echo ------------------------------------------------------------------------------------

TEST_F(AppCoreTest, EchoSendsEachPacketBackInItsOwnStream) {
  const std::string ok = answered("X-Evosip-Action: Echo\r\n");
  const uint16_t port = sdpPort(ok);
  for (int i = 0; i < 5; ++i) {
    caller_.sendAudio(port, i % 2 == 0);
    advance(20ms);
  }
  const auto& back = caller_.received();
  ASSERT_EQ(back.size(), 5u);
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_NE(back[i].header().ssrc, 0x1234u);
    EXPECT_EQ(back[i].payload().size(), 160u);
    EXPECT_EQ(back[i].header().sequence, uint16_t(back[0].header().sequence + i));
  }
  // What came back is what was sent: a tone, then silence.
  EXPECT_NE(back[0].payload()[2], back[1].payload()[2]);
  EXPECT_EQ(back[0].payload()[2], back[2].payload()[2]);
}

TEST_F(AppCoreTest, EchoIgnoresAnotherCodecThanTheNegotiatedOne) {
  const std::string ok = answered("X-Evosip-Action: Echo\r\n");
  caller_.send(sdpPort(ok), {false, 8, 1, 160, 0x99}, std::vector<uint8_t>(160, 0xd5));
  advance(40ms);
  EXPECT_TRUE(caller_.received().empty());
}

// ---- Menu ------------------------------------------------------------------------------------

class MenuTest : public AppCoreTest {
 protected:
  // A Menu call in early media: returns the app's RTP port.
  uint16_t startMenu(const std::string& extra = "") {
    deliver(
        invite("X-Evosip-Action: Menu\r\nX-Evosip-Sound: tone\r\n"
               "X-Evosip-Targets: 1=sip:100@evosip.local,2=sip:101@evosip.local,"
               "20=sip:120@evosip.local\r\n" +
               extra));
    EXPECT_TRUE(advanceUntilSent("SIP/2.0 183"));
    return sdpPort(find("SIP/2.0 183"));
  }
};

TEST_F(MenuTest, ADigitOfATargetRedirectsAtOnce) {
  const uint16_t port = startMenu();
  caller_.sendDigit(port, '1');
  advance(5ms);
  const std::string moved = find("SIP/2.0 302 Moved Temporarily");
  EXPECT_NE(moved.find("Contact: <sip:100@evosip.local>\r\n"), std::string::npos) << moved;
  EXPECT_EQ(core().counters().redirects.load(), 1u);
  EXPECT_EQ(core().calls(), 0u);
}

TEST_F(MenuTest, APrefixOfALongerKeyWaitsTheInterDigitTime) {
  const uint16_t port = startMenu();
  caller_.sendDigit(port, '2');
  advance(1900ms);
  EXPECT_EQ(find("SIP/2.0 302"), "");
  advance(200ms);
  EXPECT_NE(find("SIP/2.0 302").find("Contact: <sip:101@evosip.local>\r\n"), std::string::npos);
}

TEST_F(MenuTest, TheLongerKeyRedirectsWhenItsLastDigitComes) {
  const uint16_t port = startMenu();
  caller_.sendDigit(port, '2');
  advance(500ms);
  caller_.sendDigit(port, '0');
  advance(5ms);
  EXPECT_NE(find("SIP/2.0 302").find("Contact: <sip:120@evosip.local>\r\n"), std::string::npos);
}

TEST_F(MenuTest, WrongDigitsReplayThePromptThenEndWithTheStatus) {
  const uint16_t port = startMenu("X-Evosip-Retries: 1\r\n");
  caller_.sendDigit(port, '9');
  advance(1000ms);
  EXPECT_EQ(find("SIP/2.0 480"), "");
  caller_.sendDigit(port, '9');
  advance(5ms);
  EXPECT_NE(find("SIP/2.0 480 Invalid Selection"), "");
  EXPECT_EQ(core().calls(), 0u);
}

TEST_F(MenuTest, NoDigitReplaysThePromptAfterTheTimeoutThenEnds) {
  startMenu("X-Evosip-Retries: 1\r\nX-Evosip-Timeout: 1\r\n");
  const TimePoint started = clock_.now();
  ASSERT_TRUE(advanceUntilSent("SIP/2.0 480 No Selection", 5s));
  // The prompt (0.2 s) and a timeout, twice.
  const auto took = findSent("SIP/2.0 480")->at - started;
  EXPECT_GE(took, 2200ms);
  EXPECT_LT(took, 2600ms);
}

TEST_F(MenuTest, WithoutTargetsTheMenuIs500) {
  deliver(invite("X-Evosip-Action: Menu\r\n"));
  EXPECT_NE(find("SIP/2.0 500 No X-Evosip-Targets"), "");
  deliver(invite("X-Evosip-Action: Menu\r\nX-Evosip-Targets: x=y\r\n", "c2"));
  EXPECT_NE(find("SIP/2.0 500 Invalid X-Evosip-Targets"), "");
}

}  // namespace
}  // namespace evosip::app::test
