#pragma once
// Character classes and small scanners shared by the SIP value parsers (RFC 3261 25.1).
// Private to evosip_sip. Everything works on string_views and never reads out of range.

#include <cstdint>
#include <optional>
#include <string_view>

#include <evosip/base/byte_scan.hpp>
#include <evosip/sip/uri.hpp>

namespace evosip::sip::lex {

constexpr bool isAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
constexpr bool isAlnum(char c) {
  return isAlpha(c) || isDigit(c);
}
constexpr bool isHex(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
constexpr bool isWsp(char c) {
  return c == ' ' || c == '\t';
}
// Linear white space inside a header value: folded lines keep their CRLF in the view.
constexpr bool isLwsChar(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
constexpr bool isTokenCharSlow(char c) {
  if (isAlnum(c)) {
    return true;
  }
  switch (c) {
    case '-':
    case '.':
    case '!':
    case '%':
    case '*':
    case '_':
    case '+':
    case '`':
    case '\'':
    case '~':
      return true;
    default:
      return false;
  }
}

inline constexpr struct TokenTable {
  bool token[256] = {};
  constexpr TokenTable() {
    for (int c = 0; c < 256; ++c) {
      token[c] = isTokenCharSlow(static_cast<char>(c));
    }
  }
} kTokenTable;

constexpr bool isTokenChar(char c) {
  return kTokenTable.token[static_cast<unsigned char>(c)];
}

constexpr bool isToken(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!isTokenChar(c)) {
      return false;
    }
  }
  return true;
}

// unreserved = alphanum / mark
constexpr bool isUnreserved(char c) {
  if (isAlnum(c)) {
    return true;
  }
  switch (c) {
    case '-':
    case '_':
    case '.':
    case '!':
    case '~':
    case '*':
    case '\'':
    case '(':
    case ')':
      return true;
    default:
      return false;
  }
}

inline std::string_view skipLws(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && isLwsChar(s[i])) {
    ++i;
  }
  return s.substr(i);
}

inline std::string_view trimLws(std::string_view s) {
  s = skipLws(s);
  while (!s.empty() && isLwsChar(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// Length of a quoted-string starting at s[0] == '"', including both quotes; nullopt when it is
// not terminated. Handles quoted-pair (\x).
inline std::optional<size_t> quotedLength(std::string_view s) {
  if (s.empty() || s[0] != '"') {
    return std::nullopt;
  }
  size_t i = 1;
  while ((i = findAnyOf<'\\', '"'>(s, i)) < s.size()) {
    if (s[i] == '"') {
      return i + 1;
    }
    i += 2;  // a quoted-pair
  }
  return std::nullopt;
}

// Checks that every '%' is followed by two hex digits and every other char satisfies pred.
template <typename Pred>
bool allEscapedOr(std::string_view s, Pred pred) {
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !isHex(s[i + 1]) || !isHex(s[i + 2])) {
        return false;
      }
      i += 2;
      continue;
    }
    if (!pred(c)) {
      return false;
    }
  }
  return true;
}

struct HostPort {
  std::string_view host;      // IPv6 without brackets
  std::string_view hostText;  // as written
  HostType hostType = HostType::kNone;
  uint16_t port = 0;
};

// hostname = *( domainlabel "." ) toplabel [ "." ] (RFC 3261 25.1); '_' is tolerated inside
// labels because real deployments use it.
bool isHostname(std::string_view s);

// Parses `host [":" port]` filling the whole of s (IPv6 references in brackets). When
// `lwsAroundColon` is set, SWS ":" SWS is accepted (Via sent-by).
std::optional<HostPort> parseHostPort(std::string_view s, bool lwsAroundColon);

// Validates a generic-param list as written after the first ';' (RFC 3261 gen-value: token,
// host or quoted-string).
bool validGenericParams(std::string_view raw);

}  // namespace evosip::sip::lex
