#include <evosip/app/call_request.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/sip/response.hpp>
#include <evosip/sip/uri.hpp>

namespace evosip::app {

namespace {

constexpr std::string_view kPrefix = "X-Evosip-";

bool isDtmfKey(std::string_view key) {
  if (key.empty() || key.size() > 32) {
    return false;
  }
  for (char c : key) {
    const bool ok = (c >= '0' && c <= '9') || c == '*' || c == '#' || (c >= 'A' && c <= 'D') ||
                    (c >= 'a' && c <= 'd');
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string upperDigits(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'd') {
      c = static_cast<char>(c - 32);
    }
  }
  return out;
}

}  // namespace

Action actionFromName(std::string_view name) {
  name = trim(name);
  if (name.empty()) {
    return Action::kMissing;
  }
  if (iequals(name, "Playback")) {
    return Action::kPlayback;
  }
  if (iequals(name, "Voicemail")) {
    return Action::kVoicemail;
  }
  if (iequals(name, "Echo")) {
    return Action::kEcho;
  }
  if (iequals(name, "Menu")) {
    return Action::kMenu;
  }
  if (iequals(name, "Hangup")) {
    return Action::kHangup;
  }
  return Action::kUnknown;
}

std::string_view actionName(Action a) {
  switch (a) {
    case Action::kPlayback:
      return "Playback";
    case Action::kVoicemail:
      return "Voicemail";
    case Action::kEcho:
      return "Echo";
    case Action::kMenu:
      return "Menu";
    case Action::kHangup:
      return "Hangup";
    case Action::kUnknown:
      return "unknown";
    case Action::kMissing:
      break;
  }
  return "missing";
}

bool isPlatformHeader(std::string_view name) {
  return istartsWith(name, kPrefix);
}

std::optional<std::string_view> CallRequest::param(std::string_view suffix) const {
  for (const auto& [k, v] : params) {
    if (iequals(k, suffix)) {
      return std::string_view(v);
    }
  }
  return std::nullopt;
}

std::string CallRequest::paramOr(std::string_view suffix, std::string_view def) const {
  auto v = param(suffix);
  return std::string(v && !v->empty() ? *v : def);
}

bool CallRequest::hasOption(std::string_view option) const {
  for (const auto& [k, v] : params) {
    if (!iequals(k, "Option")) {
      continue;
    }
    std::string_view rest = v;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      if (iequals(trim(rest.substr(0, comma)), option)) {
        return true;
      }
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  return false;
}

CallRequest readCallRequest(const sip::Message& invite) {
  CallRequest r;
  bool haveAction = false;
  for (const auto& h : invite.headers()) {
    if (!isPlatformHeader(h.name)) {
      continue;
    }
    std::string_view suffix = h.name.substr(kPrefix.size());
    if (iequals(suffix, "Action")) {
      if (!haveAction) {
        r.actionText = std::string(trim(h.value));
        r.action = actionFromName(r.actionText);
        haveAction = true;
      }
      continue;
    }
    r.params.emplace_back(std::string(suffix), std::string(trim(h.value)));
  }
  return r;
}

std::string safeReason(std::string_view text) {
  std::string out;
  for (char c : trim(text)) {
    if (out.size() >= 100) {
      break;
    }
    out.push_back(c >= 0x20 && c < 0x7F ? c : '?');
  }
  return out;
}

FinalStatus readFinalStatus(const CallRequest& request, int defaultCode) {
  FinalStatus s;
  s.code = defaultCode;
  if (auto text = request.param("Status")) {
    if (auto v = parseDecimal(trim(*text), 999); v && *v >= 400 && *v <= 699) {
      s.code = static_cast<int>(*v);
    }
  }
  if (auto reason = request.param("Reason")) {
    s.reason = safeReason(*reason);
  }
  if (s.reason.empty()) {
    s.reason = std::string(sip::defaultReason(s.code));
  }
  if (s.reason.empty()) {
    s.reason = "Call Ended";
  }
  return s;
}

Result<MenuTargets> parseTargets(std::string_view text) {
  MenuTargets t;
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view entry = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (entry.empty()) {
      continue;
    }
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) {
      return makeError(Errc::kParse, "targets: '" + std::string(entry) + "' is not DIGITS=URI");
    }
    std::string_view key = trim(entry.substr(0, eq));
    std::string_view uri = trim(entry.substr(eq + 1));
    if (uri.size() >= 2 && uri.front() == '<' && uri.back() == '>') {
      uri = trim(uri.substr(1, uri.size() - 2));
    }
    if (!isDtmfKey(key)) {
      return makeError(Errc::kParse,
                       "targets: '" + std::string(key) + "' is not a DTMF digit string");
    }
    auto parsed = sip::parseUri(uri);
    if (!parsed || (!parsed->isSip() && parsed->scheme != sip::UriScheme::kTel)) {
      return makeError(Errc::kParse,
                       "targets: '" + std::string(uri) + "' is not a sip:, sips: or tel: URI");
    }
    const std::string k = upperDigits(key);
    for (const auto& [existing, _] : t.entries) {
      if (existing == k) {
        return makeError(Errc::kParse, "targets: digits '" + k + "' given twice");
      }
    }
    t.entries.emplace_back(k, std::string(uri));
  }
  return t;
}

DigitResult matchDigits(const MenuTargets& targets, std::string_view digits) {
  DigitResult r;
  const std::string d = upperDigits(digits);
  bool longer = false;
  for (const auto& [key, uri] : targets.entries) {
    if (key == d) {
      r.target = uri;
    } else if (key.size() > d.size() && key.compare(0, d.size(), d) == 0) {
      longer = true;
    }
  }
  if (!r.target.empty()) {
    r.match = longer ? DigitMatch::kPrefix : DigitMatch::kTarget;
  } else {
    r.match = longer ? DigitMatch::kNeedMore : DigitMatch::kInvalid;
  }
  return r;
}

}  // namespace evosip::app
