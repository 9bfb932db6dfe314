#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>

#include <fmt/format.h>

#include <evosip/audio/g711.hpp>
#include <evosip/audio/wav.hpp>

namespace evosip::audio {
namespace {

uint16_t rd16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
void wr16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void wr32(uint8_t* p, uint32_t v) {
  wr16(p, static_cast<uint16_t>(v));
  wr16(p + 2, static_cast<uint16_t>(v >> 16));
}
bool idIs(const uint8_t* p, const char* id) {
  return std::memcmp(p, id, 4) == 0;
}

std::string printableId(const uint8_t* p) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    s += (p[i] >= 0x20 && p[i] < 0x7F) ? static_cast<char>(p[i]) : '?';
  }
  return s;
}

const char* formatName(uint16_t tag) {
  switch (tag) {
    case 0x0001:
      return "PCM";
    case 0x0002:
      return "Microsoft ADPCM";
    case 0x0003:
      return "IEEE float";
    case 0x0006:
      return "A-law";
    case 0x0007:
      return "mu-law";
    case 0x0011:
      return "IMA ADPCM";
    case 0x0031:
      return "GSM 6.10";
    case 0x0055:
      return "MPEG Layer 3";
    case 0x0064:
      return "G.721 ADPCM";
    case 0xFFFE:
      return "WAVE_FORMAT_EXTENSIBLE";
    default:
      return "unknown";
  }
}

// The bytes of KSDATAFORMAT_SUBTYPE_* after the leading 16-bit format tag.
constexpr uint8_t kSubtypeTail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                      0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};

Result<WavFormat> parseFmt(const uint8_t* p, uint32_t size) {
  if (size < 16) {
    return makeError(Errc::kParse,
                     fmt::format("WAV fmt chunk too short ({} bytes, need 16)", size));
  }
  uint16_t tag = rd16(p);
  const uint16_t channels = rd16(p + 2);
  const uint32_t rate = rd32(p + 4);
  const uint16_t blockAlign = rd16(p + 12);
  const uint16_t bits = rd16(p + 14);
  const bool extensible = tag == kWavFormatExtensible;
  if (extensible) {
    if (size < 40) {
      return makeError(
          Errc::kParse,
          fmt::format("WAVE_FORMAT_EXTENSIBLE fmt chunk too short ({} bytes, need 40)", size));
    }
    if (std::memcmp(p + 26, kSubtypeTail, sizeof kSubtypeTail) != 0) {
      return makeError(Errc::kInvalid,
                       "unsupported WAV format: WAVE_FORMAT_EXTENSIBLE with a non-standard "
                       "subformat GUID");
    }
    tag = rd16(p + 24);
  }
  if (channels == 0) {
    return makeError(Errc::kParse, "WAV fmt chunk has 0 channels");
  }
  if (rate == 0) {
    return makeError(Errc::kParse, "WAV fmt chunk has sample rate 0");
  }
  WavFormat f;
  f.channels = channels;
  f.sampleRate = rate;
  f.bitsPerSample = bits;
  f.blockAlign = blockAlign;
  const auto unsupported = [&] {
    const char* why = extensible ? " inside WAVE_FORMAT_EXTENSIBLE" : "";
    return makeError(
        Errc::kInvalid,
        fmt::format("unsupported WAV format: {} (0x{:04x}){}, {} Hz, {} channel(s), {} "
                    "bits per sample; supported: 16-bit PCM, 8-bit mu-law, 8-bit A-law",
                    formatName(tag), tag, why, rate, channels, bits));
  };
  uint32_t bytesPerSample = 0;
  if (tag == kWavFormatPcm) {
    if (bits != 16) {
      return unsupported();
    }
    f.encoding = WavEncoding::kPcm16;
    bytesPerSample = 2;
  } else if (tag == kWavFormatUlaw || tag == kWavFormatAlaw) {
    if (bits != 8) {
      return unsupported();
    }
    f.encoding = tag == kWavFormatUlaw ? WavEncoding::kUlaw : WavEncoding::kAlaw;
    bytesPerSample = 1;
  } else {
    return unsupported();
  }
  if (blockAlign != channels * bytesPerSample) {
    return makeError(Errc::kParse,
                     fmt::format("WAV fmt chunk block align {} does not match {} channel(s) of {} "
                                 "bits",
                                 blockAlign, channels, bits));
  }
  return f;
}

}  // namespace

Result<WavView> parseWav(std::span<const uint8_t> bytes, const WavLimits& limits) {
  const uint8_t* b = bytes.data();
  const size_t size = bytes.size();
  if (size < 4 || (!idIs(b, "RIFF") && !idIs(b, "RIFX"))) {
    if (size > 0 && size < 4 && std::memcmp(b, "RIFF", size) == 0) {
      return makeError(Errc::kIncomplete, "truncated WAV: shorter than the RIFF header");
    }
    return makeError(Errc::kParse, "not a WAV file: no RIFF header");
  }
  if (idIs(b, "RIFX")) {
    return makeError(Errc::kInvalid, "unsupported WAV: big-endian RIFX");
  }
  if (size < 12) {
    return makeError(Errc::kIncomplete, "truncated WAV: shorter than the RIFF header");
  }
  if (!idIs(b + 8, "WAVE")) {
    return makeError(Errc::kParse,
                     fmt::format("not a WAV file: RIFF form type '{}'", printableId(b + 8)));
  }
  const uint32_t riffSize = rd32(b + 4);
  uint64_t end = size;
  const uint64_t declaredEnd = 8 + static_cast<uint64_t>(riffSize);
  const bool riffSizeKnown = riffSize != 0xFFFFFFFF && riffSize >= 4;
  if (riffSizeKnown && declaredEnd < end) {
    end = declaredEnd;  // trailing bytes after the RIFF chunk are not part of the file
  }

  bool haveFmt = false;
  bool haveData = false;
  WavView view;
  uint64_t pos = 12;
  while (pos + 8 <= end && !(haveFmt && haveData)) {
    const uint8_t* h = b + pos;
    const uint32_t chunkSize = rd32(h + 4);
    const uint64_t body = pos + 8;
    const uint64_t avail = end - body;
    if (idIs(h, "fmt ") && !haveFmt) {
      if (chunkSize > avail) {
        return makeError(Errc::kIncomplete,
                         fmt::format("truncated WAV: fmt chunk declares {} bytes, {} present",
                                     chunkSize, avail));
      }
      auto f = parseFmt(b + body, chunkSize);
      if (!f) {
        return tl::unexpected(f.error());
      }
      view.format = *f;
      haveFmt = true;
    } else if (idIs(h, "data") && !haveData) {
      uint64_t len = chunkSize;
      if (chunkSize == 0xFFFFFFFF) {
        len = avail;  // written by a streaming writer that never patched the size
      } else if (chunkSize > avail) {
        return makeError(Errc::kIncomplete,
                         fmt::format("truncated WAV: data chunk declares {} bytes, {} present",
                                     chunkSize, avail));
      }
      if (len > limits.maxDataBytes) {
        return makeError(
            Errc::kTooLarge,
            fmt::format("WAV data of {} bytes exceeds the limit of {}", len, limits.maxDataBytes));
      }
      view.data = bytes.subspan(body, len);
      haveData = true;
      if (chunkSize == 0xFFFFFFFF) {
        break;
      }
    }
    pos = body + chunkSize + (chunkSize & 1);
  }
  if (!haveFmt || !haveData) {
    const char* missing = !haveFmt ? "fmt" : "data";
    if (riffSizeKnown && declaredEnd > size) {
      return makeError(Errc::kIncomplete,
                       fmt::format("truncated WAV: no {} chunk in {} bytes, RIFF declares {}",
                                   missing, size, declaredEnd));
    }
    return makeError(Errc::kParse, fmt::format("invalid WAV: no {} chunk", missing));
  }
  // Drop a partial trailing frame.
  view.data = view.data.first(view.data.size() - view.data.size() % view.format.blockAlign);
  return view;
}

std::vector<int16_t> decodeWavSamples(const WavView& wav) {
  std::vector<int16_t> out;
  const auto& d = wav.data;
  switch (wav.format.encoding) {
    case WavEncoding::kPcm16:
      out.resize(d.size() / 2);
      for (size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<int16_t>(rd16(d.data() + 2 * i));
      }
      break;
    case WavEncoding::kUlaw:
      out.resize(d.size());
      decodeUlaw(d, out);
      break;
    case WavEncoding::kAlaw:
      out.resize(d.size());
      decodeAlaw(d, out);
      break;
  }
  return out;
}

std::vector<int16_t> decimate(std::span<const int16_t> in, uint32_t inRate, uint32_t factor,
                              double cutoffHz) {
  if (factor <= 1) {
    return {in.begin(), in.end()};
  }
  // Blackman-windowed sinc, 32 taps per output-rate period: about -74 dB in the stop band.
  const int half = static_cast<int>(16 * factor);
  const int taps = 2 * half + 1;
  const double fc = cutoffHz / inRate;
  std::vector<double> h(taps);
  double sum = 0;
  for (int n = 0; n < taps; ++n) {
    const double m = n - half;
    const double sinc =
        m == 0 ? 2 * fc : std::sin(2 * std::numbers::pi * fc * m) / (std::numbers::pi * m);
    const double w = 0.42 - 0.5 * std::cos(2 * std::numbers::pi * n / (taps - 1)) +
                     0.08 * std::cos(4 * std::numbers::pi * n / (taps - 1));
    h[n] = sinc * w;
    sum += h[n];
  }
  for (auto& v : h) {
    v /= sum;
  }
  const int64_t len = static_cast<int64_t>(in.size());
  std::vector<int16_t> out((in.size() + factor - 1) / factor);
  for (size_t k = 0; k < out.size(); ++k) {
    const int64_t center = static_cast<int64_t>(k) * factor;
    double acc = 0;
    const int64_t first = std::max<int64_t>(0, center - half);
    const int64_t last = std::min<int64_t>(len - 1, center + half);
    for (int64_t i = first; i <= last; ++i) {
      acc += h[i - center + half] * in[i];
    }
    out[k] = static_cast<int16_t>(std::clamp(std::lround(acc), -32768L, 32767L));
  }
  return out;
}

Result<std::vector<int16_t>> loadPrompt(std::span<const uint8_t> bytes, const WavLimits& limits) {
  auto wav = parseWav(bytes, limits);
  if (!wav) {
    return tl::unexpected(wav.error());
  }
  const WavFormat& f = wav->format;
  if (f.channels > 2) {
    return makeError(
        Errc::kInvalid,
        fmt::format("prompt has {} channels; prompts must be mono or stereo", f.channels));
  }
  const uint32_t factor = f.sampleRate / kPromptRate;
  if (f.sampleRate % kPromptRate != 0 || factor > 6) {
    return makeError(Errc::kInvalid,
                     fmt::format("prompt sample rate {} Hz is not supported; prompts must be 8000 "
                                 "Hz or 16000, 24000, 32000, 40000, 48000 Hz (decimated to 8000)",
                                 f.sampleRate));
  }
  std::vector<int16_t> samples = decodeWavSamples(*wav);
  if (f.channels == 2) {
    for (size_t i = 0; i < samples.size() / 2; ++i) {
      samples[i] = static_cast<int16_t>((samples[2 * i] + samples[2 * i + 1]) / 2);
    }
    samples.resize(samples.size() / 2);
  }
  if (factor > 1) {
    return decimate(samples, f.sampleRate, factor, 3500.0);
  }
  return samples;
}

Result<std::vector<int16_t>> loadPromptFile(const std::string& path, const WavLimits& limits) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return makeError(Errc::kIo,
                     fmt::format("cannot open prompt {}: {}", path, std::strerror(errno)));
  }
  const size_t maxFile = limits.maxDataBytes + 64 * 1024;
  std::vector<uint8_t> bytes;
  uint8_t buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    bytes.insert(bytes.end(), buf, buf + n);
    if (bytes.size() > maxFile) {
      std::fclose(f);
      return makeError(Errc::kTooLarge,
                       fmt::format("prompt {} is larger than {} bytes", path, maxFile));
    }
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    return makeError(Errc::kIo, fmt::format("cannot read prompt {}", path));
  }
  auto samples = loadPrompt(bytes, limits);
  if (!samples) {
    return makeError(samples.error().code, fmt::format("{}: {}", path, samples.error().message));
  }
  return samples;
}

// ---- writing ----

Result<void> StringWavSink::append(std::span<const uint8_t> bytes) {
  out_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return {};
}

Result<void> StringWavSink::patch(uint64_t offset, std::span<const uint8_t> bytes) {
  if (offset > out_.size() || bytes.size() > out_.size() - offset) {
    return makeError(Errc::kInvalid, "WAV patch beyond the written bytes");
  }
  std::memcpy(out_.data() + offset, bytes.data(), bytes.size());
  return {};
}

Result<std::unique_ptr<FileWavSink>> FileWavSink::open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return makeError(Errc::kIo, fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  }
  return std::unique_ptr<FileWavSink>(new FileWavSink(f, path));
}

FileWavSink::~FileWavSink() {
  if (file_ != nullptr) {
    std::fclose(file_);
  }
}

Result<void> FileWavSink::append(std::span<const uint8_t> bytes) {
  if (file_ == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    return makeError(Errc::kIo, fmt::format("cannot write {}", path_));
  }
  return {};
}

Result<void> FileWavSink::patch(uint64_t offset, std::span<const uint8_t> bytes) {
  if (file_ == nullptr || fseeko(file_, static_cast<off_t>(offset), SEEK_SET) != 0 ||
      std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size() ||
      fseeko(file_, 0, SEEK_END) != 0) {
    return makeError(Errc::kIo, fmt::format("cannot update the header of {}", path_));
  }
  return {};
}

Result<void> FileWavSink::close() {
  if (file_ == nullptr) {
    return makeError(Errc::kIo, fmt::format("{} is already closed", path_));
  }
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) {
    return makeError(Errc::kIo, fmt::format("cannot close {}", path_));
  }
  return {};
}

namespace {
constexpr uint64_t kHeaderSize = 44;
// Largest data size that keeps the RIFF size below the 0xFFFFFFFF "unknown" marker.
constexpr uint64_t kMaxDataBytes = 0xFFFFFFFEull - (kHeaderSize - 8);
}  // namespace

WavWriter::WavWriter(WavSink& sink, uint32_t sampleRate) : sink_(sink), sampleRate_(sampleRate) {}

Result<void> WavWriter::writeHeader() {
  uint8_t h[kHeaderSize];
  std::memcpy(h, "RIFF", 4);
  wr32(h + 4, 0xFFFFFFFF);
  std::memcpy(h + 8, "WAVEfmt ", 8);
  wr32(h + 16, 16);
  wr16(h + 20, kWavFormatPcm);
  wr16(h + 22, 1);
  wr32(h + 24, sampleRate_);
  wr32(h + 28, sampleRate_ * 2);
  wr16(h + 32, 2);
  wr16(h + 34, 16);
  std::memcpy(h + 36, "data", 4);
  wr32(h + 40, 0xFFFFFFFF);
  auto r = sink_.append(h);
  if (r) {
    headerWritten_ = true;
  }
  return r;
}

Result<void> WavWriter::append(std::span<const int16_t> samples) {
  if (closed_) {
    return makeError(Errc::kInvalid, "WAV writer is closed");
  }
  if ((samples_ + samples.size()) * 2 > kMaxDataBytes) {
    return makeError(Errc::kTooLarge, "WAV recording would exceed 4 GiB");
  }
  if (!headerWritten_) {
    if (auto r = writeHeader(); !r) {
      return r;
    }
  }
  uint8_t buf[1024];
  while (!samples.empty()) {
    const size_t n = std::min(samples.size(), sizeof buf / 2);
    for (size_t i = 0; i < n; ++i) {
      wr16(buf + 2 * i, static_cast<uint16_t>(samples[i]));
    }
    if (auto r = sink_.append(std::span<const uint8_t>(buf, 2 * n)); !r) {
      return r;
    }
    samples_ += n;
    samples = samples.subspan(n);
  }
  return {};
}

Result<void> WavWriter::close() {
  if (closed_) {
    return {};
  }
  if (!headerWritten_) {
    if (auto r = writeHeader(); !r) {
      return r;
    }
  }
  const uint64_t dataBytes = samples_ * 2;
  uint8_t v[4];
  wr32(v, static_cast<uint32_t>(dataBytes + kHeaderSize - 8));
  if (auto r = sink_.patch(4, v); !r) {
    return r;
  }
  wr32(v, static_cast<uint32_t>(dataBytes));
  if (auto r = sink_.patch(40, v); !r) {
    return r;
  }
  closed_ = true;
  return {};
}

}  // namespace evosip::audio
