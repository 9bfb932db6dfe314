#pragma once
// Service numbers of the dialplan: a number routes to the app set with X-Evosip-* headers that
// tell the app what to run (DESIGN.md: profile-less, header-driven applications).
//
// Configuration `router.dialplan."100": {action: Playback, sound: welcome, sound_locale: en}`
// gives `X-Evosip-Action: Playback`, `X-Evosip-Sound: welcome`, `X-Evosip-SoundLocale: en`:
// every key but `action` becomes X-Evosip-<CamelCase of the key>. The value `from-user` is
// replaced by the caller's From user.

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
};

// "sound_locale" -> "SoundLocale", "mailbox" -> "Mailbox".
std::string headerSuffix(std::string_view key);

class Dialplan {
 public:
  void add(ServiceNumber number) { numbers_.push_back(std::move(number)); }
  const ServiceNumber* find(std::string_view user) const;
  size_t size() const { return numbers_.size(); }
  // The header lines ("X-Evosip-Action: ...\r\n...") for a call from fromUser.
  static std::string headerLines(const ServiceNumber& number, std::string_view fromUser);

 private:
  std::vector<ServiceNumber> numbers_;
};

}  // namespace evosip::router
