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

std::string Dialplan::headerLines(const ServiceNumber& number, std::string_view fromUser) {
  std::string out = "X-Evosip-Action: " + number.action + "\r\n";
  for (const auto& [suffix, value] : number.params) {
    out.append("X-Evosip-").append(suffix).append(": ");
    out.append(value == "from-user" ? std::string(fromUser) : value).append("\r\n");
  }
  return out;
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
