#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/audio/g711.hpp>
#include <evosip/audio/tone.hpp>
#include <evosip/audio/wav.hpp>

namespace evosip::audio {
namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v));
  put16(b, static_cast<uint16_t>(v >> 16));
}
void putId(Bytes& b, const char* id) {
  b.insert(b.end(), id, id + 4);
}

Bytes chunk(const char* id, const Bytes& body, bool pad = true) {
  Bytes b;
  putId(b, id);
  put32(b, static_cast<uint32_t>(body.size()));
  b.insert(b.end(), body.begin(), body.end());
  if (pad && body.size() % 2 == 1) {
    b.push_back(0);
  }
  return b;
}

Bytes fmtBody(uint16_t tag, uint16_t channels, uint32_t rate, uint16_t bits, int blockAlign = -1) {
  const uint16_t align = blockAlign >= 0 ? static_cast<uint16_t>(blockAlign)
                                         : static_cast<uint16_t>(channels * bits / 8);
  Bytes b;
  put16(b, tag);
  put16(b, channels);
  put32(b, rate);
  put32(b, rate * align);
  put16(b, align);
  put16(b, bits);
  return b;
}

Bytes extensibleBody(uint16_t subformat, uint16_t channels, uint32_t rate, uint16_t bits) {
  Bytes b = fmtBody(kWavFormatExtensible, channels, rate, bits);
  put16(b, 22);    // cbSize
  put16(b, bits);  // valid bits
  put32(b, channels == 1 ? 0x4 : 0x3);
  put16(b, subformat);
  const uint8_t tail[14] = {0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71};
  b.insert(b.end(), tail, tail + 14);
  return b;
}

Bytes riff(const std::vector<Bytes>& chunks, int sizeOverride = -1) {
  Bytes body;
  putId(body, "WAVE");
  for (const auto& c : chunks) {
    body.insert(body.end(), c.begin(), c.end());
  }
  Bytes b;
  putId(b, "RIFF");
  put32(b, sizeOverride >= 0 ? static_cast<uint32_t>(sizeOverride)
                             : static_cast<uint32_t>(body.size()));
  b.insert(b.end(), body.begin(), body.end());
  return b;
}

Bytes pcmBytes(const std::vector<int16_t>& samples) {
  Bytes b;
  for (auto s : samples) {
    put16(b, static_cast<uint16_t>(s));
  }
  return b;
}

Bytes pcmWav(const std::vector<int16_t>& samples, uint16_t channels = 1, uint32_t rate = 8000) {
  return riff({chunk("fmt ", fmtBody(kWavFormatPcm, channels, rate, 16)),
               chunk("data", pcmBytes(samples))});
}

std::vector<int16_t> toneSamples(double hz, size_t n, uint32_t rate) {
  std::vector<int16_t> v(n);
  SineGenerator(hz, 10000, rate).fill(v);
  return v;
}

TEST(Wav, ReadsPcm16Mono) {
  const std::vector<int16_t> samples = {0, 1, -1, 32767, -32768, 1234};
  const Bytes file = pcmWav(samples);
  auto wav = parseWav(file);
  ASSERT_TRUE(wav) << wav.error().message;
  EXPECT_EQ(wav->format.encoding, WavEncoding::kPcm16);
  EXPECT_EQ(wav->format.channels, 1);
  EXPECT_EQ(wav->format.sampleRate, 8000u);
  EXPECT_EQ(wav->format.bitsPerSample, 16);
  EXPECT_EQ(wav->frames(), samples.size());
  EXPECT_EQ(decodeWavSamples(*wav), samples);
}

TEST(Wav, ReadsUlawAndAlaw) {
  const Bytes codes = {0xFF, 0x00, 0x80, 0x7E, 0xD5};
  // parseWav returns a view: the file must outlive it.
  const Bytes ulawFile =
      riff({chunk("fmt ", fmtBody(kWavFormatUlaw, 1, 8000, 8)), chunk("data", codes)});
  auto u = parseWav(ulawFile);
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->format.encoding, WavEncoding::kUlaw);
  EXPECT_EQ(u->frames(), 5u);
  EXPECT_EQ(decodeWavSamples(*u), (std::vector<int16_t>{0, -32124, 32124, -8, ulawToLinear(0xD5)}));

  const Bytes alawFile =
      riff({chunk("fmt ", fmtBody(kWavFormatAlaw, 1, 8000, 8)), chunk("data", codes)});
  auto a = parseWav(alawFile);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->format.encoding, WavEncoding::kAlaw);
  EXPECT_EQ(decodeWavSamples(*a)[4], 8);
  EXPECT_EQ(decodeWavSamples(*a)[0], alawToLinear(0xFF));
}

TEST(Wav, AnyChunkOrderUnknownChunksAndOddPadding) {
  const std::vector<int16_t> samples = {5, -5, 7};
  // An odd LIST chunk (padded) first, the data before fmt, a fact chunk between.
  const Bytes file =
      riff({chunk("LIST", Bytes{'I', 'N', 'F', 'O', 'x'}), chunk("data", pcmBytes(samples)),
            chunk("fact", Bytes{3, 0, 0, 0}), chunk("fmt ", fmtBody(kWavFormatPcm, 1, 8000, 16))});
  auto wav = parseWav(file);
  ASSERT_TRUE(wav) << wav.error().message;
  EXPECT_EQ(decodeWavSamples(*wav), samples);

  // An odd-sized µ-law data chunk followed by its pad byte and another chunk.
  const Bytes odd = riff({chunk("data", Bytes{0xFF, 0x80, 0x00}), chunk("junk", Bytes{1, 2}),
                          chunk("fmt ", fmtBody(kWavFormatUlaw, 1, 8000, 8))});
  auto w2 = parseWav(odd);
  ASSERT_TRUE(w2) << w2.error().message;
  EXPECT_EQ(w2->frames(), 3u);
}

TEST(Wav, ExtensibleWithPcmSubformat) {
  const std::vector<int16_t> samples = {100, 200, -300, -400};
  auto wav = parseWav(riff({chunk("fmt ", extensibleBody(kWavFormatPcm, 2, 16000, 16)),
                            chunk("data", pcmBytes(samples))}));
  ASSERT_TRUE(wav) << wav.error().message;
  EXPECT_EQ(wav->format.encoding, WavEncoding::kPcm16);
  EXPECT_EQ(wav->format.channels, 2);
  EXPECT_EQ(wav->format.sampleRate, 16000u);
  EXPECT_EQ(wav->frames(), 2u);

  auto ulaw = parseWav(riff(
      {chunk("fmt ", extensibleBody(kWavFormatUlaw, 1, 8000, 8)), chunk("data", Bytes{0xFF})}));
  ASSERT_TRUE(ulaw) << ulaw.error().message;
  EXPECT_EQ(ulaw->format.encoding, WavEncoding::kUlaw);
}

TEST(Wav, ExtensibleErrors) {
  auto flt =
      parseWav(riff({chunk("fmt ", extensibleBody(3, 2, 48000, 32)), chunk("data", Bytes(8))}));
  ASSERT_FALSE(flt);
  EXPECT_EQ(flt.error().code, Errc::kInvalid);
  EXPECT_NE(flt.error().message.find("IEEE float"), std::string::npos) << flt.error().message;
  EXPECT_NE(flt.error().message.find("EXTENSIBLE"), std::string::npos) << flt.error().message;

  Bytes badGuid = extensibleBody(kWavFormatPcm, 1, 8000, 16);
  badGuid.back() ^= 0xFF;
  auto g = parseWav(riff({chunk("fmt ", badGuid), chunk("data", Bytes(2))}));
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, Errc::kInvalid);

  auto shortExt = parseWav(
      riff({chunk("fmt ", fmtBody(kWavFormatExtensible, 1, 8000, 16)), chunk("data", Bytes(2))}));
  ASSERT_FALSE(shortExt);
  EXPECT_EQ(shortExt.error().code, Errc::kParse);
}

TEST(Wav, UnsupportedFormatsAreNamed) {
  auto flt = parseWav(riff({chunk("fmt ", fmtBody(3, 2, 44100, 32)), chunk("data", Bytes(8))}));
  ASSERT_FALSE(flt);
  EXPECT_EQ(flt.error().code, Errc::kInvalid);
  const auto& m = flt.error().message;
  EXPECT_NE(m.find("IEEE float"), std::string::npos) << m;
  EXPECT_NE(m.find("44100 Hz"), std::string::npos) << m;
  EXPECT_NE(m.find("2 channel"), std::string::npos) << m;

  auto mp3 = parseWav(riff({chunk("fmt ", fmtBody(0x55, 1, 8000, 0, 1)), chunk("data", Bytes(8))}));
  ASSERT_FALSE(mp3);
  EXPECT_NE(mp3.error().message.find("MPEG Layer 3"), std::string::npos) << mp3.error().message;

  auto pcm8 =
      parseWav(riff({chunk("fmt ", fmtBody(kWavFormatPcm, 1, 8000, 8)), chunk("data", Bytes(8))}));
  ASSERT_FALSE(pcm8);
  EXPECT_EQ(pcm8.error().code, Errc::kInvalid);
  EXPECT_NE(pcm8.error().message.find("8 bits"), std::string::npos) << pcm8.error().message;

  auto ulaw16 = parseWav(
      riff({chunk("fmt ", fmtBody(kWavFormatUlaw, 1, 8000, 16)), chunk("data", Bytes(8))}));
  ASSERT_FALSE(ulaw16);
  EXPECT_EQ(ulaw16.error().code, Errc::kInvalid);
}

TEST(Wav, MalformedInput) {
  auto expectError = [](const Bytes& b, Errc code, const std::string& text) {
    auto r = parseWav(b);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, code) << r.error().message;
    EXPECT_NE(r.error().message.find(text), std::string::npos) << r.error().message;
  };
  expectError({}, Errc::kParse, "no RIFF");
  expectError({'I', 'D', '3', 4, 0, 0, 0, 0, 0, 0, 0, 0}, Errc::kParse, "no RIFF");
  expectError({'R', 'I'}, Errc::kIncomplete, "truncated");
  expectError({'R', 'I', 'F', 'F', 4, 0, 0}, Errc::kIncomplete, "truncated");
  Bytes avi = riff({});
  avi[8] = 'A';
  avi[9] = 'V';
  avi[10] = 'I';
  avi[11] = ' ';
  expectError(avi, Errc::kParse, "'AVI '");
  expectError(riff({chunk("data", Bytes(4))}), Errc::kParse, "no fmt chunk");
  expectError(riff({chunk("fmt ", fmtBody(1, 1, 8000, 16))}), Errc::kParse, "no data chunk");
  expectError(riff({chunk("fmt ", Bytes(14))}), Errc::kParse, "too short");
  expectError(riff({chunk("fmt ", fmtBody(1, 0, 8000, 16, 2)), chunk("data", Bytes(2))}),
              Errc::kParse, "0 channels");
  expectError(riff({chunk("fmt ", fmtBody(1, 1, 0, 16)), chunk("data", Bytes(2))}), Errc::kParse,
              "sample rate 0");
  expectError(riff({chunk("fmt ", fmtBody(1, 2, 8000, 16, 2)), chunk("data", Bytes(4))}),
              Errc::kParse, "block align");

  // The data chunk claims more than the file holds.
  Bytes truncated = riff({chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", Bytes(100))});
  truncated.resize(truncated.size() - 10);
  expectError(truncated, Errc::kIncomplete, "data chunk declares 100 bytes, 90 present");
  // Cut inside the fmt chunk.
  Bytes cutFmt = riff({chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", Bytes(4))});
  cutFmt.resize(12 + 8 + 10);
  expectError(cutFmt, Errc::kIncomplete, "fmt chunk declares 16 bytes");
  // Cut before the data chunk starts.
  Bytes cutBeforeData = riff({chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", Bytes(4))});
  cutBeforeData.resize(12 + 24 + 3);
  expectError(cutBeforeData, Errc::kIncomplete, "no data chunk");
}

TEST(Wav, DataLimit) {
  const Bytes file = pcmWav(std::vector<int16_t>(1000, 0));
  auto r = parseWav(file, WavLimits{1999});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTooLarge);
  EXPECT_NE(r.error().message.find("2000 bytes"), std::string::npos) << r.error().message;
  EXPECT_TRUE(parseWav(file, WavLimits{2000}));
}

TEST(Wav, SizesTheWayRealFilesGetThemWrong) {
  // A partial trailing frame is dropped.
  Bytes odd = riff({chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", Bytes{1, 0, 2, 0, 3})});
  auto w = parseWav(odd);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(decodeWavSamples(*w), (std::vector<int16_t>{1, 2}));

  // Unknown sizes (a streaming writer that never came back): data runs to the end.
  Bytes streaming = riff({chunk("fmt ", fmtBody(1, 1, 8000, 16))}, -1);
  putId(streaming, "data");
  put32(streaming, 0xFFFFFFFF);
  const Bytes pcm = pcmBytes({7, 8, 9});
  streaming.insert(streaming.end(), pcm.begin(), pcm.end());
  streaming[4] = streaming[5] = streaming[6] = streaming[7] = 0xFF;
  auto s = parseWav(streaming);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(decodeWavSamples(*s), (std::vector<int16_t>{7, 8, 9}));

  // Bytes after the RIFF chunk are not part of it.
  Bytes trailing = pcmWav({1, 2});
  trailing.insert(trailing.end(), {'j', 'u', 'n', 'k', 0xFF, 0xFF, 0xFF, 0x7F});
  auto t = parseWav(trailing);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->frames(), 2u);

  // A RIFF size larger than the file, but every chunk complete: accepted.
  auto big =
      parseWav(riff({chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", Bytes(4))}, 1000));
  ASSERT_TRUE(big) << big.error().message;
  EXPECT_EQ(big->frames(), 2u);
}

TEST(Prompt, EightKilohertzMonoAsIs) {
  const std::vector<int16_t> samples = {1, -2, 3, -4};
  auto p = loadPrompt(pcmWav(samples));
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(*p, samples);
  auto u = loadPrompt(
      riff({chunk("fmt ", fmtBody(kWavFormatUlaw, 1, 8000, 8)), chunk("data", Bytes{0xFF, 0x80})}));
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(*u, (std::vector<int16_t>{0, 32124}));
}

TEST(Prompt, StereoIsAveragedToMono) {
  auto p = loadPrompt(pcmWav({100, 300, -32768, -32768, 32767, 32767, 1, -2}, 2));
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(*p, (std::vector<int16_t>{200, -32768, 32767, 0}));
}

TEST(Prompt, HigherRatesAreFilteredAndDecimated) {
  for (uint32_t rate : {16000u, 32000u, 48000u}) {
    const auto in = toneSamples(1000, rate, rate);  // one second
    auto p = loadPrompt(pcmWav(in, 1, rate));
    ASSERT_TRUE(p) << p.error().message;
    ASSERT_EQ(p->size(), 8000u) << rate;
    const std::span<const int16_t> middle = std::span<const int16_t>(*p).subspan(400, 7200);
    EXPECT_GT(toneRatio(middle, 1000, 8000), 0.99) << rate;
    EXPECT_NEAR(rms(middle), 10000 / std::sqrt(2.0), 100) << rate;
  }
  // 6 kHz would alias to 2 kHz without the low-pass; it must be gone instead.
  const auto high = toneSamples(6000, 16000, 16000);
  auto p = loadPrompt(pcmWav(high, 1, 16000));
  ASSERT_TRUE(p) << p.error().message;
  const std::span<const int16_t> middle = std::span<const int16_t>(*p).subspan(400, 7200);
  EXPECT_LT(rms(middle), rms(high) / 1000);
  // Stereo 16 kHz: both at once.
  std::vector<int16_t> stereo;
  for (auto s : toneSamples(440, 16000, 16000)) {
    stereo.push_back(s);
    stereo.push_back(s);
  }
  auto st = loadPrompt(pcmWav(stereo, 2, 16000));
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->size(), 8000u);
  EXPECT_GT(toneRatio(std::span<const int16_t>(*st).subspan(400, 7200), 440, 8000), 0.99);
}

TEST(Prompt, UnsupportedRatesAndChannelsSaySo) {
  auto r = loadPrompt(pcmWav(std::vector<int16_t>(10), 1, 44100));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalid);
  EXPECT_NE(r.error().message.find("44100 Hz"), std::string::npos) << r.error().message;
  auto r2 = loadPrompt(pcmWav(std::vector<int16_t>(10), 1, 96000));
  ASSERT_FALSE(r2);
  auto c = loadPrompt(pcmWav(std::vector<int16_t>(12), 3));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Errc::kInvalid);
  EXPECT_NE(c.error().message.find("3 channels"), std::string::npos) << c.error().message;
  auto bad = loadPrompt(Bytes{'x'});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kParse);
}

TEST(WavWriter, HeaderIsCanonicalAndSizesArePatched) {
  StringWavSink sink;
  WavWriter w(sink);
  const std::vector<int16_t> block = {1, -1, 0x1234};
  ASSERT_TRUE(w.append(block));
  const std::string& b = sink.bytes();
  ASSERT_EQ(b.size(), 44u + 6);
  EXPECT_EQ(b.substr(0, 4), "RIFF");
  EXPECT_EQ(b.substr(4, 4), std::string(4, '\xFF'));  // unknown until close
  ASSERT_TRUE(w.close());
  const Bytes expected = {'R', 'I', 'F',  'F',  42, 0, 0, 0,    'W',  'A',  'V', 'E',  'f',
                          'm', 't', ' ',  16,   0,  0, 0, 1,    0,    1,    0,   0x40, 0x1F,
                          0,   0,   0x80, 0x3E, 0,  0, 2, 0,    16,   0,    'd', 'a',  't',
                          'a', 6,   0,    0,    0,  1, 0, 0xFF, 0xFF, 0x34, 0x12};
  EXPECT_EQ(Bytes(b.begin(), b.end()), expected);
  EXPECT_TRUE(w.close());  // idempotent
  auto after = w.append(block);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, Errc::kInvalid);
}

TEST(WavWriter, StreamedBlocksReadBack) {
  StringWavSink sink;
  WavWriter w(sink);
  std::vector<int16_t> all(8000 + 37);
  SineGenerator(440, 12000, 8000).fill(all);
  for (size_t pos = 0; pos < all.size(); pos += 160) {
    const size_t n = std::min<size_t>(160, all.size() - pos);
    ASSERT_TRUE(w.append(std::span<const int16_t>(all).subspan(pos, n)));
  }
  EXPECT_EQ(w.samplesWritten(), all.size());
  // Readable before close (unknown sizes) and after.
  const std::string& s = sink.bytes();
  auto open = loadPrompt(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  ASSERT_TRUE(open) << open.error().message;
  EXPECT_EQ(*open, all);
  ASSERT_TRUE(w.close());
  const std::string& c = sink.bytes();
  auto wav = parseWav(std::span(reinterpret_cast<const uint8_t*>(c.data()), c.size()));
  ASSERT_TRUE(wav) << wav.error().message;
  EXPECT_EQ(wav->format.sampleRate, 8000u);
  EXPECT_EQ(wav->format.channels, 1);
  EXPECT_EQ(decodeWavSamples(*wav), all);
}

TEST(WavWriter, EmptyRecordingIsAValidFile) {
  StringWavSink sink;
  WavWriter w(sink, 16000);
  ASSERT_TRUE(w.close());
  const std::string& c = sink.bytes();
  EXPECT_EQ(c.size(), 44u);
  auto wav = parseWav(std::span(reinterpret_cast<const uint8_t*>(c.data()), c.size()));
  ASSERT_TRUE(wav) << wav.error().message;
  EXPECT_EQ(wav->format.sampleRate, 16000u);
  EXPECT_EQ(wav->frames(), 0u);
}

TEST(WavWriter, FileSinkRoundTrip) {
  const std::string path = ::testing::TempDir() + "evosip_wav_writer_test.wav";
  std::vector<int16_t> samples(1600);
  SineGenerator(1000, 8000, 8000).fill(samples);
  {
    auto sink = FileWavSink::open(path);
    ASSERT_TRUE(sink) << sink.error().message;
    WavWriter w(**sink);
    ASSERT_TRUE(w.append(samples));
    ASSERT_TRUE(w.append(samples));
    ASSERT_TRUE(w.close());
    ASSERT_TRUE((*sink)->close());
    EXPECT_FALSE((*sink)->close());
  }
  auto p = loadPromptFile(path);
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->size(), 3200u);
  EXPECT_TRUE(std::equal(samples.begin(), samples.end(), p->begin()));
  EXPECT_TRUE(std::equal(samples.begin(), samples.end(), p->begin() + 1600));
  std::remove(path.c_str());

  auto missing = loadPromptFile("/nonexistent/evosip/prompt.wav");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kIo);
  EXPECT_NE(missing.error().message.find("/nonexistent/evosip/prompt.wav"), std::string::npos);
  auto cannot = FileWavSink::open("/nonexistent/evosip/out.wav");
  ASSERT_FALSE(cannot);
  EXPECT_EQ(cannot.error().code, Errc::kIo);
}

TEST(WavWriter, StringSinkRejectsPatchesBeyondTheEnd) {
  StringWavSink sink;
  const uint8_t v[4] = {1, 2, 3, 4};
  EXPECT_FALSE(sink.patch(0, v));
  ASSERT_TRUE(sink.append(v));
  EXPECT_TRUE(sink.patch(0, v));
  EXPECT_FALSE(sink.patch(1, v));
}

}  // namespace
}  // namespace evosip::audio
