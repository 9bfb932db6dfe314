// The JSON form of a stored media session (session_record.hpp). Keys are short: a relay writes
// one record per call at every offer, answer and latch change.
//   {"v":1,"id":call-id,"a":address,"b":bind,"c":created,"s":last signal,"l":[leg...]}
//   leg:    {"t":tag,"lb":label,"vb":branch,"p":"ash" policy letters,"pe":peer,"c":created,
//            "m":[slot...]}
//   slot:   {"ty":type,"pr":protocol,"mx":bool,"rj":bool,"r":stream,"rc":stream} (r/rc absent
//            when the slot has no sockets)
//   stream: {"p":port,"d":[ip,port],"sg":[ip,port],"ad":[ip,port],"sp":bool,"la":bool}
#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/media/session_record.hpp>

namespace evosip::media {

namespace json = boost::json;

namespace {

constexpr int64_t kVersion = 1;

json::value endpointJson(const Endpoint& e) {
  if (!e.known()) {
    return nullptr;
  }
  return json::array{json::string(e.address()), e.port()};
}

json::object streamJson(const StreamRecord& s) {
  return {{"p", s.port},
          {"d", endpointJson(s.destination)},
          {"sg", endpointJson(s.signalled)},
          {"ad", endpointJson(s.advertised)},
          {"sp", s.signalledFromSip},
          {"la", s.latched}};
}

json::object slotJson(const SlotRecord& m) {
  json::object o{{"ty", m.type}, {"pr", m.protocol}, {"mx", m.rtcpMux}, {"rj", m.rejected}};
  if (m.open) {
    o["r"] = streamJson(m.rtp);
    o["rc"] = streamJson(m.rtcp);
  }
  return o;
}

std::string policyLetters(const LatchPolicy& p) {
  std::string s;
  s += p.asymmetric ? "a" : "";
  s += p.strictSource ? "s" : "";
  s += p.mediaHandover ? "h" : "";
  return s;
}

json::object legJson(const LegRecord& l) {
  json::array media;
  for (const auto& m : l.media) {
    media.emplace_back(slotJson(m));
  }
  return {
      {"t", l.tag},   {"lb", l.label},      {"vb", l.viaBranch},    {"p", policyLetters(l.policy)},
      {"pe", l.peer}, {"c", l.createdWall}, {"m", std::move(media)}};
}

// --- Decoding: every accessor checks presence, type and bounds. ---

struct Reader {
  const RecordLimits& limits;

  Result<const json::value*> field(const json::object& o, std::string_view k) const {
    const json::value* v = o.if_contains(k);
    if (v == nullptr) {
      return makeError(Errc::kParse, fmt::format("missing field '{}'", k));
    }
    return v;
  }
  Result<std::string> text(const json::object& o, std::string_view k) const {
    auto v = field(o, k);
    if (!v) {
      return tl::unexpected(v.error());
    }
    const json::string* s = (*v)->if_string();
    if (s == nullptr || s->size() > limits.maxText) {
      return makeError(Errc::kParse, fmt::format("field '{}': not a string of at most {} bytes", k,
                                                 limits.maxText));
    }
    return std::string(s->data(), s->size());
  }
  Result<int64_t> integer(const json::object& o, std::string_view k, int64_t lo, int64_t hi) const {
    auto v = field(o, k);
    if (!v) {
      return tl::unexpected(v.error());
    }
    const int64_t* i = (*v)->if_int64();
    if (i == nullptr || *i < lo || *i > hi) {
      return makeError(Errc::kParse,
                       fmt::format("field '{}': not an integer in {}..{}", k, lo, hi));
    }
    return *i;
  }
  Result<bool> flag(const json::object& o, std::string_view k) const {
    auto v = field(o, k);
    if (!v) {
      return tl::unexpected(v.error());
    }
    const bool* b = (*v)->if_bool();
    if (b == nullptr) {
      return makeError(Errc::kParse, fmt::format("field '{}': not a boolean", k));
    }
    return *b;
  }
  Result<const json::object*> object(const json::value& v, std::string_view what) const {
    const json::object* o = v.if_object();
    if (o == nullptr) {
      return makeError(Errc::kParse, fmt::format("{}: not an object", what));
    }
    return o;
  }
  Result<const json::array*> array(const json::object& o, std::string_view k, size_t max) const {
    auto v = field(o, k);
    if (!v) {
      return tl::unexpected(v.error());
    }
    const json::array* a = (*v)->if_array();
    if (a == nullptr || a->size() > max) {
      return makeError(Errc::kParse, fmt::format("field '{}': not a list of at most {}", k, max));
    }
    return a;
  }
  Result<Endpoint> endpoint(const json::object& o, std::string_view k) const;
  Result<StreamRecord> stream(const json::object& o, std::string_view k) const;
  Result<SlotRecord> slot(const json::value& v) const;
  Result<LegRecord> leg(const json::value& v, size_t legs) const;
  Result<SessionRecord> session(const json::object& o) const;
};

Result<Endpoint> Reader::endpoint(const json::object& o, std::string_view k) const {
  auto v = field(o, k);
  if (!v) {
    return tl::unexpected(v.error());
  }
  if ((*v)->is_null()) {
    return Endpoint{};
  }
  const json::array* a = (*v)->if_array();
  if (a == nullptr || a->size() != 2 || !(*a)[0].is_string() || !(*a)[1].is_int64() ||
      (*a)[1].as_int64() < 0 || (*a)[1].as_int64() > 65535 || (*a)[0].as_string().size() > 64) {
    return makeError(Errc::kParse, fmt::format("field '{}': not [address, port]", k));
  }
  auto e = Endpoint::parse(std::string_view((*a)[0].as_string()),
                           static_cast<uint16_t>((*a)[1].as_int64()));
  if (!e) {
    return makeError(Errc::kParse, fmt::format("field '{}': {}", k, e.error().message));
  }
  return *e;
}

Result<StreamRecord> Reader::stream(const json::object& parent, std::string_view k) const {
  auto v = field(parent, k);
  if (!v) {
    return tl::unexpected(v.error());
  }
  auto o = object(**v, k);
  if (!o) {
    return tl::unexpected(o.error());
  }
  StreamRecord s;
  auto port = integer(**o, "p", 1, 65535);
  auto d = endpoint(**o, "d");
  auto sg = endpoint(**o, "sg");
  auto ad = endpoint(**o, "ad");
  auto sp = flag(**o, "sp");
  auto la = flag(**o, "la");
  for (const Error* e :
       {port ? nullptr : &port.error(), d ? nullptr : &d.error(), sg ? nullptr : &sg.error(),
        ad ? nullptr : &ad.error(), sp ? nullptr : &sp.error(), la ? nullptr : &la.error()}) {
    if (e != nullptr) {
      return tl::unexpected(*e);
    }
  }
  s.port = static_cast<uint16_t>(*port);
  s.destination = *d;
  s.signalled = *sg;
  s.advertised = *ad;
  s.signalledFromSip = *sp;
  s.latched = *la;
  return s;
}

Result<SlotRecord> Reader::slot(const json::value& v) const {
  auto o = object(v, "media slot");
  if (!o) {
    return tl::unexpected(o.error());
  }
  SlotRecord m;
  auto ty = text(**o, "ty");
  auto pr = text(**o, "pr");
  auto mx = flag(**o, "mx");
  auto rj = flag(**o, "rj");
  if (!ty || !pr || !mx || !rj) {
    return tl::unexpected(!ty ? ty.error() : !pr ? pr.error() : !mx ? mx.error() : rj.error());
  }
  m.type = std::move(*ty);
  m.protocol = std::move(*pr);
  m.rtcpMux = *mx;
  m.rejected = *rj;
  m.open = (*o)->contains("r");
  if (m.open) {
    auto rtp = stream(**o, "r");
    auto rtcp = rtp ? stream(**o, "rc") : Result<StreamRecord>(tl::unexpected(rtp.error()));
    if (!rtcp) {
      return tl::unexpected(rtcp.error());
    }
    m.rtp = *rtp;
    m.rtcp = *rtcp;
  }
  return m;
}

Result<LegRecord> Reader::leg(const json::value& v, size_t legs) const {
  auto o = object(v, "leg");
  if (!o) {
    return tl::unexpected(o.error());
  }
  LegRecord l;
  auto t = text(**o, "t");
  auto lb = text(**o, "lb");
  auto vb = text(**o, "vb");
  auto p = text(**o, "p");
  auto pe = integer(**o, "pe", -1, static_cast<int64_t>(legs) - 1);
  auto c = integer(**o, "c", 0, INT64_MAX);
  auto m = array(**o, "m", limits.maxStreams);
  if (!t || !lb || !vb || !p || !pe || !c || !m) {
    return tl::unexpected(!t    ? t.error()
                          : !lb ? lb.error()
                          : !vb ? vb.error()
                          : !p  ? p.error()
                          : !pe ? pe.error()
                          : !c  ? c.error()
                                : m.error());
  }
  if (p->find_first_not_of("ash") != std::string::npos) {
    return makeError(Errc::kParse, "field 'p': latch policy letters are a, s, h");
  }
  l.tag = std::move(*t);
  l.label = std::move(*lb);
  l.viaBranch = std::move(*vb);
  l.policy = {p->find('a') != std::string::npos, p->find('s') != std::string::npos,
              p->find('h') != std::string::npos};
  l.peer = static_cast<int32_t>(*pe);
  l.createdWall = *c;
  for (const auto& sv : **m) {
    auto s = slot(sv);
    if (!s) {
      return tl::unexpected(s.error());
    }
    l.media.push_back(std::move(*s));
  }
  return l;
}

Result<SessionRecord> Reader::session(const json::object& o) const {
  if (auto v = integer(o, "v", kVersion, kVersion); !v) {
    return tl::unexpected(v.error());
  }
  SessionRecord r;
  auto id = text(o, "id");
  auto a = text(o, "a");
  auto b = text(o, "b");
  auto c = integer(o, "c", 0, INT64_MAX);
  auto s = integer(o, "s", 0, INT64_MAX);
  auto l = array(o, "l", limits.maxLegs);
  if (!id || !a || !b || !c || !s || !l) {
    return tl::unexpected(!id  ? id.error()
                          : !a ? a.error()
                          : !b ? b.error()
                          : !c ? c.error()
                          : !s ? s.error()
                               : l.error());
  }
  if (id->empty()) {
    return makeError(Errc::kParse, "field 'id': empty Call-ID");
  }
  auto address = Endpoint::parse(*a, 0);
  auto bind = Endpoint::parse(*b, 0);
  if (!address || !bind || address->isUnspecified() || address->isV6() != bind->isV6()) {
    return makeError(Errc::kParse, "fields 'a'/'b': not addresses of one family");
  }
  r.callId = std::move(*id);
  r.address = address->address();
  r.bind = bind->address();
  r.createdWall = *c;
  r.lastSignalWall = *s;
  for (const auto& lv : **l) {
    auto leg = this->leg(lv, (*l)->size());
    if (!leg) {
      return tl::unexpected(leg.error());
    }
    r.legs.push_back(std::move(*leg));
  }
  return r;
}

}  // namespace

std::string encodeSessionRecord(const SessionRecord& r) {
  json::array legs;
  for (const auto& l : r.legs) {
    legs.emplace_back(legJson(l));
  }
  json::object o{{"v", kVersion},       {"id", r.callId},     {"a", r.address},
                 {"b", r.bind},         {"c", r.createdWall}, {"s", r.lastSignalWall},
                 {"l", std::move(legs)}};
  return json::serialize(o);
}

Result<SessionRecord> decodeSessionRecord(std::string_view text, const RecordLimits& limits) {
  if (text.size() > limits.maxBytes) {
    return makeError(Errc::kTooLarge,
                     "session record larger than " + std::to_string(limits.maxBytes) + " bytes");
  }
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 8;
  json::value v = json::parse(text, ec, {}, opts);
  if (ec) {
    return makeError(Errc::kParse, "session record: " + ec.message());
  }
  const json::object* o = v.if_object();
  if (o == nullptr) {
    return makeError(Errc::kParse, "session record: not an object");
  }
  Reader reader{limits};
  return reader.session(*o);
}

std::string encodeHeartbeat(const Heartbeat& hb) {
  if (hb.stopped) {
    return R"({"stopped":true})";
  }
  return json::serialize(json::object{{"by", hb.by}, {"a", hb.address}, {"ng", hb.ng}});
}

Result<Heartbeat> decodeHeartbeat(std::string_view text) {
  if (text.size() > 1024) {
    return makeError(Errc::kTooLarge, "heartbeat larger than 1024 bytes");
  }
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 2;
  json::value v = json::parse(text, ec, {}, opts);
  const json::object* o = ec ? nullptr : v.if_object();
  if (o == nullptr) {
    return makeError(Errc::kParse, "heartbeat: not a JSON object");
  }
  Heartbeat hb;
  if (const auto* s = o->if_contains("stopped"); s != nullptr && s->is_bool() && s->as_bool()) {
    hb.stopped = true;
    return hb;
  }
  const RecordLimits limits;
  Reader reader{limits};
  auto by = reader.text(*o, "by");
  auto a = reader.text(*o, "a");
  auto ng = reader.text(*o, "ng");
  if (!by || !a || !ng) {
    return tl::unexpected(!by ? by.error() : !a ? a.error() : ng.error());
  }
  auto address = Endpoint::parse(*a, 0);
  if (by->empty() || !address || address->isUnspecified() || ng->empty()) {
    return makeError(Errc::kParse, "heartbeat: empty instance, address or ng address");
  }
  hb.by = std::move(*by);
  hb.address = address->address();
  hb.ng = std::move(*ng);
  return hb;
}

}  // namespace evosip::media
