#pragma once
// Small string helpers over std::string_view; no allocation.

#include <cstdint>
#include <optional>
#include <string_view>

namespace evosip {

constexpr char asciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) {
      return false;
    }
  }
  return true;
}

constexpr bool istartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

constexpr bool isLws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

constexpr std::string_view trim(std::string_view s) {
  while (!s.empty() && isLws(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && isLws(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// Parses a decimal number that must fill the whole view and fit in max.
constexpr std::optional<uint64_t> parseDecimal(std::string_view s, uint64_t max = UINT64_MAX) {
  if (s.empty() || s.size() > 20) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (max - d) / 10) {
      return std::nullopt;
    }
    v = v * 10 + d;
  }
  return v;
}

}  // namespace evosip
