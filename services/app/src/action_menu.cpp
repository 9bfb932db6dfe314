// Menu: 183 and the prompt as early media; RFC 4733 digits are collected (a digit interrupts a
// prompt). The digits of a target give 302 with that Contact; a wrong digit plays the error
// prompt and the prompt again, no digit within the timeout the prompt again; after the retries
// the call ends with X-Evosip-Status. A key that starts a longer one waits the inter-digit time.
#include <fmt/format.h>

#include <evosip/app/app_core.hpp>
#include <evosip/app/call_action.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/log/log.hpp>

namespace evosip::app {

namespace {

constexpr int kDefaultTimeoutS = 5;
constexpr int kDefaultRetries = 2;

class Menu final : public CallAction {
 public:
  Menu(MenuTargets targets, int retries, std::chrono::seconds timeout)
      : targets_(std::move(targets)), retries_(retries), timeout_(timeout) {}

  void load(Call& call, CallControl& control) override {
    control.loadPrompt(call, call.request.paramOr("Sound", "menu"), &prompt_, true);
    control.loadPrompt(call, call.request.paramOr("InvalidSound", "invalid"), &invalid_, false);
  }
  bool earlyMedia(const Call&) const override { return true; }
  void start(Call& call, CallControl& control) override {
    phase_ = Phase::kPrompt;
    control.play(call, prompt_);
  }
  void onPromptDone(Call& call, CallControl& control) override {
    if (phase_ == Phase::kPrompt) {
      phase_ = Phase::kWait;
      since_ = control.now();
      digits_.clear();
    } else if (phase_ == Phase::kInvalid) {
      phase_ = Phase::kPrompt;
      control.play(call, prompt_);
    }
  }
  void onDigit(Call& call, CallControl& control, char digit) override;
  void onTimer(Call& call, CallControl& control, TimePoint now) override;
  bool needsInput() const override { return phase_ == Phase::kPrompt || phase_ == Phase::kWait; }

 private:
  enum class Phase : uint8_t {
    kPrompt,   // the prompt (a digit interrupts it)
    kWait,     // waiting for digits
    kInvalid,  // the error prompt
  };
  void invalid(Call& call, CallControl& control, bool timeout);
  void redirect(Call& call, CallControl& control, const std::string& target);

  MenuTargets targets_;
  int retries_;
  std::chrono::seconds timeout_;
  PromptPtr prompt_, invalid_;
  Phase phase_ = Phase::kPrompt;
  int attempts_ = 0;
  std::string digits_;
  std::string pendingTarget_;
  TimePoint since_{};
};

void Menu::onDigit(Call& call, CallControl& control, char digit) {
  call.playout.playing.reset();  // a digit interrupts the prompt (or the error prompt)
  call.playout.queue.clear();
  phase_ = Phase::kWait;
  since_ = control.now();
  digits_.push_back(digit);
  pendingTarget_.clear();
  const auto r = matchDigits(targets_, digits_);
  switch (r.match) {
    case DigitMatch::kTarget:
      redirect(call, control, r.target);
      return;
    case DigitMatch::kPrefix:
      pendingTarget_ = r.target;
      return;
    case DigitMatch::kNeedMore:
      return;
    case DigitMatch::kInvalid:
      invalid(call, control, false);
      return;
  }
}

// The inter-digit timer after a digit, the menu timeout without one.
void Menu::onTimer(Call& call, CallControl& control, TimePoint now) {
  if (phase_ != Phase::kWait) {
    return;
  }
  const auto since = now - since_;
  if (!digits_.empty() && since >= control.settings().interDigit) {
    if (!pendingTarget_.empty()) {
      redirect(call, control, pendingTarget_);
    } else {
      invalid(call, control, false);
    }
  } else if (digits_.empty() && since >= timeout_) {
    invalid(call, control, true);
  }
}

void Menu::invalid(Call& call, CallControl& control, bool timeout) {
  digits_.clear();
  pendingTarget_.clear();
  if (++attempts_ > retries_) {
    const auto st = readFinalStatus(call.request, 480);
    control.hangup(call, st.code, timeout ? "No Selection" : "Invalid Selection");
    return;
  }
  if (!timeout && invalid_) {
    phase_ = Phase::kInvalid;
    control.play(call, invalid_);
  } else {
    phase_ = Phase::kPrompt;
    control.play(call, prompt_);
  }
}

void Menu::redirect(Call& call, CallControl& control, const std::string& target) {
  AppCounters::bump(control.callCounters().redirects);
  log::get("app")->info("call {}: menu digits {} -> {}", call.dialog.callId, digits_, target);
  control.finish(call, 302, "Moved Temporarily", "Contact: <" + target + ">\r\n",
                 EndReason::kRedirected);
}

}  // namespace

std::unique_ptr<CallAction> makeMenu(const CallRequest& request, ActionRefusal& refusal) {
  auto targets = parseTargets(request.paramOr("Targets", ""));
  if (!targets || targets->entries.empty()) {
    refusal = {500, targets ? "No X-Evosip-Targets" : "Invalid X-Evosip-Targets"};
    return nullptr;
  }
  int retries = kDefaultRetries;
  if (auto r = request.param("Retries")) {
    retries = static_cast<int>(parseDecimal(trim(*r), 9).value_or(kDefaultRetries));
  }
  std::chrono::seconds timeout{kDefaultTimeoutS};
  if (auto t = request.param("Timeout")) {
    timeout = std::chrono::seconds(parseDecimal(trim(*t), 600).value_or(kDefaultTimeoutS));
  }
  return std::make_unique<Menu>(std::move(*targets), retries, timeout);
}

}  // namespace evosip::app
