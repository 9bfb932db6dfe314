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

TEST(VoicemailRecorder, FillsLostPacketsWithSilenceAndDropsLateOnes) {
  VoicemailRecorder r(8000);
  std::vector<int16_t> loud(160, 5000);
  r.onAudio(1000, loud);
  r.onAudio(1320, loud);  // one packet lost: 160 samples of silence first
  EXPECT_EQ(r.samples().size(), 480u);
  EXPECT_EQ(r.samples()[200], 0);
  r.onAudio(1160, loud);  // the lost one, too late
  EXPECT_EQ(r.samples().size(), 480u);
  r.onAudio(1000000, loud);  // a jump (restart): appended, not filled
  EXPECT_EQ(r.samples().size(), 640u);
}

TEST(VoicemailRecorder, StopsAtTheMaximumAndTracksTrailingSilence) {
  VoicemailRecorder r(800);
  std::vector<int16_t> loud(160, 5000), quiet(160, 10);
  uint32_t ts = 0;
  r.onAudio(ts, loud);
  for (int i = 0; i < 3; ++i) {
    r.onAudio(ts += 160, quiet);
  }
  EXPECT_EQ(r.trailingSilence(), 480u);
  r.trimSilence(100);
  EXPECT_EQ(r.samples().size(), 260u);
  for (int i = 0; i < 10; ++i) {
    r.onAudio(ts += 160, loud);
  }
  EXPECT_TRUE(r.full());
  EXPECT_EQ(r.samples().size(), 800u);
}

}  // namespace
}  // namespace evosip::app
