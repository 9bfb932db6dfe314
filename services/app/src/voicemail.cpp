#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/app/voicemail.hpp>
#include <evosip/audio/tone.hpp>
#include <evosip/audio/wav.hpp>

namespace evosip::app {

namespace json = boost::json;
namespace fs = std::filesystem;

bool isValidMailbox(std::string_view mailbox) {
  if (mailbox.empty() || mailbox.size() > 64 || mailbox.front() == '.' ||
      mailbox.find("..") != std::string_view::npos) {
    return false;
  }
  for (char c : mailbox) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '+' || c == '@';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string isoTime(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string newMessageId(std::chrono::system_clock::time_point t, uint32_t random) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return fmt::format("{}-{:08x}", buf, random);
}

json::object toJson(const VoicemailMessage& m) {
  json::object o;
  o["id"] = m.id;
  o["mailbox"] = m.mailbox;
  o["caller"] = m.caller;
  o["caller_uri"] = m.callerUri;
  o["call_id"] = m.callId;
  o["start"] = m.start;
  o["start_unix"] = m.startUnix;
  o["duration_s"] = std::round(m.durationS * 1000.0) / 1000.0;
  o["samples"] = m.samples;
  o["sample_rate"] = m.sampleRate;
  o["format"] = "wav/pcm16/mono";
  o["file"] = m.file;
  return o;
}

Result<VoicemailMessage> voicemailFromJson(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return makeError(Errc::kParse, "voicemail metadata: not a JSON object");
  }
  const auto& o = v.as_object();
  auto str = [&](const char* k) {
    const auto* x = o.if_contains(k);
    return x && x->is_string() ? std::string(x->as_string()) : std::string();
  };
  auto num = [&](const char* k) -> double {
    const auto* x = o.if_contains(k);
    if (x == nullptr) {
      return 0;
    }
    if (x->is_double()) {
      return x->as_double();
    }
    if (x->is_int64()) {
      return static_cast<double>(x->as_int64());
    }
    if (x->is_uint64()) {
      return static_cast<double>(x->as_uint64());
    }
    return 0;
  };
  VoicemailMessage m;
  m.id = str("id");
  m.mailbox = str("mailbox");
  m.caller = str("caller");
  m.callerUri = str("caller_uri");
  m.callId = str("call_id");
  m.start = str("start");
  m.startUnix = static_cast<int64_t>(num("start_unix"));
  m.durationS = num("duration_s");
  m.samples = static_cast<uint64_t>(num("samples"));
  m.sampleRate = static_cast<uint32_t>(num("sample_rate"));
  m.file = str("file");
  if (m.id.empty()) {
    return makeError(Errc::kParse, "voicemail metadata: no id");
  }
  return m;
}

Result<void> storeVoicemail(const std::string& dir, const VoicemailMessage& m,
                            std::span<const int16_t> samples) {
  if (!isValidMailbox(m.mailbox)) {
    return makeError(Errc::kInvalid, "voicemail: invalid mailbox name");
  }
  const fs::path box = fs::path(dir) / m.mailbox;
  std::error_code ec;
  fs::create_directories(box, ec);
  if (ec) {
    return makeError(Errc::kIo, fmt::format("voicemail: mkdir {}: {}", box.string(), ec.message()));
  }
  const std::string wavPath = (box / (m.id + ".wav")).string();
  auto sink = audio::FileWavSink::open(wavPath);
  if (!sink) {
    return makeError(Errc::kIo, sink.error().message);
  }
  audio::WavWriter writer(**sink, m.sampleRate);
  if (auto r = writer.append(samples); !r) {
    return r;
  }
  if (auto r = writer.close(); !r) {
    return r;
  }
  if (auto r = (*sink)->close(); !r) {
    return r;
  }
  const fs::path tmp = box / ("." + m.id + ".json.tmp");
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << json::serialize(toJson(m)) << '\n';
    f.flush();
    if (!f) {
      return makeError(Errc::kIo, "voicemail: cannot write " + tmp.string());
    }
  }
  fs::rename(tmp, box / (m.id + ".json"), ec);
  if (ec) {
    return makeError(Errc::kIo, "voicemail: rename: " + ec.message());
  }
  return {};
}

namespace {

// WAV header (44) and room for the metadata JSON.
constexpr uint64_t kMessageOverhead = 44 + 1024;

}  // namespace

uint64_t voicemailMessageBytes(uint64_t samples) {
  return kMessageOverhead + 2 * samples;
}

uint64_t voicemailRoom(const VoicemailQuota& quota, VoicemailUsage mailbox, VoicemailUsage total,
                       uint64_t maxSamples) {
  if (mailbox.messages >= quota.maxMessages || total.messages >= quota.maxTotalMessages) {
    return 0;
  }
  auto left = [](uint64_t limit, uint64_t used) { return limit > used ? limit - used : 0; };
  const uint64_t bytes =
      std::min(left(quota.maxBytes, mailbox.bytes), left(quota.maxTotalBytes, total.bytes));
  if (bytes <= kMessageOverhead) {
    return 0;
  }
  const uint64_t samples = std::min(maxSamples, (bytes - kMessageOverhead) / 2);
  return samples < 8000 && samples < maxSamples ? 0 : samples;
}

Result<VoicemailUsage> mailboxUsage(const std::string& dir, const std::string& mailbox) {
  if (!isValidMailbox(mailbox)) {
    return makeError(Errc::kInvalid, "voicemail: invalid mailbox name");
  }
  VoicemailUsage u;
  const fs::path box = fs::path(dir) / mailbox;
  std::error_code ec;
  if (!fs::is_directory(box, ec)) {
    return u;
  }
  for (const auto& entry : fs::directory_iterator(box, ec)) {
    std::error_code sizeError;
    const auto size = entry.is_regular_file(sizeError) ? entry.file_size(sizeError) : 0;
    u.bytes += sizeError ? 0 : size;
    const auto& p = entry.path();
    if (p.extension() == ".json" && p.filename().string().front() != '.') {
      ++u.messages;
    }
  }
  if (ec) {
    return makeError(Errc::kIo, "voicemail: " + ec.message());
  }
  return u;
}

Result<VoicemailUsage> voicemailUsage(const std::string& dir) {
  VoicemailUsage total;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return total;
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    std::error_code dirError;
    if (!entry.is_directory(dirError) || !isValidMailbox(name)) {
      continue;
    }
    auto u = mailboxUsage(dir, name);
    if (u) {
      total.messages += u->messages;
      total.bytes += u->bytes;
    }
  }
  if (ec) {
    return makeError(Errc::kIo, "voicemail: " + ec.message());
  }
  return total;
}

Result<std::vector<VoicemailMessage>> listMailbox(const std::string& dir,
                                                  const std::string& mailbox) {
  if (!isValidMailbox(mailbox)) {
    return makeError(Errc::kInvalid, "mailbox: [A-Za-z0-9._+@-], 1..64 characters");
  }
  std::vector<VoicemailMessage> out;
  const fs::path box = fs::path(dir) / mailbox;
  std::error_code ec;
  if (!fs::is_directory(box, ec)) {
    return out;
  }
  for (const auto& entry : fs::directory_iterator(box, ec)) {
    const auto& p = entry.path();
    if (p.extension() != ".json" || p.filename().string().front() == '.') {
      continue;
    }
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    if (auto m = voicemailFromJson(ss.str())) {
      out.push_back(std::move(*m));
    }
  }
  if (ec) {
    return makeError(Errc::kIo, "voicemail: " + ec.message());
  }
  std::sort(out.begin(), out.end(),
            [](const VoicemailMessage& a, const VoicemailMessage& b) { return a.id < b.id; });
  return out;
}

void VoicemailRecorder::onAudio(uint32_t timestamp, std::span<const int16_t> samples,
                                TimePoint arrival) {
  if (full()) {
    return;
  }
  if (started_) {
    const auto gap = static_cast<int32_t>(timestamp - nextTimestamp_);
    if (gap < 0) {
      return;  // late or duplicate: its place has passed
    }
    // Silence for lost packets, up to the time that passed since the first packet (8 samples a
    // millisecond, and 60 ms for the jitter of the arrival times): never more audio than the
    // call lasted.
    const auto elapsedMs =
        std::chrono::duration_cast<std::chrono::milliseconds>(arrival - first_).count();
    const size_t elapsed = static_cast<size_t>(std::max<int64_t>(0, elapsedMs) + 60) * 8;
    const size_t room = elapsed > samples_.size() ? elapsed - samples_.size() : 0;
    const size_t fill = std::min({static_cast<size_t>(std::max(gap, 0)), room, size_t{8000}});
    if (gap <= 8000 && fill > 0) {
      samples_.resize(std::min(maxSamples_, samples_.size() + fill), 0);
    }
  } else {
    first_ = arrival;
  }
  started_ = true;
  nextTimestamp_ = timestamp + static_cast<uint32_t>(samples.size());
  const size_t room = maxSamples_ - std::min(maxSamples_, samples_.size());
  const auto take = samples.first(std::min(room, samples.size()));
  samples_.insert(samples_.end(), take.begin(), take.end());
  if (!take.empty() && audio::rms(take) >= kSilenceRms) {
    lastSound_ = samples_.size();
  }
}

void VoicemailRecorder::trimSilence(size_t keep) {
  const size_t end = std::min(samples_.size(), lastSound_ + keep);
  samples_.resize(end);
}

}  // namespace evosip::app
