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
  if (mailbox.empty() || mailbox.size() > 64 || mailbox.front() == '.') {
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

void VoicemailRecorder::onAudio(uint32_t timestamp, std::span<const int16_t> samples) {
  if (full()) {
    return;
  }
  if (started_) {
    const auto gap = static_cast<int32_t>(timestamp - nextTimestamp_);
    if (gap < 0) {
      return;  // late or duplicate: its place has passed
    }
    if (gap > 0 && gap <= 8000) {
      samples_.resize(std::min(maxSamples_, samples_.size() + static_cast<size_t>(gap)), 0);
    }
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
