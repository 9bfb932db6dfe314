#pragma once
// Voicemail messages on disk: <voicemail_dir>/<mailbox>/<id>.wav (8 kHz mono 16-bit PCM,
// written with audio::WavWriter) and <id>.json (the metadata below). The JSON file is written
// last, through a temporary name and rename(), so a listing never sees half a message.
//
// The recorder collects a call's audio in memory (at most app.voicemail_max_s: 1.9 MB for two
// minutes) on the call's worker; storing it is blocking file work for the blocking pool.

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include <evosip/base/result.hpp>

namespace evosip::app {

// Mailbox names become a directory, so a name is checked before any file is made:
// [A-Za-z0-9._+@-]{1,64}, not starting with '.', no ".." anywhere (no '/', no control
// characters, no path that leaves app.voicemail_dir).
bool isValidMailbox(std::string_view mailbox);

// What the stored messages take: in one mailbox, or in all of them.
struct VoicemailUsage {
  uint64_t messages = 0;  // <id>.json files
  uint64_t bytes = 0;     // sizes of every file of the mailbox(es)
};

// Limits on what callers can leave (app.voicemail_max_*): per mailbox and for the whole
// app.voicemail_dir. A message takes 16,000 bytes per second of audio (8 kHz, 16 bit), so the
// byte limits are the seconds limits too; app.voicemail_max_s bounds one message.
struct VoicemailQuota {
  uint64_t maxMessages = 100;              // per mailbox
  uint64_t maxBytes = 20'000'000;          // per mailbox (about 20 minutes)
  uint64_t maxTotalMessages = 10'000;      // all mailboxes
  uint64_t maxTotalBytes = 1'000'000'000;  // all mailboxes
};

// Bytes a message of `samples` samples takes on disk (WAV header and metadata included).
uint64_t voicemailMessageBytes(uint64_t samples);
// The longest message (in samples, at most maxSamples) that still fits both the mailbox's and
// the store's quota; 0 when the mailbox or the store is full (less than a second of room).
uint64_t voicemailRoom(const VoicemailQuota& quota, VoicemailUsage mailbox, VoicemailUsage total,
                       uint64_t maxSamples);

// Counts one mailbox (absent: empty) or every mailbox of `dir`. Blocking file work.
Result<VoicemailUsage> mailboxUsage(const std::string& dir, const std::string& mailbox);
Result<VoicemailUsage> voicemailUsage(const std::string& dir);

struct VoicemailMessage {
  std::string id;  // "20250101T120000Z-1a2b3c4d": sorts by time
  std::string mailbox;
  std::string caller;  // the From user (or the whole From URI when it has no user)
  std::string callerUri;
  std::string callId;
  std::string start;  // ISO 8601 UTC, "2025-01-01T12:00:00Z"
  int64_t startUnix = 0;
  double durationS = 0;  // samples / 8000
  uint64_t samples = 0;
  uint32_t sampleRate = 8000;
  std::string file;  // "<id>.wav" (relative to the mailbox directory)
};

std::string isoTime(std::chrono::system_clock::time_point t);
std::string newMessageId(std::chrono::system_clock::time_point t, uint32_t random);

boost::json::object toJson(const VoicemailMessage& m);
Result<VoicemailMessage> voicemailFromJson(std::string_view text);

// Writes <dir>/<mailbox>/<id>.wav and .json (creating the mailbox directory).
Result<void> storeVoicemail(const std::string& dir, const VoicemailMessage& m,
                            std::span<const int16_t> samples);
// The messages of a mailbox, oldest first (an absent mailbox has none).
Result<std::vector<VoicemailMessage>> listMailbox(const std::string& dir,
                                                  const std::string& mailbox);

// The audio of one recording, built from RTP packets in arrival order: what was received, and
// nothing longer. A gap in timestamps up to one second is filled with silence (lost packets keep
// the timing), but never beyond the time that really passed since the first packet arrived: a
// sender whose timestamps run ahead of the clock (or leap by a second a packet) cannot make a
// message longer than the call; larger jumps (a sender restart) are not filled. The message ends
// with the last packet received. Tracks the time of the last frame that was not silence.
class VoicemailRecorder {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // rms at or above this (about -40 dBFS) counts as sound, not silence.
  static constexpr double kSilenceRms = 300;

  explicit VoicemailRecorder(size_t maxSamples) : maxSamples_(maxSamples) {}

  // Adds one packet's decoded samples, sent at RTP timestamp `timestamp`, received at `arrival`.
  void onAudio(uint32_t timestamp, std::span<const int16_t> samples, TimePoint arrival);

  const std::vector<int16_t>& samples() const { return samples_; }
  std::vector<int16_t> take() { return std::move(samples_); }
  bool full() const { return samples_.size() >= maxSamples_; }
  // Samples recorded since the last one that was sound (all of them when none was).
  size_t trailingSilence() const { return samples_.size() - lastSound_; }
  // Cuts the trailing silence down to `keep` samples (after a silence timeout).
  void trimSilence(size_t keep);

 private:
  size_t maxSamples_;
  std::vector<int16_t> samples_;
  size_t lastSound_ = 0;
  bool started_ = false;
  uint32_t nextTimestamp_ = 0;
  TimePoint first_{};  // arrival of the first packet
};

}  // namespace evosip::app
