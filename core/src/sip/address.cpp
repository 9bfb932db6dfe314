#include <evosip/base/strings.hpp>
#include <evosip/sip/address.hpp>

#include "lex.hpp"

namespace evosip::sip {

namespace {

// display-name = *(token LWS) / quoted-string
bool validDisplayName(std::string_view dn) {
  if (dn.empty()) {
    return true;
  }
  if (dn.front() == '"') {
    auto q = lex::quotedLength(dn);
    return q && *q == dn.size();
  }
  for (char c : dn) {
    if (!lex::isTokenChar(c) && !lex::isLwsChar(c)) {
      return false;
    }
  }
  return true;
}

// After the URI: optional LWS, then nothing or ';' params.
Result<ParamList> trailingParams(std::string_view rest) {
  rest = lex::skipLws(rest);
  if (rest.empty()) {
    return ParamList{};
  }
  if (rest[0] != ';') {
    return makeError(Errc::kParse, "unexpected text after address");
  }
  std::string_view raw = lex::trimLws(rest.substr(1));
  if (!lex::validGenericParams(raw)) {
    return makeError(Errc::kParse, "bad header parameter");
  }
  return ParamList(raw);
}

}  // namespace

Result<NameAddr> parseNameAddr(std::string_view text) {
  NameAddr na;
  text = lex::trimLws(text);
  na.text = text;
  if (text.empty()) {
    return makeError(Errc::kParse, "empty address");
  }
  if (text == "*") {
    na.star = true;
    return na;
  }
  // Locate a '<' outside a quoted display name.
  size_t i = 0;
  size_t lt = std::string_view::npos;
  while (i < text.size()) {
    if (text[i] == '"') {
      auto q = lex::quotedLength(text.substr(i));
      if (!q) {
        return makeError(Errc::kParse, "unterminated quoted string");
      }
      i += *q;
      continue;
    }
    if (text[i] == '<') {
      lt = i;
      break;
    }
    ++i;
  }
  if (lt != std::string_view::npos) {
    na.angleBrackets = true;
    na.displayName = lex::trimLws(text.substr(0, lt));
    if (!validDisplayName(na.displayName)) {
      return makeError(Errc::kParse, "bad display name");
    }
    const size_t gt = text.find('>', lt);
    if (gt == std::string_view::npos) {
      return makeError(Errc::kParse, "missing '>'");
    }
    na.uriText = text.substr(lt + 1, gt - lt - 1);
    auto uri = parseUri(na.uriText);
    if (!uri) {
      return tl::unexpected(uri.error());
    }
    na.uri = *uri;
    auto params = trailingParams(text.substr(gt + 1));
    if (!params) {
      return tl::unexpected(params.error());
    }
    na.params = *params;
    return na;
  }
  // addr-spec: the URI ends at the first ';' (what follows are header parameters), and it may
  // contain no ',', '?' nor white space (RFC 3261 20.10).
  const size_t semi = text.find(';');
  na.uriText = lex::trimLws(text.substr(0, semi));
  if (na.uriText.find_first_of(",?\"") != std::string_view::npos) {
    return makeError(Errc::kParse, "addr-spec with reserved characters needs <>");
  }
  auto uri = parseUri(na.uriText);
  if (!uri) {
    return tl::unexpected(uri.error());
  }
  na.uri = *uri;
  if (semi != std::string_view::npos) {
    auto params = trailingParams(text.substr(semi));
    if (!params) {
      return tl::unexpected(params.error());
    }
    na.params = *params;
  }
  return na;
}

std::string_view tagOf(const Result<NameAddr>& na) {
  if (!na) {
    return {};
  }
  return na->tag().value_or(std::string_view{});
}

Result<Uri> parseHopUri(std::string_view text, HopText kind) {
  if (kind == HopText::kUri) {
    return parseUri(lex::trimLws(text));
  }
  auto na = parseNameAddr(text);
  if (!na) {
    return tl::unexpected(na.error());
  }
  if (na->star) {
    return makeError(Errc::kParse, "'*' is not a route");
  }
  return na->uri;
}

bool Via::rfc3261Branch() const {
  auto b = branch();
  return b && b->size() > 7 && b->substr(0, 7) == "z9hG4bK";
}

Result<Via> parseVia(std::string_view text) {
  Via via;
  text = lex::trimLws(text);
  via.text = text;
  // sent-protocol = protocol-name SLASH protocol-version SLASH transport (SLASH = SWS "/" SWS)
  std::string_view rest = text;
  std::string_view* parts[3] = {&via.protocolName, &via.protocolVersion, &via.transport};
  for (int k = 0; k < 3; ++k) {
    rest = lex::skipLws(rest);
    size_t n = 0;
    while (n < rest.size() && lex::isTokenChar(rest[n])) {
      ++n;
    }
    if (n == 0) {
      return makeError(Errc::kParse, "bad Via sent-protocol");
    }
    *parts[k] = rest.substr(0, n);
    rest = rest.substr(n);
    if (k < 2) {
      rest = lex::skipLws(rest);
      if (rest.empty() || rest[0] != '/') {
        return makeError(Errc::kParse, "bad Via sent-protocol");
      }
      rest.remove_prefix(1);
    }
  }
  if (!iequals(via.protocolName, "SIP") || via.protocolVersion != "2.0") {
    return makeError(Errc::kParse, "Via protocol is not SIP/2.0");
  }
  // LWS sent-by
  const size_t semi = rest.find(';');
  std::string_view sentBy = lex::trimLws(rest.substr(0, semi));
  if (sentBy.empty() || sentBy.size() == rest.substr(0, semi).size()) {
    // sent-by is required and must be separated from the transport by LWS.
    return makeError(Errc::kParse, "bad Via sent-by");
  }
  auto hp = lex::parseHostPort(sentBy, true);
  if (!hp) {
    return makeError(Errc::kParse, "bad Via sent-by");
  }
  via.host = hp->host;
  via.hostText = hp->hostText;
  via.hostType = hp->hostType;
  via.port = hp->port;
  if (semi != std::string_view::npos) {
    std::string_view raw = lex::trimLws(rest.substr(semi + 1));
    if (!lex::validGenericParams(raw)) {
      return makeError(Errc::kParse, "bad Via parameter");
    }
    via.params = ParamList(raw);
    bool ok = true;
    auto keepFirst = [](std::optional<std::string_view>& slot, std::string_view value) {
      if (!slot) {
        slot = value;
      }
    };
    via.params.forEach([&](const ParamList::Param& p) {
      if (iequals(p.name, "ttl")) {
        ok = p.hasValue && p.value.size() <= 3 && parseDecimal(p.value, 255).has_value();
        keepFirst(via.known.ttl, p.value);
      } else if (iequals(p.name, "rport")) {
        ok = !p.hasValue || (p.value.size() <= 5 && parseDecimal(p.value, 65535).has_value());
        keepFirst(via.known.rport, p.value);
      } else if (iequals(p.name, "branch")) {
        ok = p.hasValue && lex::isToken(p.value);
        keepFirst(via.known.branch, p.value);
      } else if (iequals(p.name, "received")) {
        keepFirst(via.known.received, p.value);
        // RFC 3261 says IPv4address / IPv6address; RFC 5118 4.5 shows the bracketed form too.
        std::string_view v = p.value;
        if (v.size() >= 2 && v.front() == '[' && v.back() == ']') {
          v = v.substr(1, v.size() - 2);
        }
        ok = p.hasValue && (isIpv4(v) || isIpv6(v));
      } else if (iequals(p.name, "maddr")) {
        ok = p.hasValue && !p.value.empty();
        keepFirst(via.known.maddr, p.value);
      }
      return ok;
    });
    if (!ok) {
      return makeError(Errc::kParse, "bad Via parameter value");
    }
  }
  return via;
}

Result<CSeq> parseCSeq(std::string_view value) {
  value = lex::trimLws(value);
  size_t n = 0;
  while (n < value.size() && lex::isDigit(value[n])) {
    ++n;
  }
  if (n == 0 || n > 10) {
    return makeError(Errc::kParse, "bad CSeq number");
  }
  auto number = parseDecimal(value.substr(0, n), UINT32_MAX);
  if (!number) {
    return makeError(Errc::kParse, "CSeq number out of range");
  }
  std::string_view rest = value.substr(n);
  std::string_view method = lex::skipLws(rest);
  if (method.size() == rest.size() || !lex::isToken(method)) {
    return makeError(Errc::kParse, "bad CSeq method");
  }
  CSeq cseq;
  cseq.number = static_cast<uint32_t>(*number);
  cseq.methodText = method;
  cseq.method = methodFromName(method);
  return cseq;
}

}  // namespace evosip::sip
