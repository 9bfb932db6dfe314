// Voicemail: checks the mailbox's room before any media (a full one is refused 486), answers,
// plays the greeting and a beep, records the caller's audio until the BYE, the maximum length,
// the mailbox's room, silence or the RTP timeout, then stores the message on the blocking pool.
#include <algorithm>
#include <cstdlib>

#include <boost/asio/post.hpp>

#include <evosip/app/app_core.hpp>
#include <evosip/app/call_action.hpp>
#include <evosip/app/voicemail.hpp>
#include <evosip/audio/g711.hpp>
#include <evosip/log/log.hpp>

namespace evosip::app {

namespace {

constexpr uint64_t kRate = 8000;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("app");
  return l;
}

class Voicemail final : public CallAction {
 public:
  void load(Call& call, CallControl& control) override {
    control.loadPrompt(call, call.request.paramOr("Sound", "voicemail-greeting"), &greeting_,
                       false);
    control.loadPrompt(call, "beep", &beep_, false);
    checkMailbox(call, control);
  }
  bool ready(Call& call, CallControl& control) override;
  bool earlyMedia(const Call&) const override { return false; }
  void start(Call& call, CallControl& control) override {
    PromptPtr beep = beep_ ? beep_ : makeBeep();
    if (greeting_) {
      call.playout.queue.push_back(beep);
      control.play(call, greeting_);
    } else {
      control.play(call, beep);
    }
  }
  void onPromptDone(Call& call, CallControl& control) override;
  void onAudio(Call& call, CallControl& control, const rtp::RtpPacket& packet) override;
  bool checkLimits(Call& call, CallControl& control) override;
  bool needsInput() const override { return recorder_ != nullptr; }
  void onEnd(Call& call, CallControl& control, bool now) override;

 private:
  // How long a message the mailbox still has room for (blocking pool).
  void checkMailbox(Call& call, CallControl& control);

  PromptPtr greeting_, beep_;
  uint64_t room_ = 0;  // samples the mailbox has room for (0: full)
  std::unique_ptr<VoicemailRecorder> recorder_;
  std::chrono::system_clock::time_point recordStart_;
};

void Voicemail::checkMailbox(Call& call, CallControl& control) {
  const uint64_t maxSamples =
      static_cast<uint64_t>(control.settings().voicemailMax.count()) * kRate;
  AppShared* shared = control.shared();
  // On the blocking thread nothing of the core or the call is touched; the room is written on
  // the worker, while the call lives.
  control.loadBlocking(call, [this, shared, maxSamples, dir = control.settings().voicemailDir,
                              quota = control.settings().voicemailQuota,
                              mailbox = call.request.paramOr("Mailbox", "")] {
    auto box = mailboxUsage(dir, mailbox);
    const VoicemailUsage total{shared->voicemailMessages.load(), shared->voicemailBytes.load()};
    const uint64_t room = box ? voicemailRoom(quota, *box, total, maxSamples) : 0;
    return std::function<void()>([this, room] { room_ = room; });
  });
}

bool Voicemail::ready(Call& call, CallControl& control) {
  if (room_ > 0) {
    return true;
  }
  // Refused before any media: nothing is recorded for a full mailbox (or a full store).
  logger()->info("call {}: mailbox {} is full", call.dialog.callId,
                 call.request.paramOr("Mailbox", ""));
  AppCounters::bump(control.callCounters().mailboxFull);
  AppCounters::bump(control.callCounters().rejected);
  control.finish(call, 486, "Mailbox Full", {}, EndReason::kMailboxFull);
  return false;
}

// The greeting and the beep are over: the recording starts.
void Voicemail::onPromptDone(Call& call, CallControl& control) {
  if (recorder_) {
    return;
  }
  const uint64_t max = uint64_t(control.settings().voicemailMax.count()) * kRate;
  recorder_ = std::make_unique<VoicemailRecorder>(static_cast<size_t>(std::min(room_, max)));
  recordStart_ = std::chrono::system_clock::now();
  call.lastRtp = control.now();
}

void Voicemail::onAudio(Call& call, CallControl&, const rtp::RtpPacket& packet) {
  if (!recorder_) {
    return;
  }
  std::array<int16_t, 1024> pcm;
  const size_t n = std::min(packet.payload.size(), pcm.size());
  audio::decodeG711(call.media.negotiated.law, packet.payload.first(n),
                    std::span<int16_t>(pcm.data(), n));
  recorder_->onAudio(packet.header.timestamp, std::span<const int16_t>(pcm.data(), n),
                     call.lastRtp);
}

bool Voicemail::checkLimits(Call& call, CallControl& control) {
  if (!recorder_) {
    return false;
  }
  if (recorder_->full()) {
    control.hangup(call, 480, "Recording Full");
    return true;
  }
  const size_t silenceLimit =
      static_cast<size_t>(control.settings().voicemailSilence.count()) * kRate;
  if (silenceLimit > 0 && recorder_->trailingSilence() >= silenceLimit) {
    recorder_->trimSilence(kRate / 2);
    control.hangup(call, 480, "Silence");
    return true;
  }
  return false;
}

// Stores what was recorded; the quotas are checked again with the message's length: messages
// deposited meanwhile (other calls, other instances on the same volume) may have filled the
// mailbox. The outcome is counted on the worker.
void Voicemail::onEnd(Call& call, CallControl& control, bool now) {
  if (!recorder_ || recorder_->samples().empty()) {
    return;
  }
  VoicemailMessage m;
  m.id = newMessageId(recordStart_, ::arc4random());
  m.mailbox = call.request.paramOr("Mailbox", "");
  m.caller = call.dialog.callerUser.empty() ? call.dialog.callerUri : call.dialog.callerUser;
  m.callerUri = call.dialog.callerUri;
  m.callId = call.dialog.callId;
  m.start = isoTime(recordStart_);
  m.startUnix =
      std::chrono::duration_cast<std::chrono::seconds>(recordStart_.time_since_epoch()).count();
  auto samples = recorder_->take();
  m.samples = samples.size();
  m.durationS = static_cast<double>(samples.size()) / double(kRate);
  m.file = m.id + ".wav";
  AppCounters* counters = &control.callCounters();
  AppShared* shared = control.shared();
  control.blocking(
      [dir = control.settings().voicemailDir, quota = control.settings().voicemailQuota,
       m = std::move(m), samples = std::move(samples), counters, shared] {
        auto box = mailboxUsage(dir, m.mailbox);
        const VoicemailUsage total{shared->voicemailMessages.load(), shared->voicemailBytes.load()};
        const bool fits =
            box && voicemailRoom(quota, *box, total, samples.size()) == samples.size();
        auto r = fits ? storeVoicemail(dir, m, samples) : Result<void>{};
        if (fits && r) {
          shared->voicemailMessages.fetch_add(1);
          shared->voicemailBytes.fetch_add(voicemailMessageBytes(samples.size()));
        }
        return std::function<void()>([counters, fits, r, callId = m.callId, id = m.id,
                                      mailbox = m.mailbox, durationS = m.durationS] {
          if (!fits) {
            counters->recordingsOverQuota.fetch_add(1, std::memory_order_relaxed);
            logger()->warn("call {}: voicemail for {} not stored: over quota", callId, mailbox);
          } else if (r) {
            counters->recordingsWritten.fetch_add(1, std::memory_order_relaxed);
            logger()->info("call {}: voicemail {} for {} ({:.1f} s)", callId, id, mailbox,
                           durationS);
          } else {
            counters->recordingsFailed.fetch_add(1, std::memory_order_relaxed);
            logger()->error("call {}: voicemail not stored: {}", callId, r.error().message);
          }
        });
      },
      now);
}

}  // namespace

std::unique_ptr<CallAction> makeVoicemail(const CallRequest& request, ActionRefusal& refusal) {
  auto box = request.param("Mailbox");
  if (!box || !isValidMailbox(*box)) {
    refusal = {400, "Invalid X-Evosip-Mailbox"};
    return nullptr;
  }
  return std::make_unique<Voicemail>();
}

}  // namespace evosip::app
