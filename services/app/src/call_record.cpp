// The JSON form of a stored call of the app (call_record.hpp). Keys are short:
//   {"v":1,"id":call-id,"lt":local tag,"rt":remote tag,"f":from,"t":to,"tg":remote target,
//    "rs":[route...],"sh":source host,"sp":source port,"lc":local cseq,"rc":remote cseq,
//    "sdp":remote sdp,"si":session id,"sv":sdp version,"ac":action,"pa":[[name,value]...],
//    "st":started ms}
#include <charconv>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/app/call_record.hpp>

namespace evosip::app {

namespace json = boost::json;

namespace {

constexpr int64_t kVersion = 1;
constexpr int64_t kMaxU32 = 0xffffffffLL;

// Every accessor checks presence, type and bounds; the first failure is kept.
struct Reader {
  const json::object& o;
  const CallRecordLimits& limits;
  std::optional<Error> failure;

  const json::value* field(std::string_view k) {
    const json::value* v = o.if_contains(k);
    if (v == nullptr && !failure) {
      failure = Error{Errc::kParse, fmt::format("missing field '{}'", k)};
    }
    return v;
  }
  void fail(std::string_view k, std::string_view what) {
    if (!failure) {
      failure = Error{Errc::kParse, fmt::format("field '{}': {}", k, what)};
    }
  }
  std::string text(std::string_view k, size_t max, bool required = false) {
    const json::value* v = field(k);
    const json::string* s = v ? v->if_string() : nullptr;
    if (v != nullptr && (s == nullptr || s->size() > max || (required && s->empty()))) {
      fail(k, fmt::format("not a{} string of at most {} bytes", required ? " non-empty" : "", max));
      return {};
    }
    return s ? std::string(s->data(), s->size()) : std::string();
  }
  int64_t integer(std::string_view k, int64_t lo, int64_t hi) {
    const json::value* v = field(k);
    const int64_t* i = v ? v->if_int64() : nullptr;
    if (v != nullptr && (i == nullptr || *i < lo || *i > hi)) {
      fail(k, fmt::format("not an integer in {}..{}", lo, hi));
      return lo;
    }
    return i ? *i : lo;
  }
  const json::array* list(std::string_view k, size_t max) {
    const json::value* v = field(k);
    const json::array* a = v ? v->if_array() : nullptr;
    if (v != nullptr && (a == nullptr || a->size() > max)) {
      fail(k, fmt::format("not a list of at most {}", max));
      return nullptr;
    }
    return a;
  }
};

std::vector<std::string> readRoutes(Reader& r) {
  std::vector<std::string> out;
  const json::array* a = r.list("rs", r.limits.maxRoutes);
  for (size_t i = 0; a != nullptr && i < a->size(); ++i) {
    const json::string* s = (*a)[i].if_string();
    if (s == nullptr || s->empty() || s->size() > r.limits.maxText) {
      r.fail("rs", "a route is not a non-empty string");
      return {};
    }
    out.emplace_back(s->data(), s->size());
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> readParams(Reader& r) {
  std::vector<std::pair<std::string, std::string>> out;
  const json::array* a = r.list("pa", r.limits.maxParams);
  for (size_t i = 0; a != nullptr && i < a->size(); ++i) {
    const json::array* p = (*a)[i].if_array();
    if (p == nullptr || p->size() != 2 || !(*p)[0].is_string() || !(*p)[1].is_string() ||
        (*p)[0].as_string().empty() || (*p)[0].as_string().size() > 64 ||
        (*p)[1].as_string().size() > r.limits.maxText) {
      r.fail("pa", "a parameter is not [name, value]");
      return {};
    }
    out.emplace_back(std::string((*p)[0].as_string()), std::string((*p)[1].as_string()));
  }
  return out;
}

}  // namespace

std::string encodeCallRecord(const CallRecord& c) {
  json::array routes;
  for (const auto& r : c.routeSet) {
    routes.emplace_back(json::string(r));
  }
  json::array params;
  for (const auto& [k, v] : c.params) {
    params.emplace_back(json::array{json::string(k), json::string(v)});
  }
  json::object o{{"v", kVersion},
                 {"id", c.callId},
                 {"lt", c.localTag},
                 {"rt", c.remoteTag},
                 {"f", c.fromValue},
                 {"t", c.toValue},
                 {"tg", c.remoteTarget},
                 {"rs", std::move(routes)},
                 {"sh", c.sourceHost},
                 {"sp", c.sourcePort},
                 {"lc", c.localCseq},
                 {"rc", c.remoteCseq},
                 {"sdp", c.remoteSdp},
                 // As strings: JSON numbers above 2^53 do not survive every reader.
                 {"si", std::to_string(c.sessionId)},
                 {"sv", std::to_string(c.sdpVersion)},
                 {"ac", c.action},
                 {"pa", std::move(params)},
                 {"st", c.startedMs}};
  return json::serialize(o);
}

Result<CallRecord> decodeCallRecord(std::string_view text, const CallRecordLimits& limits) {
  if (text.size() > limits.maxBytes) {
    return makeError(Errc::kTooLarge,
                     fmt::format("record of {} bytes, at most {}", text.size(), limits.maxBytes));
  }
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return makeError(Errc::kParse, "not a JSON object");
  }
  Reader r{v.as_object(), limits, std::nullopt};
  if (r.integer("v", kVersion, kVersion) != kVersion || r.failure) {
    return makeError(Errc::kParse, r.failure ? r.failure->message : "unknown version");
  }
  CallRecord c;
  c.callId = r.text("id", limits.maxText, true);
  c.localTag = r.text("lt", limits.maxText, true);
  c.remoteTag = r.text("rt", limits.maxText, true);
  c.fromValue = r.text("f", limits.maxText, true);
  c.toValue = r.text("t", limits.maxText, true);
  c.remoteTarget = r.text("tg", limits.maxText);
  c.routeSet = readRoutes(r);
  c.sourceHost = r.text("sh", 64, true);
  c.sourcePort = static_cast<uint16_t>(r.integer("sp", 1, 65535));
  c.localCseq = static_cast<uint32_t>(r.integer("lc", 0, kMaxU32 - 1));
  c.remoteCseq = static_cast<uint32_t>(r.integer("rc", 0, kMaxU32));
  c.remoteSdp = r.text("sdp", limits.maxSdp, true);
  const std::string si = r.text("si", 20, true);
  const std::string sv = r.text("sv", 20, true);
  c.action = r.text("ac", 32, true);
  c.params = readParams(r);
  c.startedMs = r.integer("st", 0, int64_t(1) << 50);
  if (r.failure) {
    return tl::unexpected(*r.failure);
  }
  auto number = [](const std::string& s, uint64_t& out) {
    const char* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(s.data(), end, out);
    return !s.empty() && ec == std::errc() && ptr == end;
  };
  if (!number(si, c.sessionId) || !number(sv, c.sdpVersion)) {
    return makeError(Errc::kParse, "fields 'si'/'sv': not decimal numbers");
  }
  return c;
}

}  // namespace evosip::app
