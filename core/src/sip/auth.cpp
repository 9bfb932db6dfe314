#include <evosip/base/strings.hpp>
#include <evosip/sip/auth.hpp>

#include "lex.hpp"

namespace evosip::sip {

namespace {

constexpr struct {
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

// The token at the start of `rest` (possibly empty); `rest` moves past it.
std::string_view takeToken(std::string_view& rest) {
  size_t n = 0;
  while (n < rest.size() && lex::isTokenChar(rest[n])) {
    ++n;
  }
  const std::string_view token = rest.substr(0, n);
  rest = rest.substr(n);
  return token;
}

// The value after '=': a quoted string (its body) or a token.
Result<std::string_view> takeParamValue(std::string_view& rest) {
  if (!rest.empty() && rest[0] == '"') {
    auto q = lex::quotedLength(rest);
    if (!q) {
      return makeError(Errc::kParse, "unterminated quoted string");
    }
    const std::string_view v = rest.substr(1, *q - 2);
    rest = rest.substr(*q);
    return v;
  }
  const std::string_view v = takeToken(rest);
  if (v.empty()) {
    return makeError(Errc::kParse, "empty auth parameter value");
  }
  return v;
}

// auth-param = token EQUAL ( token / quoted-string ); a known one lands in its field once.
Result<void> takeParam(std::string_view& rest, DigestParams& d, uint32_t& seen) {
  const std::string_view name = takeToken(rest);
  if (name.empty()) {
    return makeError(Errc::kParse, "bad auth parameter name");
  }
  rest = lex::skipLws(rest);
  if (rest.empty() || rest[0] != '=') {
    return makeError(Errc::kParse, "auth parameter without '='");
  }
  rest = lex::skipLws(rest.substr(1));
  auto v = takeParamValue(rest);
  if (!v) {
    return tl::unexpected(v.error());
  }
  for (size_t i = 0; i < std::size(kFields); ++i) {
    if (iequals(name, kFields[i].name)) {
      if ((seen & (1u << i)) != 0) {
        return makeError(Errc::kParse, "duplicate auth parameter");
      }
      seen |= 1u << i;
      d.*kFields[i].value = *v;
      break;
    }
  }
  return {};
}

}  // namespace

Result<DigestParams> parseDigest(std::string_view value) {
  DigestParams d;
  std::string_view rest = lex::trimLws(value);
  d.scheme = takeToken(rest);
  if (d.scheme.empty()) {
    return makeError(Errc::kParse, "missing auth scheme");
  }
  if (!rest.empty() && !lex::isLwsChar(rest[0])) {
    return makeError(Errc::kParse, "bad auth scheme");
  }
  rest = lex::skipLws(rest);
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
    if (auto param = takeParam(rest, d, seen); !param) {
      return tl::unexpected(param.error());
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
