#include <evosip/base/strings.hpp>
#include <evosip/sip/auth.hpp>

#include "lex.hpp"

namespace evosip::sip {

Result<DigestParams> parseDigest(std::string_view value) {
  DigestParams d;
  std::string_view rest = lex::trimLws(value);
  size_t n = 0;
  while (n < rest.size() && lex::isTokenChar(rest[n])) {
    ++n;
  }
  if (n == 0) {
    return makeError(Errc::kParse, "missing auth scheme");
  }
  d.scheme = rest.substr(0, n);
  rest = rest.substr(n);
  if (!rest.empty() && !lex::isLwsChar(rest[0])) {
    return makeError(Errc::kParse, "bad auth scheme");
  }
  rest = lex::skipLws(rest);

  static constexpr struct {
    std::string_view name;
    std::string_view DigestParams::*value;
  } kFields[] = {
      {"username", &DigestParams::username}, {"realm", &DigestParams::realm},
      {"nonce", &DigestParams::nonce},       {"uri", &DigestParams::uri},
      {"response", &DigestParams::response}, {"algorithm", &DigestParams::algorithm},
      {"cnonce", &DigestParams::cnonce},     {"opaque", &DigestParams::opaque},
      {"qop", &DigestParams::qop},           {"nc", &DigestParams::nc},
      {"stale", &DigestParams::stale},       {"domain", &DigestParams::domain},
      {"userhash", &DigestParams::userhash},
  };
  uint32_t seen = 0;
  bool first = true;
  while (true) {
    rest = lex::skipLws(rest);
    if (rest.empty()) {
      break;
    }
    if (!first) {
      if (rest[0] != ',') {
        return makeError(Errc::kParse, "expected ',' between auth parameters");
      }
      rest = lex::skipLws(rest.substr(1));
      if (rest.empty()) {
        return makeError(Errc::kParse, "trailing ',' in auth parameters");
      }
    }
    first = false;
    // auth-param = token EQUAL ( token / quoted-string )
    n = 0;
    while (n < rest.size() && lex::isTokenChar(rest[n])) {
      ++n;
    }
    if (n == 0) {
      return makeError(Errc::kParse, "bad auth parameter name");
    }
    const std::string_view name = rest.substr(0, n);
    rest = lex::skipLws(rest.substr(n));
    if (rest.empty() || rest[0] != '=') {
      return makeError(Errc::kParse, "auth parameter without '='");
    }
    rest = lex::skipLws(rest.substr(1));
    std::string_view v;
    if (!rest.empty() && rest[0] == '"') {
      auto q = lex::quotedLength(rest);
      if (!q) {
        return makeError(Errc::kParse, "unterminated quoted string");
      }
      v = rest.substr(1, *q - 2);
      rest = rest.substr(*q);
    } else {
      n = 0;
      while (n < rest.size() && lex::isTokenChar(rest[n])) {
        ++n;
      }
      if (n == 0) {
        return makeError(Errc::kParse, "empty auth parameter value");
      }
      v = rest.substr(0, n);
      rest = rest.substr(n);
    }
    for (size_t i = 0; i < std::size(kFields); ++i) {
      if (iequals(name, kFields[i].name)) {
        if ((seen & (1u << i)) != 0) {
          return makeError(Errc::kParse, "duplicate auth parameter");
        }
        seen |= 1u << i;
        d.*kFields[i].value = v;
        break;
      }
    }
  }
  d.hasUsername = (seen & 1u) != 0;
  d.hasRealm = (seen & 2u) != 0;
  d.hasNonce = (seen & 4u) != 0;
  d.hasUri = (seen & 8u) != 0;
  d.hasResponse = (seen & 16u) != 0;
  return d;
}

std::string unquote(std::string_view quotedBody) {
  std::string out;
  out.reserve(quotedBody.size());
  for (size_t i = 0; i < quotedBody.size(); ++i) {
    if (quotedBody[i] == '\\' && i + 1 < quotedBody.size()) {
      ++i;
    }
    out.push_back(quotedBody[i]);
  }
  return out;
}

}  // namespace evosip::sip
