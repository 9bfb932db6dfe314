#include <cmath>
#include <cstdlib>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/audio/g711.hpp>
#include <evosip/audio/tone.hpp>

namespace evosip::audio {
namespace {

// The ITU-T G.191 reference loops, written out plainly, as the oracle for the fast versions.
uint8_t referenceUlaw(int16_t x) {
  int absno = x < 0 ? ((~x) >> 2) + 33 : (x >> 2) + 33;
  if (absno > 0x1FFF) {
    absno = 0x1FFF;
  }
  int i = absno >> 6;
  int segno = 1;
  while (i != 0) {
    segno++;
    i >>= 1;
  }
  const int high = 8 - segno;
  const int low = 0x0F - ((absno >> segno) & 0x0F);
  int out = (high << 4) | low;
  if (x >= 0) {
    out |= 0x80;
  }
  return static_cast<uint8_t>(out);
}

uint8_t referenceAlaw(int16_t x) {
  int ix = x < 0 ? (~x) >> 4 : x >> 4;
  if (ix > 15) {
    int iexp = 1;
    while (ix > 16 + 15) {
      ix >>= 1;
      iexp++;
    }
    ix -= 16;
    ix += iexp << 4;
  }
  if (x >= 0) {
    ix |= 0x80;
  }
  return static_cast<uint8_t>(ix ^ 0x55);
}

TEST(G711, KnownReferenceValues) {
  EXPECT_EQ(ulawToLinear(0xFF), 0);
  EXPECT_EQ(ulawToLinear(0x7F), 0);
  EXPECT_EQ(ulawToLinear(0x00), -32124);
  EXPECT_EQ(ulawToLinear(0x01), -31100);
  EXPECT_EQ(ulawToLinear(0x0F), -16764);
  EXPECT_EQ(ulawToLinear(0x10), -15996);
  EXPECT_EQ(ulawToLinear(0x70), -120);
  EXPECT_EQ(ulawToLinear(0x7E), -8);
  EXPECT_EQ(ulawToLinear(0x80), 32124);
  EXPECT_EQ(ulawToLinear(0xFE), 8);
  EXPECT_EQ(linearToUlaw(0), 0xFF);
  EXPECT_EQ(linearToUlaw(32767), 0x80);
  EXPECT_EQ(linearToUlaw(-32768), 0x00);

  EXPECT_EQ(alawToLinear(0xD5), 8);
  EXPECT_EQ(alawToLinear(0x55), -8);
  EXPECT_EQ(alawToLinear(0x00), -5504);
  EXPECT_EQ(alawToLinear(0x01), -5248);
  EXPECT_EQ(alawToLinear(0x80), 5504);
  EXPECT_EQ(alawToLinear(0xAA), 32256);
  EXPECT_EQ(alawToLinear(0x2A), -32256);
  EXPECT_EQ(linearToAlaw(0), 0xD5);
  EXPECT_EQ(linearToAlaw(-1), 0x55);
  EXPECT_EQ(linearToAlaw(32767), 0xAA);
  EXPECT_EQ(linearToAlaw(-32768), 0x2A);
}

TEST(G711, EncodeMatchesG191ForEveryInput) {
  for (int v = -32768; v <= 32767; ++v) {
    const auto x = static_cast<int16_t>(v);
    ASSERT_EQ(linearToUlaw(x), referenceUlaw(x)) << v;
    ASSERT_EQ(linearToAlaw(x), referenceAlaw(x)) << v;
  }
}

TEST(G711, BlockEncodeMatchesG191ForEveryInput) {
  std::vector<int16_t> all;
  for (int v = -32768; v <= 32767; ++v) {
    all.push_back(static_cast<int16_t>(v));
  }
  std::vector<uint8_t> u(all.size());
  std::vector<uint8_t> a(all.size());
  encodeUlaw(all, u);
  encodeAlaw(all, a);
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(u[i], referenceUlaw(all[i])) << all[i];
    ASSERT_EQ(a[i], referenceAlaw(all[i])) << all[i];
  }
}

TEST(G711, DecodeIsOddSymmetricAndMonotonic) {
  for (int c = 0; c < 128; ++c) {
    EXPECT_EQ(ulawToLinear(static_cast<uint8_t>(c)), -ulawToLinear(static_cast<uint8_t>(c | 0x80)));
    EXPECT_EQ(alawToLinear(static_cast<uint8_t>(c)), -alawToLinear(static_cast<uint8_t>(c | 0x80)));
  }
  // Positive µ-law codes 0x80..0xFF run from the largest magnitude down to 0.
  for (int c = 0x80; c < 0xFF; ++c) {
    EXPECT_GT(ulawToLinear(static_cast<uint8_t>(c)), ulawToLinear(static_cast<uint8_t>(c + 1)));
  }
}

TEST(G711, EveryCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    const auto code = static_cast<uint8_t>(c);
    // µ-law has two zeros; negative zero (0x7F) decodes to 0, which encodes as 0xFF.
    EXPECT_EQ(linearToUlaw(ulawToLinear(code)), c == 0x7F ? 0xFF : code) << c;
    EXPECT_EQ(linearToAlaw(alawToLinear(code)), code) << c;
  }
}

TEST(G711, QuantisationErrorStaysWithinTheSegmentStep) {
  for (int v = -32768; v <= 32767; ++v) {
    const auto x = static_cast<int16_t>(v);
    const int bound = (std::abs(v) + 132) / 16 + 8;
    ASSERT_LE(std::abs(v - ulawToLinear(linearToUlaw(x))), bound) << v;
    ASSERT_LE(std::abs(v - alawToLinear(linearToAlaw(x))), bound) << v;
  }
}

TEST(G711, BlockFunctionsMatchPerSample) {
  std::vector<int16_t> pcm(160);
  SineGenerator(1000, 12000, 8000).fill(pcm);
  std::vector<uint8_t> u(160);
  std::vector<uint8_t> a(160);
  EXPECT_EQ(encodeUlaw(pcm, u), 160u);
  EXPECT_EQ(encodeG711(G711Law::kAlaw, pcm, a), 160u);
  for (size_t i = 0; i < pcm.size(); ++i) {
    EXPECT_EQ(u[i], linearToUlaw(pcm[i]));
    EXPECT_EQ(a[i], linearToAlaw(pcm[i]));
  }
  std::vector<int16_t> back(160);
  EXPECT_EQ(decodeG711(G711Law::kUlaw, u, back), 160u);
  for (size_t i = 0; i < pcm.size(); ++i) {
    EXPECT_EQ(back[i], ulawToLinear(u[i]));
  }
  decodeAlaw(a, back);
  for (size_t i = 0; i < pcm.size(); ++i) {
    EXPECT_EQ(back[i], alawToLinear(a[i]));
  }
  EXPECT_EQ(payloadTypeOf(G711Law::kUlaw), 0);
  EXPECT_EQ(payloadTypeOf(G711Law::kAlaw), 8);
}

// What a listener hears: a mid-level tone through either law keeps ~38 dB SNR.
TEST(G711, ToneSurvivesWithTelephoneQuality) {
  std::vector<int16_t> pcm(8000);
  SineGenerator(1004, 8000, 8000).fill(pcm);
  for (auto law : {G711Law::kUlaw, G711Law::kAlaw}) {
    std::vector<uint8_t> coded(pcm.size());
    std::vector<int16_t> back(pcm.size());
    encodeG711(law, pcm, coded);
    decodeG711(law, coded, back);
    std::vector<int16_t> noise(pcm.size());
    for (size_t i = 0; i < pcm.size(); ++i) {
      noise[i] = static_cast<int16_t>(pcm[i] - back[i]);
    }
    const double snr = 10 * std::log10(energy(pcm) / energy(noise));
    EXPECT_GT(snr, 35.0);
    EXPECT_GT(toneRatio(back, 1004, 8000), 0.99);
  }
}

}  // namespace
}  // namespace evosip::audio
