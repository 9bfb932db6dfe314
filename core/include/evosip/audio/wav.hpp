#pragma once
// WAV (RIFF/WAVE) files: a reader for what prompts are stored as (16-bit PCM, G.711 µ-law and
// A-law, also inside WAVE_FORMAT_EXTENSIBLE), the prompt loader that turns any of them into
// what the app plays (8 kHz mono 16-bit), and a streaming writer for voicemail recordings.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <evosip/base/result.hpp>

namespace evosip::audio {

enum class WavEncoding : uint8_t { kPcm16, kUlaw, kAlaw };

// WAVE format tags (RFC 2361 / mmreg.h) the reader knows.
inline constexpr uint16_t kWavFormatPcm = 0x0001;
inline constexpr uint16_t kWavFormatAlaw = 0x0006;
inline constexpr uint16_t kWavFormatUlaw = 0x0007;
inline constexpr uint16_t kWavFormatExtensible = 0xFFFE;

struct WavFormat {
  WavEncoding encoding = WavEncoding::kPcm16;
  uint16_t channels = 0;
  uint32_t sampleRate = 0;
  uint16_t bitsPerSample = 0;
  uint16_t blockAlign = 0;  // bytes per frame (one sample of every channel)
};

// A parsed file: the format and a view of the sample bytes (whole frames only) in the input.
struct WavView {
  WavFormat format;
  std::span<const uint8_t> data;

  size_t frames() const { return format.blockAlign == 0 ? 0 : data.size() / format.blockAlign; }
};

struct WavLimits {
  size_t maxDataBytes = 64 * 1024 * 1024;  // ~70 minutes of 8 kHz 16-bit mono
};

// Parses a RIFF/WAVE file held in memory. Chunks may come in any order; unknown chunks and
// the pad byte after odd-sized chunks are skipped. Never throws, never reads out of range.
// Errors: kParse (not RIFF/WAVE, malformed fmt), kIncomplete (truncated), kInvalid
// (unsupported format, named with its rate/channels/bits), kTooLarge (data over the limit).
Result<WavView> parseWav(std::span<const uint8_t> bytes, const WavLimits& limits = {});

// Decodes the data of a parsed file to interleaved 16-bit samples.
std::vector<int16_t> decodeWavSamples(const WavView& wav);

// What the app plays: 8 kHz mono 16-bit samples.
inline constexpr uint32_t kPromptRate = 8000;

// Loads a prompt: any format parseWav accepts, mono or stereo (averaged to mono), at 8 kHz
// or an integer multiple of it up to 48 kHz (16, 24, 32, 48 kHz: low-pass filtered at 3.6 kHz
// and decimated). Other rates and more than two channels are rejected with kInvalid, naming
// what the file has.
Result<std::vector<int16_t>> loadPrompt(std::span<const uint8_t> bytes,
                                        const WavLimits& limits = {});
// Reads the file (at most limits.maxDataBytes + 64 KiB) and calls loadPrompt. kIo if the file
// cannot be read; the message names the path.
Result<std::vector<int16_t>> loadPromptFile(const std::string& path, const WavLimits& limits = {});

// Integer-factor decimation of mono samples with a windowed-sinc low-pass at `cutoffHz`
// (used by loadPrompt; exposed for tests). `factor` 1 returns the input unchanged.
std::vector<int16_t> decimate(std::span<const int16_t> in, uint32_t inRate, uint32_t factor,
                              double cutoffHz = 3600.0);

// Where WavWriter puts bytes: appended in order, and patched at an absolute offset at close.
class WavSink {
 public:
  virtual ~WavSink() = default;
  virtual Result<void> append(std::span<const uint8_t> bytes) = 0;
  virtual Result<void> patch(uint64_t offset, std::span<const uint8_t> bytes) = 0;
};

// Into a std::string (tests, or recordings kept in memory before storing them elsewhere).
class StringWavSink final : public WavSink {
 public:
  Result<void> append(std::span<const uint8_t> bytes) override;
  Result<void> patch(uint64_t offset, std::span<const uint8_t> bytes) override;
  const std::string& bytes() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Into a file (stdio). open() creates or truncates it; the destructor closes it.
class FileWavSink final : public WavSink {
 public:
  static Result<std::unique_ptr<FileWavSink>> open(const std::string& path);
  ~FileWavSink() override;
  FileWavSink(const FileWavSink&) = delete;
  FileWavSink& operator=(const FileWavSink&) = delete;
  Result<void> append(std::span<const uint8_t> bytes) override;
  Result<void> patch(uint64_t offset, std::span<const uint8_t> bytes) override;
  // Flushes and closes; later calls fail with kIo.
  Result<void> close();

 private:
  FileWavSink(std::FILE* f, std::string path) : file_(f), path_(std::move(path)) {}
  std::FILE* file_;
  std::string path_;
};

// Streams a mono 16-bit PCM WAV (44-byte canonical header, sizes patched by close()).
// Until close() the header's sizes are 0xFFFFFFFF ("unknown", which parseWav reads as "to the
// end of the file"), so a recording cut short by a crash is still readable.
class WavWriter {
 public:
  explicit WavWriter(WavSink& sink, uint32_t sampleRate = kPromptRate);
  // Appends samples (written little-endian). kTooLarge once the file would pass 4 GiB.
  Result<void> append(std::span<const int16_t> samples);
  // Writes the header if nothing was appended, patches the RIFF and data sizes. Idempotent.
  Result<void> close();
  uint64_t samplesWritten() const { return samples_; }

 private:
  Result<void> writeHeader();

  WavSink& sink_;
  uint32_t sampleRate_;
  uint64_t samples_ = 0;
  bool headerWritten_ = false;
  bool closed_ = false;
};

}  // namespace evosip::audio
