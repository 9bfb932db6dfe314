#pragma once
// What an INVITE from the platform asks the app to run (DESIGN.md "app": profile-less,
// header-driven). The router's dialplan turns `{action: Playback, sound: welcome}` into
// `X-Evosip-Action: Playback` and `X-Evosip-Sound: welcome`: every parameter is one
// `X-Evosip-<CamelCaseKey>` header. Nothing else configures a call.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <evosip/base/result.hpp>
#include <evosip/sip/message.hpp>

namespace evosip::app {

enum class Action { kPlayback, kVoicemail, kEcho, kMenu, kHangup, kUnknown, kMissing };

// Case-insensitive: "Playback", "playback" -> kPlayback; anything else kUnknown, "" kMissing.
Action actionFromName(std::string_view name);
std::string_view actionName(Action a);  // "Playback", ..., "unknown", "missing"

// True for the platform's private headers ("X-Evosip-*", any case): never sent out.
bool isPlatformHeader(std::string_view name);

struct CallRequest {
  Action action = Action::kMissing;
  std::string actionText;  // as received (for the 501 reason)
  // Header suffix after "X-Evosip-" (as written) and value, in message order.
  std::vector<std::pair<std::string, std::string>> params;

  // The value of X-Evosip-<suffix> (suffix compared case-insensitively), first one wins.
  std::optional<std::string_view> param(std::string_view suffix) const;
  std::string paramOr(std::string_view suffix, std::string_view def) const;
  // X-Evosip-Option is a comma-separated list of flags ("noanswer"); case-insensitive.
  bool hasOption(std::string_view option) const;
};

CallRequest readCallRequest(const sip::Message& invite);

// A final status for Hangup (X-Evosip-Status / X-Evosip-Reason) and for the end of a noanswer
// Playback. Status must be 400..699 (3xx needs a Contact, 2xx is not a hang-up); the reason is
// printable ASCII without CR/LF, at most 100 characters, else the default phrase of the code.
struct FinalStatus {
  int code = 480;
  std::string reason;
};
FinalStatus readFinalStatus(const CallRequest& request, int defaultCode);

// A reason phrase made safe for a status line: printable ASCII only, at most 100 characters.
std::string safeReason(std::string_view text);

// Menu targets, X-Evosip-Targets: "1=sip:100@evosip.local,2=sip:101@evosip.local". Keys are
// DTMF strings (0-9 * # A-D, one or more digits), values SIP/SIPS/TEL URIs, optionally in <>.
// Entries are separated by commas; blanks around keys and values are ignored.
struct MenuTargets {
  std::vector<std::pair<std::string, std::string>> entries;  // digits, URI
};
Result<MenuTargets> parseTargets(std::string_view text);

// Where the digits collected so far lead.
enum class DigitMatch {
  kTarget,    // the digits name a target and no longer key starts with them
  kPrefix,    // the digits name a target, but a longer key starts with them: wait a moment
  kNeedMore,  // a longer key starts with the digits, none equals them
  kInvalid,   // no key equals or starts with the digits
};
struct DigitResult {
  DigitMatch match = DigitMatch::kInvalid;
  std::string target;  // kTarget and kPrefix
};
DigitResult matchDigits(const MenuTargets& targets, std::string_view digits);

}  // namespace evosip::app
