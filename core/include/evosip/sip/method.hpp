#pragma once

#include <cstdint>
#include <string_view>

namespace evosip::sip {

enum class Method : uint8_t {
  kOther,
  kInvite,
  kAck,
  kBye,
  kCancel,
  kRegister,
  kOptions,
  kInfo,
  kUpdate,
  kPrack,
  kSubscribe,
  kNotify,
  kRefer,
  kMessage,
  kPublish,
};

// Methods are case-sensitive (RFC 3261 7.1): "invite" is kOther.
Method methodFromName(std::string_view name) noexcept;
std::string_view methodName(Method m) noexcept;  // "" for kOther

// Requests that create a dialog (RFC 3261 12.1, RFC 6665): INVITE, SUBSCRIBE, REFER.
constexpr bool createsDialog(Method m) noexcept {
  return m == Method::kInvite || m == Method::kSubscribe || m == Method::kRefer;
}

}  // namespace evosip::sip
