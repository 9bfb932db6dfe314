#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include <evosip/app/prompts.hpp>
#include <evosip/audio/tone.hpp>
#include <evosip/audio/wav.hpp>

namespace evosip::app {
namespace {

namespace fs = std::filesystem;

class SoundsDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("evosip-prompts-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A WAV of `samples` samples of a tone at hz.
  void write(const std::string& rel, double hz, size_t samples) {
    fs::create_directories((dir_ / rel).parent_path());
    std::vector<int16_t> pcm(samples);
    audio::SineGenerator(hz, 10000, 8000).fill(pcm);
    audio::StringWavSink sink;
    audio::WavWriter w(sink);
    ASSERT_TRUE(w.append(pcm).has_value());
    ASSERT_TRUE(w.close().has_value());
    std::ofstream(dir_ / rel, std::ios::binary) << sink.bytes();
  }

  fs::path dir_;
};

TEST(SoundPath, CustomThenDefault) {
  auto c = soundCandidates("/s", {"welcome", "fr", "acme"});
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], "/s/acme/fr/welcome.wav");
  EXPECT_EQ(c[1], "/s/default/fr/welcome.wav");
  auto d = soundCandidates("/s", {"welcome", "", ""});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0], "/s/default/en/welcome.wav");  // the locale defaults to en
}

TEST(SoundPath, UnsafeNamesFindNothing) {
  EXPECT_TRUE(soundCandidates("/s", {"../etc/passwd", "en", ""}).empty());
  EXPECT_TRUE(soundCandidates("/s", {"welcome", "..", ""}).empty());
  EXPECT_TRUE(soundCandidates("/s", {"welcome", "en", "a/b"}).empty());
  EXPECT_TRUE(soundCandidates("/s", {".hidden", "en", ""}).empty());
  EXPECT_TRUE(soundCandidates("/s", {"", "en", ""}).empty());
}

TEST_F(SoundsDir, LoadsTheCustomFileFallsBackToDefaultThenNotFound) {
  write("acme/en/welcome.wav", 1000, 1600);
  write("default/en/welcome.wav", 500, 800);
  write("default/en/menu.wav", 500, 400);
  PromptCache cache(dir_.string(), [](std::function<void()> f) { f(); });
  auto custom = cache.load({"welcome", "en", "acme"});
  ASSERT_TRUE(custom.has_value()) << custom.error().message;
  EXPECT_EQ((*custom)->samples(), 1600u);
  EXPECT_EQ((*custom)->source(), (dir_ / "acme/en/welcome.wav").string());
  auto fallback = cache.load({"menu", "en", "acme"});
  ASSERT_TRUE(fallback.has_value());
  EXPECT_EQ((*fallback)->source(), (dir_ / "default/en/menu.wav").string());
  auto missing = cache.load({"nothing", "en", "acme"});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
  EXPECT_NE(missing.error().message.find("default/en/nothing.wav"), std::string::npos);
}

TEST_F(SoundsDir, PromptIsEncodedOnceInBothLawsInWholeFrames) {
  write("default/en/tone.wav", 1000, 400);  // 2.5 frames
  PromptCache cache(dir_.string(), [](std::function<void()> f) { f(); });
  auto p = *cache.load({"tone", "en", ""});
  EXPECT_EQ(p->frames(), 3u);
  // The padding of the last frame is silence in each law.
  EXPECT_EQ(p->frame(audio::G711Law::kUlaw, 2)[159], 0xFF);
  EXPECT_EQ(p->frame(audio::G711Law::kAlaw, 2)[159], 0xD5);
  // The payload decodes back to the tone.
  std::vector<int16_t> pcm(160);
  audio::decodeG711(audio::G711Law::kAlaw, p->frame(audio::G711Law::kAlaw, 0), pcm);
  EXPECT_GT(audio::toneRatio(pcm, 1000, 8000), 0.9);
  EXPECT_EQ(silenceFrame(audio::G711Law::kUlaw).size(), kFrameSamples);
}

TEST_F(SoundsDir, CacheLoadsEachSoundOnceOnTheBlockingRunner) {
  write("default/en/welcome.wav", 1000, 1600);
  std::vector<std::function<void()>> queued;
  PromptCache cache(dir_.string(), [&](std::function<void()> f) { queued.push_back(f); });
  int answers = 0;
  PromptPtr first, second;
  cache.get({"welcome", "en", ""}, [&](Result<PromptPtr> r) {
    ++answers;
    first = *r;
  });
  cache.get({"welcome", "en", ""}, [&](Result<PromptPtr> r) {
    ++answers;
    second = *r;
  });
  EXPECT_EQ(answers, 0);
  ASSERT_EQ(queued.size(), 1u);  // one load for both waiting calls
  queued[0]();
  EXPECT_EQ(answers, 2);
  EXPECT_EQ(first, second);
  // A hit is answered at once, without the blocking runner.
  cache.get({"welcome", "en", ""}, [&](Result<PromptPtr> r) { EXPECT_EQ(*r, first); });
  EXPECT_EQ(queued.size(), 1u);
  EXPECT_EQ(cache.loads(), 1u);
  cache.get({"missing", "en", ""}, [&](Result<PromptPtr> r) { EXPECT_FALSE(r.has_value()); });
  ASSERT_EQ(queued.size(), 2u);
  queued[1]();
  EXPECT_EQ(cache.misses(), 1u);
  cache.flush();
  EXPECT_EQ(cache.size(), 0u);
}

TEST(Beep, IsASineOfTheGivenLength) {
  auto b = makeBeep(1000, 0.3);
  EXPECT_EQ(b->samples(), 2400u);
  EXPECT_EQ(b->frames(), 15u);
}

}  // namespace
}  // namespace evosip::app
