#pragma once
// Service numbers of the dialplan: a number routes to the app set with X-Evosip-* headers that
// tell the app what to run (DESIGN.md: profile-less, header-driven applications).
//
// Configuration `router.dialplan."100": {action: Playback, sound: welcome, sound_locale: en}`
// gives `X-Evosip-Action: Playback`, `X-Evosip-Sound: welcome`, `X-Evosip-SoundLocale: en`:
// every key but `action`, `media` and `public` becomes X-Evosip-<CamelCase of the key>. The
// value `from-user` is replaced by the caller's From user, `to-user` by the To user.
//
// Who may call a number: an authenticated subscriber of the domain, unless the entry says
// `public: true` (then anyone, unauthenticated; `from-user` is then only the caller's claim).
// An entry with a `mailbox` deposits into that mailbox: the router lets the call through only
// when the resolved mailbox is a safe name (isSafeMailbox) of an existing subscriber.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evosip::router {

// When the router anchors a call's media in a relay (`router.media.mode`, or a service
// number's `media` key): never, only when the caller is behind a NAT, or always.
enum class MediaMode { kNever, kNat, kAlways };
std::optional<MediaMode> mediaModeFromName(std::string_view name);  // "never", "nat", "always"

struct ServiceNumber {
  std::string number;
  std::string action;
  std::vector<std::pair<std::string, std::string>> params;  // header suffix, value
  std::optional<MediaMode> media;                           // unset: router.media.mode
  bool isPublic = false;  // reachable without authentication (`public: true`)
};

// A mailbox name the router lets through to the app: 1..64 characters of [A-Za-z0-9._+@-],
// not starting with '.', without "..": never a path, never a control character.
bool isSafeMailbox(std::string_view mailbox);

// "sound_locale" -> "SoundLocale", "mailbox" -> "Mailbox".
std::string headerSuffix(std::string_view key);

class Dialplan {
 public:
  void add(ServiceNumber number) { numbers_.push_back(std::move(number)); }
  const ServiceNumber* find(std::string_view user) const;
  size_t size() const { return numbers_.size(); }
  const std::vector<ServiceNumber>& numbers() const { return numbers_; }
  // The header lines ("X-Evosip-Action: ...\r\n...") for a call from fromUser to toUser.
  static std::string headerLines(const ServiceNumber& number, std::string_view fromUser,
                                 std::string_view toUser = {});
  // The mailbox a call deposits into (the `mailbox` key, from-user / to-user resolved);
  // nullopt when the entry names none.
  static std::optional<std::string> mailboxOf(const ServiceNumber& number,
                                              std::string_view fromUser, std::string_view toUser);

 private:
  std::vector<ServiceNumber> numbers_;
};

}  // namespace evosip::router
