#include <evosip/base/strings.hpp>
#include <evosip/sip/uri.hpp>

#include "lex.hpp"

namespace evosip::sip {

bool isIpv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t digits = 0;
    unsigned value = 0;
    while (i < s.size() && lex::isDigit(s[i]) && digits < 4) {
      value = value * 10 + static_cast<unsigned>(s[i] - '0');
      ++i;
      ++digits;
    }
    if (digits == 0 || digits > 3 || value > 255) {
      return false;
    }
    ++parts;
    if (i == s.size()) {
      return parts == 4;
    }
    if (s[i] != '.' || parts == 4) {
      return false;
    }
    ++i;
  }
}

bool isIpv6(std::string_view s) {
  if (s.size() < 2 || s.size() > 45) {
    return false;
  }
  int groups = 0;
  bool compressed = false;
  size_t i = 0;
  if (s[0] == ':') {
    if (s[1] != ':') {
      return false;
    }
    compressed = true;
    i = 2;
  }
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && lex::isHex(s[j]) && j - i < 5) {
      ++j;
    }
    if (j < s.size() && s[j] == '.') {
      // Trailing dotted IPv4 (e.g. ::ffff:192.0.2.1) counts as two groups and ends the text.
      if (!isIpv4(s.substr(i))) {
        return false;
      }
      groups += 2;
      i = s.size();
      break;
    }
    if (j == i || j - i > 4) {
      return false;
    }
    ++groups;
    i = j;
    if (i == s.size()) {
      break;
    }
    if (s[i] != ':') {
      return false;
    }
    ++i;
    if (i < s.size() && s[i] == ':') {
      if (compressed) {
        return false;
      }
      compressed = true;
      ++i;
    } else if (i == s.size()) {
      return false;
    }
  }
  return compressed ? groups <= 7 : groups == 8;
}

namespace lex {

bool isHostname(std::string_view s) {
  if (!s.empty() && s.back() == '.') {
    s.remove_suffix(1);
  }
  if (s.empty() || s.size() > 255) {
    return false;
  }
  size_t labelStart = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '.') {
      std::string_view label = s.substr(labelStart, i - labelStart);
      if (label.empty() || !isAlnum(label.front()) || !isAlnum(label.back())) {
        return false;
      }
      if (i == s.size() && !isAlpha(label.front())) {
        return false;  // toplabel starts with a letter
      }
      labelStart = i + 1;
      continue;
    }
    if (!isAlnum(s[i]) && s[i] != '-' && s[i] != '_') {
      return false;
    }
  }
  return true;
}

// RFC 5118 4.10: RFC 3261's ABNF lets a third colon precede an embedded IPv4 address
// ("2001:db8:::192.0.2.1"); implementations must tolerate it. Only that position is accepted.
static bool isAbnfBugIpv6(std::string_view s) {
  const size_t triple = s.find(":::");
  if (triple == std::string_view::npos || s.find(':', triple + 3) != std::string_view::npos) {
    return false;
  }
  if (!isIpv4(s.substr(triple + 3))) {
    return false;
  }
  // The same text with two colons must be a valid address.
  char fixed[64];
  if (s.size() >= sizeof(fixed)) {
    return false;
  }
  const size_t head = triple + 2;
  s.copy(fixed, head);
  s.substr(triple + 3).copy(fixed + head, s.size() - triple - 3);
  return isIpv6(std::string_view(fixed, s.size() - 1));
}

std::optional<HostPort> parseHostPort(std::string_view s, bool lwsAroundColon) {
  HostPort hp;
  size_t i = 0;
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    hp.host = s.substr(1, close - 1);
    if (!isIpv6(hp.host) && !isAbnfBugIpv6(hp.host)) {
      return std::nullopt;
    }
    hp.hostText = s.substr(0, close + 1);
    hp.hostType = HostType::kIpv6;
    i = close + 1;
  } else {
    while (i < s.size() && s[i] != ':' && !(lwsAroundColon && isLwsChar(s[i]))) {
      ++i;
    }
    hp.host = s.substr(0, i);
    hp.hostText = hp.host;
    if (isIpv4(hp.host)) {
      hp.hostType = HostType::kIpv4;
    } else if (isHostname(hp.host)) {
      hp.hostType = HostType::kDomain;
    } else {
      return std::nullopt;
    }
  }
  std::string_view rest = s.substr(i);
  if (lwsAroundColon) {
    rest = skipLws(rest);
  }
  if (rest.empty()) {
    return hp;
  }
  if (rest[0] != ':') {
    return std::nullopt;
  }
  rest.remove_prefix(1);
  if (lwsAroundColon) {
    rest = trimLws(rest);
  }
  auto port = parseDecimal(rest, 65535);
  if (!port || rest.size() > 5) {
    return std::nullopt;
  }
  hp.port = static_cast<uint16_t>(*port);
  return hp;
}

static bool isGenValueChar(char c) {
  return isTokenChar(c) || c == '[' || c == ']' || c == ':';
}

// One parameter of a generic-param list, trimmed and not empty: a token name, then a token,
// host or quoted-string value when there is '='.
static bool validGenericParam(std::string_view item) {
  const size_t eq = item.find('=');
  if (!isToken(trimLws(item.substr(0, eq)))) {
    return false;
  }
  if (eq == std::string_view::npos) {
    return true;
  }
  const std::string_view value = trimLws(item.substr(eq + 1));
  if (value.empty()) {
    return false;
  }
  if (value.front() == '"') {
    auto q = quotedLength(value);
    return q && *q == value.size();
  }
  for (char c : value) {
    if (!isGenValueChar(c)) {
      return false;
    }
  }
  return true;
}

bool validGenericParams(std::string_view raw) {
  // Every ';' must introduce a parameter: ";;" and a trailing ';' are malformed.
  size_t start = 0;
  size_t i = 0;
  while (true) {
    i = findAnyOf<'"', ';'>(raw, i);
    if (i < raw.size() && raw[i] == '"') {
      auto q = quotedLength(raw.substr(i));
      if (!q) {
        return false;
      }
      i += *q;
      continue;
    }
    const std::string_view item = trimLws(raw.substr(start, i - start));
    if (item.empty() || !validGenericParam(item)) {
      return false;
    }
    if (i >= raw.size()) {
      return true;
    }
    start = ++i;
  }
}

}  // namespace lex

namespace {

bool isUserChar(char c) {
  if (lex::isUnreserved(c)) {
    return true;
  }
  switch (c) {
    case '&':
    case '=':
    case '+':
    case '$':
    case ',':
    case ';':
    case '?':
    case '/':
      return true;
    default:
      return false;
  }
}

bool isPasswordChar(char c) {
  return lex::isUnreserved(c) || c == '&' || c == '=' || c == '+' || c == '$' || c == ',';
}

// paramchar plus the '=' and ';' that structure the list.
bool isUriParamChar(char c) {
  if (lex::isUnreserved(c)) {
    return true;
  }
  switch (c) {
    case '[':
    case ']':
    case '/':
    case ':':
    case '&':
    case '+':
    case '$':
    case '=':
    case ';':
      return true;
    default:
      return false;
  }
}

// hnv-unreserved / unreserved plus '=' and '&'.
bool isUriHeaderChar(char c) {
  if (lex::isUnreserved(c)) {
    return true;
  }
  switch (c) {
    case '[':
    case ']':
    case '/':
    case '?':
    case ':':
    case '+':
    case '$':
    case '=':
    case '&':
      return true;
    default:
      return false;
  }
}

bool isTelChar(char c) {
  if (lex::isHex(c)) {
    return true;
  }
  switch (c) {
    case '+':
    case '-':
    case '.':
    case '(':
    case ')':
    case '*':
    case '#':
    case 'p':
    case 'w':
    case 'P':
    case 'W':
      return true;
    default:
      return false;
  }
}

bool validUriParams(std::string_view raw) {
  if (!lex::allEscapedOr(raw, isUriParamChar)) {
    return false;
  }
  // Every parameter needs a name: ";;" and ";=x" are malformed.
  size_t start = 0;
  for (size_t i = 0; i <= raw.size(); ++i) {
    if (i == raw.size() || raw[i] == ';') {
      std::string_view p = raw.substr(start, i - start);
      if (p.empty() || p.front() == '=') {
        return false;
      }
      start = i + 1;
    }
  }
  return true;
}

Result<Uri> parseSipUri(Uri uri, std::string_view rest) {
  // The host part ends at the first ';' or '?' after the userinfo. Neither '@' may appear in
  // params nor headers, so the first '@' ends the userinfo.
  const size_t at = rest.find('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    const size_t colon = userinfo.find(':');
    uri.user = userinfo.substr(0, colon);
    if (colon != std::string_view::npos) {
      uri.password = userinfo.substr(colon + 1);
      if (!lex::allEscapedOr(uri.password, isPasswordChar)) {
        return makeError(Errc::kParse, "bad URI password");
      }
    }
    if (uri.user.empty() || !lex::allEscapedOr(uri.user, isUserChar)) {
      return makeError(Errc::kParse, "bad URI user");
    }
    rest = rest.substr(at + 1);
  }
  size_t hostEnd = 0;
  if (!rest.empty() && rest[0] == '[') {
    hostEnd = rest.find(']');
    if (hostEnd == std::string_view::npos) {
      return makeError(Errc::kParse, "unterminated IPv6 reference");
    }
  }
  hostEnd = rest.find_first_of(";?", hostEnd);
  if (hostEnd == std::string_view::npos) {
    hostEnd = rest.size();
  }
  auto hp = lex::parseHostPort(rest.substr(0, hostEnd), false);
  if (!hp) {
    return makeError(Errc::kParse, "bad URI host or port");
  }
  uri.host = hp->host;
  uri.hostText = hp->hostText;
  uri.hostType = hp->hostType;
  uri.port = hp->port;
  rest = rest.substr(hostEnd);
  if (!rest.empty() && rest[0] == ';') {
    const size_t q = rest.find('?');
    std::string_view params = rest.substr(1, q == std::string_view::npos ? q : q - 1);
    if (!validUriParams(params)) {
      return makeError(Errc::kParse, "bad URI parameter");
    }
    uri.params = ParamList(params);
    rest = q == std::string_view::npos ? std::string_view{} : rest.substr(q);
  }
  if (!rest.empty()) {
    // rest[0] == '?'
    uri.headers = rest.substr(1);
    if (uri.headers.empty() || !lex::allEscapedOr(uri.headers, isUriHeaderChar)) {
      return makeError(Errc::kParse, "bad URI headers");
    }
  }
  return uri;
}

Result<Uri> parseTelUri(Uri uri, std::string_view rest) {
  const size_t semi = rest.find(';');
  uri.user = rest.substr(0, semi);
  if (uri.user.empty()) {
    return makeError(Errc::kParse, "empty tel number");
  }
  for (char c : uri.user) {
    if (!isTelChar(c)) {
      return makeError(Errc::kParse, "bad tel number");
    }
  }
  if (semi != std::string_view::npos) {
    std::string_view params = rest.substr(semi + 1);
    if (!validUriParams(params)) {
      return makeError(Errc::kParse, "bad tel parameter");
    }
    uri.params = ParamList(params);
  }
  return uri;
}

}  // namespace

Result<Uri> parseUri(std::string_view text) {
  Uri uri;
  uri.text = text;
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || !lex::isAlpha(text[0])) {
    return makeError(Errc::kParse, "URI without scheme");
  }
  uri.schemeText = text.substr(0, colon);
  for (char c : uri.schemeText) {
    if (!lex::isAlnum(c) && c != '+' && c != '-' && c != '.') {
      return makeError(Errc::kParse, "bad URI scheme");
    }
  }
  std::string_view rest = text.substr(colon + 1);
  if (rest.empty()) {
    return makeError(Errc::kParse, "empty URI");
  }
  for (char c : rest) {
    // No URI may contain white space or control characters (RFC 3986 2).
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return makeError(Errc::kParse, "white space or control character in URI");
    }
  }
  if (iequals(uri.schemeText, "sip")) {
    uri.scheme = UriScheme::kSip;
    return parseSipUri(uri, rest);
  }
  if (iequals(uri.schemeText, "sips")) {
    uri.scheme = UriScheme::kSips;
    return parseSipUri(uri, rest);
  }
  if (iequals(uri.schemeText, "tel")) {
    uri.scheme = UriScheme::kTel;
    return parseTelUri(uri, rest);
  }
  uri.scheme = UriScheme::kOther;
  return uri;
}

}  // namespace evosip::sip
