#pragma once
// The application a call runs (X-Evosip-Action): one state machine per call, driven by the
// core's events - loaded, started, a prompt ended, a digit, audio, a timer - and acting on the
// call only through CallControl (play, send, hang up, blocking work). Playback, Voicemail, Echo
// and Menu each live in their own file (action_*.cpp); Hangup needs no call.

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <evosip/app/call.hpp>
#include <evosip/rtp/packet.hpp>

namespace evosip::app {

struct AppCounters;
struct AppSettings;
struct AppShared;

// What an application may do with its call; AppCore implements it.
class CallControl {
 public:
  using TimePoint = runtime::Clock::time_point;
  virtual ~CallControl() = default;

  virtual TimePoint now() const = 0;
  virtual const AppSettings& settings() const = 0;
  virtual AppCounters& callCounters() = 0;
  virtual AppShared* shared() = 0;

  // Loading, before the call starts: a prompt of the call's sound set into `into` (the
  // action's; a missing required one ends the call with 404), and blocking work whose result
  // (the function it returns) runs on the worker while the call lives. The call starts once
  // all of it is in.
  virtual void loadPrompt(Call& call, std::string sound, PromptPtr* into, bool required) = 0;
  virtual void loadBlocking(Call& call, std::function<std::function<void()>()> work) = 0;
  // Blocking work (on the calling thread when `now`: at shutdown) whose result runs on the
  // worker if the core still exists.
  virtual void blocking(std::function<std::function<void()>()> work, bool now) = 0;

  // Plays a prompt (then call.playout.queue); done: CallAction::onPromptDone.
  virtual void play(Call& call, PromptPtr prompt) = 0;
  // One frame to the peer now, outside the schedule.
  virtual void sendNow(Call& call, std::span<const uint8_t> payload) = 0;
  // Ends by what the state allows: `earlyCode` before the answer, a BYE after it.
  virtual void hangup(Call& call, int earlyCode, std::string_view earlyReason) = 0;
  // A final response to the unanswered INVITE, then the end.
  virtual void finish(Call& call, int code, std::string_view reason, std::string_view headers,
                      EndReason why) = 0;
};

class CallAction {
 public:
  using TimePoint = runtime::Clock::time_point;
  virtual ~CallAction() = default;

  // What the action needs before it starts (prompts, blocking checks), through `control`.
  virtual void load(Call& call, CallControl& control) = 0;
  // Everything loaded: a refusal before any media (the call then ends), else true.
  virtual bool ready(Call& call, CallControl& control) {
    (void)call;
    (void)control;
    return true;
  }
  // 183 and early media instead of 200.
  virtual bool earlyMedia(const Call& call) const = 0;
  // Answered (or 183 sent): the media starts.
  virtual void start(Call& call, CallControl& control) = 0;
  // The prompt and its queue have been played to the last packet.
  virtual void onPromptDone(Call& call, CallControl& control) {
    (void)call;
    (void)control;
  }
  virtual void onDigit(Call& call, CallControl& control, char digit) {
    (void)call;
    (void)control;
    (void)digit;
  }
  // A packet of the negotiated codec from the peer.
  virtual void onAudio(Call& call, CallControl& control, const rtp::RtpPacket& packet) {
    (void)call;
    (void)control;
    (void)packet;
  }
  // The application's limits, checked before the RTP timeouts: true when it hung up.
  virtual bool checkLimits(Call& call, CallControl& control) {
    (void)call;
    (void)control;
    return false;
  }
  // The application's timers, after the RTP timeouts.
  virtual void onTimer(Call& call, CallControl& control, TimePoint now) {
    (void)call;
    (void)control;
    (void)now;
  }
  // Whether the RTP timeout applies now (the application waits for the peer's audio).
  virtual bool needsInput() const = 0;
  // The call ended (`now`: shutdown, store at once).
  virtual void onEnd(Call& call, CallControl& control, bool now) {
    (void)call;
    (void)control;
    (void)now;
  }
};

// The action an INVITE asks for, or the refusal of its parameters (before any media).
struct ActionRefusal {
  int code = 400;
  std::string reason;
};
std::unique_ptr<CallAction> makeCallAction(const CallRequest& request, ActionRefusal& refusal);

// The four applications.
std::unique_ptr<CallAction> makePlayback(const CallRequest& request, ActionRefusal& refusal);
std::unique_ptr<CallAction> makeVoicemail(const CallRequest& request, ActionRefusal& refusal);
std::unique_ptr<CallAction> makeEcho();
std::unique_ptr<CallAction> makeMenu(const CallRequest& request, ActionRefusal& refusal);

}  // namespace evosip::app
