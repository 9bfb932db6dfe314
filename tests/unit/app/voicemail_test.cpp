#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <evosip/app/voicemail.hpp>
#include <evosip/audio/tone.hpp>
#include <evosip/audio/wav.hpp>

namespace evosip::app {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;

TEST(Voicemail, MailboxNames) {
  EXPECT_TRUE(isValidMailbox("bob"));
  EXPECT_TRUE(isValidMailbox("bob@evosip.local"));
  EXPECT_TRUE(isValidMailbox("+4930123"));
  EXPECT_FALSE(isValidMailbox(""));
  EXPECT_FALSE(isValidMailbox(".."));
  EXPECT_FALSE(isValidMailbox("a/b"));
  EXPECT_FALSE(isValidMailbox(".hidden"));
  EXPECT_FALSE(isValidMailbox(std::string(65, 'a')));
}

TEST(Voicemail, TimesAndIds) {
  const auto t = system_clock::time_point(seconds(1735732800));  // 2025-01-01T12:00:00Z
  EXPECT_EQ(isoTime(t), "2025-01-01T12:00:00Z");
  EXPECT_EQ(newMessageId(t, 0x1a2b3c4d), "20250101T120000Z-1a2b3c4d");
}

TEST(Voicemail, MetadataRoundTrip) {
  VoicemailMessage m;
  m.id = "20250101T120000Z-00000001";
  m.mailbox = "bob";
  m.caller = "alice";
  m.callerUri = "sip:alice@evosip.local";
  m.callId = "abc@host";
  m.start = "2025-01-01T12:00:00Z";
  m.startUnix = 1735732800;
  m.samples = 16000;
  m.durationS = 2.0;
  m.file = m.id + ".wav";
  const std::string text = boost::json::serialize(toJson(m));
  auto back = voicemailFromJson(text);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->caller, "alice");
  EXPECT_EQ(back->mailbox, "bob");
  EXPECT_EQ(back->start, "2025-01-01T12:00:00Z");
  EXPECT_DOUBLE_EQ(back->durationS, 2.0);
  EXPECT_EQ(back->samples, 16000u);
  EXPECT_FALSE(voicemailFromJson("[1]").has_value());
  EXPECT_FALSE(voicemailFromJson("{}").has_value());
}

TEST(Voicemail, StoreWritesAWavAndJsonThatListingReturns) {
  const fs::path dir = fs::temp_directory_path() / ("evosip-vm-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  std::vector<int16_t> pcm(8000);
  audio::SineGenerator(440, 8000, 8000).fill(pcm);
  for (int i = 0; i < 2; ++i) {
    VoicemailMessage m;
    m.id = "20250101T12000" + std::to_string(i) + "Z-0000000" + std::to_string(i);
    m.mailbox = "bob";
    m.caller = "alice";
    m.samples = pcm.size();
    m.durationS = 1.0;
    m.file = m.id + ".wav";
    ASSERT_TRUE(storeVoicemail(dir.string(), m, pcm).has_value());
  }
  auto list = listMailbox(dir.string(), "bob");
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_LT((*list)[0].id, (*list)[1].id);
  std::ifstream f(dir / "bob" / (*list)[0].file, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string bytes = ss.str();
  auto wav = audio::parseWav(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  ASSERT_TRUE(wav.has_value());
  EXPECT_EQ(wav->format.sampleRate, 8000u);
  EXPECT_EQ(wav->frames(), 8000u);
  auto samples = audio::decodeWavSamples(*wav);
  EXPECT_GT(audio::toneRatio(samples, 440, 8000), 0.9);
  EXPECT_TRUE(listMailbox(dir.string(), "nobody")->empty());
  EXPECT_FALSE(listMailbox(dir.string(), "../x").has_value());
  fs::remove_all(dir);
}

using Ms = std::chrono::milliseconds;
const VoicemailRecorder::TimePoint kT0{std::chrono::seconds(100)};

TEST(VoicemailRecorder, FillsLostPacketsWithSilenceAndDropsLateOnes) {
  VoicemailRecorder r(8000);
  std::vector<int16_t> loud(160, 5000);
  r.onAudio(1000, loud, kT0);
  r.onAudio(1320, loud, kT0 + Ms(40));  // one packet lost: 160 samples of silence first
  EXPECT_EQ(r.samples().size(), 480u);
  EXPECT_EQ(r.samples()[200], 0);
  r.onAudio(1160, loud, kT0 + Ms(45));  // the lost one, too late
  EXPECT_EQ(r.samples().size(), 480u);
  r.onAudio(1000000, loud, kT0 + Ms(60));  // a jump (restart): appended, not filled
  EXPECT_EQ(r.samples().size(), 640u);
}

TEST(VoicemailRecorder, NeverLongerThanTheCallLasted) {
  // 100 packets in 2 s whose timestamps leap a second each: 2 s of message, not 100 s of
  // silence.
  VoicemailRecorder r(120 * 8000);
  std::vector<int16_t> loud(160, 5000);
  for (uint32_t i = 0; i < 100; ++i) {
    r.onAudio(i * 8000, loud, kT0 + Ms(20 * i));
  }
  EXPECT_LE(r.samples().size(), 2u * 8000 + 60 * 8);
  EXPECT_GE(r.samples().size(), 100u * 160);
  // Nor does a burst of packets sent at once with timestamps far apart add silence.
  VoicemailRecorder burst(120 * 8000);
  for (uint32_t i = 0; i < 50; ++i) {
    burst.onAudio(i * 4000, loud, kT0);
  }
  EXPECT_LE(burst.samples().size(), 50u * 160 + 60 * 8);
}

TEST(VoicemailRecorder, StopsAtTheMaximumAndTracksTrailingSilence) {
  VoicemailRecorder r(800);
  std::vector<int16_t> loud(160, 5000), quiet(160, 10);
  uint32_t ts = 0;
  auto at = kT0;
  r.onAudio(ts, loud, at);
  for (int i = 0; i < 3; ++i) {
    r.onAudio(ts += 160, quiet, at += Ms(20));
  }
  EXPECT_EQ(r.trailingSilence(), 480u);
  r.trimSilence(100);
  EXPECT_EQ(r.samples().size(), 260u);
  for (int i = 0; i < 10; ++i) {
    r.onAudio(ts += 160, loud, at += Ms(20));
  }
  EXPECT_TRUE(r.full());
  EXPECT_EQ(r.samples().size(), 800u);
}

TEST(Voicemail, MailboxNamesCannotLeaveTheDirectory) {
  for (const char* bad : {"a..b", "..", "../etc", "a/b", "a\\b", "bob\n", "bob\r", "b\x01ob",
                          "bob ", "%2e%2e", "~root", "bob:1"}) {
    EXPECT_FALSE(isValidMailbox(bad)) << bad;
  }
  EXPECT_FALSE(isValidMailbox(std::string_view("bob\0x", 5)));
  EXPECT_TRUE(isValidMailbox(std::string(64, 'a')));
  EXPECT_TRUE(isValidMailbox("bob.smith"));
}

TEST(VoicemailQuota, RoomForANewMessage) {
  VoicemailQuota q;
  q.maxMessages = 2;
  q.maxBytes = 100'000;
  q.maxTotalMessages = 10;
  q.maxTotalBytes = 1'000'000;
  const uint64_t max = 120 * 8000;
  // An empty mailbox: as much as its byte quota holds (about 3 s here).
  EXPECT_EQ(voicemailRoom(q, {}, {}, max), (100'000 - voicemailMessageBytes(0)) / 2);
  // Up to the per-message maximum when the quotas are larger.
  EXPECT_EQ(voicemailRoom(q, {}, {}, 8000), 8000u);
  EXPECT_EQ(voicemailRoom(q, {2, 1000}, {2, 1000}, max), 0u);      // messages
  EXPECT_EQ(voicemailRoom(q, {1, 95'000}, {1, 95'000}, max), 0u);  // < 1 s left
  EXPECT_EQ(voicemailRoom(q, {0, 0}, {10, 5000}, max), 0u);        // all mailboxes: messages
  EXPECT_EQ(voicemailRoom(q, {0, 0}, {1, 999'000}, max), 0u);      // all mailboxes: bytes
  EXPECT_EQ(voicemailRoom(q, {0, 0}, {1, 2'000'000}, max), 0u);    // over already
}

TEST(VoicemailQuota, UsageCountsMessagesAndBytes) {
  const auto dir = fs::temp_directory_path() / ("evosip-vm-usage-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  std::vector<int16_t> samples(8000, 1000);
  for (const char* box : {"bob", "bob", "carol"}) {
    VoicemailMessage m;
    m.mailbox = box;
    m.id = newMessageId(std::chrono::system_clock::now(), static_cast<uint32_t>(std::rand()));
    m.file = m.id + ".wav";
    ASSERT_TRUE(storeVoicemail(dir.string(), m, samples));
  }
  auto bob = mailboxUsage(dir.string(), "bob");
  ASSERT_TRUE(bob);
  EXPECT_EQ(bob->messages, 2u);
  EXPECT_GT(bob->bytes, 2u * 16000);
  EXPECT_LE(bob->bytes, 2 * voicemailMessageBytes(8000));
  EXPECT_EQ(mailboxUsage(dir.string(), "nobody")->messages, 0u);
  EXPECT_FALSE(mailboxUsage(dir.string(), "../x"));
  auto all = voicemailUsage(dir.string());
  ASSERT_TRUE(all);
  EXPECT_EQ(all->messages, 3u);
  EXPECT_EQ(voicemailUsage((dir / "absent").string())->messages, 0u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace evosip::app
