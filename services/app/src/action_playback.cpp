// Playback: answers (or, with X-Evosip-Option: noanswer, sends 183 and plays as early media),
// plays X-Evosip-Sound, then hangs up: a BYE, or the noanswer final status.
#include <evosip/app/call_action.hpp>

namespace evosip::app {

namespace {

class Playback final : public CallAction {
 public:
  explicit Playback(const CallRequest& request) : early_(request.hasOption("noanswer")) {}

  void load(Call& call, CallControl& control) override {
    control.loadPrompt(call, call.request.paramOr("Sound", ""), &sound_, true);
  }
  bool earlyMedia(const Call&) const override { return early_; }
  void start(Call& call, CallControl& control) override { control.play(call, sound_); }
  void onPromptDone(Call& call, CallControl& control) override {
    if (early_) {
      const auto st = readFinalStatus(call.request, 480);
      control.finish(call, st.code, st.reason, {}, EndReason::kPlayed);
    } else {
      control.hangup(call, 480, "Played");
    }
  }
  bool needsInput() const override { return false; }

 private:
  bool early_;
  PromptPtr sound_;
};

}  // namespace

std::unique_ptr<CallAction> makePlayback(const CallRequest& request, ActionRefusal& refusal) {
  if (request.paramOr("Sound", "").empty()) {
    refusal = {400, "Missing X-Evosip-Sound"};
    return nullptr;
  }
  return std::make_unique<Playback>(request);
}

}  // namespace evosip::app
