#include <evosip/router/dialplan.hpp>

namespace evosip::router {

std::string headerSuffix(std::string_view key) {
  std::string out;
  bool upper = true;
  for (char c : key) {
    if (c == '_' || c == '-') {
      upper = true;
      continue;
    }
    out.push_back(upper && c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c);
    upper = false;
  }
  return out;
}

const ServiceNumber* Dialplan::find(std::string_view user) const {
  for (const auto& n : numbers_) {
    if (n.number == user) {
      return &n;
    }
  }
  return nullptr;
}

namespace {

constexpr size_t kMaxMailboxSize = 64;

std::string_view resolved(std::string_view value, std::string_view fromUser,
                          std::string_view toUser) {
  if (value == "from-user") {
    return fromUser;
  }
  if (value == "to-user") {
    return toUser;
  }
  return value;
}

bool isMailboxChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '+' || c == '@' || c == '-';
}

}  // namespace

bool isSafeMailbox(std::string_view mailbox) {
  if (mailbox.empty() || mailbox.size() > kMaxMailboxSize || mailbox.front() == '.' ||
      mailbox.find("..") != std::string_view::npos) {
    return false;
  }
  for (char c : mailbox) {
    if (!isMailboxChar(c)) {
      return false;
    }
  }
  return true;
}

std::string Dialplan::headerLines(const ServiceNumber& number, std::string_view fromUser,
                                  std::string_view toUser) {
  std::string out = "X-Evosip-Action: " + number.action + "\r\n";
  for (const auto& [suffix, value] : number.params) {
    out.append("X-Evosip-").append(suffix).append(": ");
    out.append(resolved(value, fromUser, toUser)).append("\r\n");
  }
  return out;
}

std::optional<std::string> Dialplan::mailboxOf(const ServiceNumber& number,
                                               std::string_view fromUser, std::string_view toUser) {
  for (const auto& [suffix, value] : number.params) {
    if (suffix == "Mailbox") {
      return std::string(resolved(value, fromUser, toUser));
    }
  }
  return std::nullopt;
}

std::optional<MediaMode> mediaModeFromName(std::string_view name) {
  if (name == "never") {
    return MediaMode::kNever;
  }
  if (name == "nat") {
    return MediaMode::kNat;
  }
  if (name == "always") {
    return MediaMode::kAlways;
  }
  return std::nullopt;
}

}  // namespace evosip::router
