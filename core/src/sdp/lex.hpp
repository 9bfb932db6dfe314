#pragma once
// Small lexical helpers shared by the SDP parser, the attribute parsers and the rewriter.

#include <cstdint>
#include <optional>
#include <string_view>

namespace evosip::sdp::lex {

inline bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
inline bool isSpace(char c) {
  return c == ' ' || c == '\t';
}

// Space-separated tokens of a line value; runs of spaces/tabs count as one separator.
class Tokens {
 public:
  explicit Tokens(std::string_view s) : s_(s) {}

  std::optional<std::string_view> next() {
    while (pos_ < s_.size() && isSpace(s_[pos_])) {
      ++pos_;
    }
    if (pos_ >= s_.size()) {
      return std::nullopt;
    }
    const size_t start = pos_;
    while (pos_ < s_.size() && !isSpace(s_[pos_])) {
      ++pos_;
    }
    return s_.substr(start, pos_ - start);
  }

  // What is left after the last token returned, leading spaces skipped.
  std::string_view rest() {
    while (pos_ < s_.size() && isSpace(s_[pos_])) {
      ++pos_;
    }
    return s_.substr(pos_);
  }

  bool atEnd() { return rest().empty(); }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

// Decimal digits only (no sign, no spaces), at most `max`.
inline std::optional<uint64_t> parseUnsigned(std::string_view s, uint64_t max) {
  if (s.empty() || s.size() > 20) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (!isDigit(c)) {
      return std::nullopt;
    }
    const auto d = static_cast<uint64_t>(c - '0');
    if (v > (max - d) / 10) {
      return std::nullopt;
    }
    v = v * 10 + d;
  }
  return v;
}

inline std::optional<uint16_t> parsePort(std::string_view s) {
  auto v = parseUnsigned(s, 65535);
  if (!v) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(*v);
}

// "name:value" / "name" of an a= line.
struct SplitAttribute {
  std::string_view name;
  std::string_view value;
  bool hasValue = false;
};

inline SplitAttribute splitAttribute(std::string_view v) {
  const size_t colon = v.find(':');
  if (colon == std::string_view::npos) {
    return {v, {}, false};
  }
  return {v.substr(0, colon), v.substr(colon + 1), true};
}

}  // namespace evosip::sdp::lex
