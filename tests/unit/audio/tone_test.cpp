#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/audio/tone.hpp>

namespace evosip::audio {
namespace {

std::vector<int16_t> tone(double hz, double amplitude, size_t n, uint32_t rate = 8000) {
  std::vector<int16_t> v(n);
  SineGenerator(hz, amplitude, rate).fill(v);
  return v;
}

TEST(Tone, GoertzelTellsFrequenciesApart) {
  const auto a440 = tone(440, 10000, 800);
  const auto a1000 = tone(1000, 10000, 800);
  EXPECT_GT(toneRatio(a440, 440, 8000), 0.95);
  EXPECT_LT(toneRatio(a440, 1000, 8000), 0.01);
  EXPECT_GT(toneRatio(a1000, 1000, 8000), 0.95);
  EXPECT_LT(toneRatio(a1000, 440, 8000), 0.01);
  EXPECT_GT(goertzelPower(a440, 440, 8000), 1000 * goertzelPower(a440, 1000, 8000));
}

TEST(Tone, GoertzelFindsBothTonesOfAMix) {
  auto mix = tone(697, 6000, 800);
  const auto high = tone(1209, 6000, 800);  // DTMF '1'
  for (size_t i = 0; i < mix.size(); ++i) {
    mix[i] = static_cast<int16_t>(mix[i] + high[i]);
  }
  EXPECT_NEAR(toneRatio(mix, 697, 8000), 0.5, 0.05);
  EXPECT_NEAR(toneRatio(mix, 1209, 8000), 0.5, 0.05);
  EXPECT_LT(toneRatio(mix, 770, 8000), 0.02);
}

TEST(Tone, SilenceHasNoPower) {
  std::vector<int16_t> silence(160, 0);
  EXPECT_EQ(energy(silence), 0);
  EXPECT_EQ(rms(silence), 0);
  EXPECT_EQ(toneRatio(silence, 1000, 8000), 0);
  EXPECT_TRUE(std::isinf(rmsDbfs(silence)));
  EXPECT_EQ(rms(std::span<const int16_t>()), 0);
}

TEST(Tone, RmsOfASine) {
  const auto t = tone(1000, 10000, 8000);
  EXPECT_NEAR(rms(t), 10000 / std::sqrt(2.0), 5);
  EXPECT_NEAR(rmsDbfs(tone(1000, 32767, 8000)), 0.0, 0.05);
  EXPECT_NEAR(rmsDbfs(tone(1000, 32767 / 2.0, 8000)), -6.02, 0.05);
  const std::vector<int16_t> square = {100, -100, 100, -100};
  EXPECT_DOUBLE_EQ(energy(square), 40000);
  EXPECT_DOUBLE_EQ(rms(square), 100);
}

TEST(Tone, GeneratorIsPhaseContinuousAcrossBlocks) {
  SineGenerator whole(440, 10000, 8000);
  std::vector<int16_t> a(160);
  whole.fill(a);
  SineGenerator split(440, 10000, 8000);
  std::vector<int16_t> b(160);
  split.fill(std::span<int16_t>(b).first(80));
  split.fill(std::span<int16_t>(b).subspan(80));
  EXPECT_EQ(a, b);
  EXPECT_EQ(a[0], 0);
  // A 2 kHz tone at 8 kHz: 0, +A, 0, -A.
  SineGenerator quarter(2000, 1000, 8000);
  EXPECT_EQ(quarter.next(), 0);
  EXPECT_EQ(quarter.next(), 1000);
  EXPECT_EQ(quarter.next(), 0);
  EXPECT_EQ(quarter.next(), -1000);
}

TEST(Tone, AmplitudeBeyondFullScaleClips) {
  const auto t = tone(1000, 40000, 80);
  int16_t hi = 0;
  for (auto s : t) {
    hi = std::max(hi, s);
  }
  EXPECT_EQ(hi, 32767);
}

}  // namespace
}  // namespace evosip::audio
