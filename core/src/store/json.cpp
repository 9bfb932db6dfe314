#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include <boost/json.hpp>

#include <evosip/store/json.hpp>

namespace evosip::store {

namespace json = boost::json;

namespace {

json::array toArray(const RouteSet& routes) {
  json::array a;
  a.reserve(routes.size());
  for (const auto& r : routes) {
    a.emplace_back(r);
  }
  return a;
}

int64_t millis(TimePoint t) {
  return t.time_since_epoch().count();
}

// Reads the fields of one object; the first problem is kept and reported.
class Reader {
 public:
  explicit Reader(const json::object& o) : o_(o) {}

  void string(const char* key, std::string& out, bool required = false) {
    const json::value* v = o_.if_contains(key);
    if (v == nullptr) {
      missing(key, required);
      return;
    }
    if (!v->is_string()) {
      fail(key);
      return;
    }
    out.assign(v->get_string().data(), v->get_string().size());
  }

  void time(const char* key, TimePoint& out, bool required = false) {
    int64_t ms = 0;
    if (integer(key, ms, std::numeric_limits<int64_t>::min(), required)) {
      out = TimePoint(std::chrono::milliseconds(ms));
    }
  }

  template <typename U>
  bool unsignedInt(const char* key, U& out, bool required = false) {
    int64_t n = 0;
    if (!integer(key, n, 0, required)) {
      return false;
    }
    if (static_cast<uint64_t>(n) > std::numeric_limits<U>::max()) {
      fail(key);
      return false;
    }
    out = static_cast<U>(n);
    return true;
  }

  void number(const char* key, double& out) {
    const json::value* v = o_.if_contains(key);
    if (v == nullptr) {
      return;
    }
    if (v->is_double()) {
      out = v->get_double();
    } else if (v->is_int64()) {
      out = static_cast<double>(v->get_int64());
    } else if (v->is_uint64()) {
      out = static_cast<double>(v->get_uint64());
    } else {
      fail(key);
    }
  }

  void routes(const char* key, RouteSet& out) {
    const json::value* v = o_.if_contains(key);
    if (v == nullptr) {
      return;
    }
    if (!v->is_array()) {
      fail(key);
      return;
    }
    for (const auto& e : v->get_array()) {
      if (!e.is_string()) {
        fail(key);
        return;
      }
      out.emplace_back(e.get_string().data(), e.get_string().size());
    }
  }

  const json::value* find(const char* key) const { return o_.if_contains(key); }
  void fail(const char* key) {
    if (bad_.empty()) {
      bad_ = key;
    }
  }
  Result<void> result(const char* what) const {
    if (bad_.empty()) {
      return {};
    }
    return makeError(Errc::kParse, std::string(what) + ": bad or missing field '" + bad_ + "'");
  }

 private:
  bool integer(const char* key, int64_t& out, int64_t min, bool required) {
    const json::value* v = o_.if_contains(key);
    if (v == nullptr) {
      missing(key, required);
      return false;
    }
    if (v->is_int64()) {
      out = v->get_int64();
    } else if (v->is_uint64() && v->get_uint64() <= uint64_t(std::numeric_limits<int64_t>::max())) {
      out = static_cast<int64_t>(v->get_uint64());
    } else {
      fail(key);
      return false;
    }
    if (out < min) {
      fail(key);
      return false;
    }
    return true;
  }
  void missing(const char* key, bool required) {
    if (required) {
      fail(key);
    }
  }

  const json::object& o_;
  std::string bad_;
};

Result<const json::object*> parseObject(std::string_view text, json::value& holder,
                                        const char* what) {
  boost::system::error_code ec;
  holder = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) {
    return makeError(Errc::kParse, std::string(what) + ": " + ec.message());
  }
  if (!holder.is_object()) {
    return makeError(Errc::kParse, std::string(what) + ": not a JSON object");
  }
  return &holder.get_object();
}

}  // namespace

std::string toJson(const Binding& b) {
  json::object o;
  o["aor"] = b.aor;
  o["contact"] = b.contact;
  if (!b.path.empty()) {
    o["path"] = toArray(b.path);
  }
  o["expires"] = millis(b.expires);
  o["q"] = b.q;
  o["callId"] = b.callId;
  o["cseq"] = b.cseq;
  if (!b.instanceId.empty()) {
    o["instance"] = b.instanceId;
  }
  if (b.regId) {
    o["regId"] = *b.regId;
  }
  if (!b.received.empty()) {
    o["received"] = b.received;
  }
  if (!b.userAgent.empty()) {
    o["userAgent"] = b.userAgent;
  }
  if (!b.router.empty()) {
    o["router"] = b.router;
  }
  return json::serialize(o);
}

Result<Binding> bindingFromJson(std::string_view text) {
  json::value holder;
  auto obj = parseObject(text, holder, "binding");
  if (!obj) {
    return tl::unexpected(obj.error());
  }
  Reader r(**obj);
  Binding b;
  r.string("aor", b.aor, true);
  r.string("contact", b.contact, true);
  r.routes("path", b.path);
  r.time("expires", b.expires, true);
  r.number("q", b.q);
  r.string("callId", b.callId);
  r.unsignedInt("cseq", b.cseq);
  r.string("instance", b.instanceId);
  if (r.find("regId") != nullptr) {
    uint32_t regId = 0;
    if (r.unsignedInt("regId", regId, true)) {
      b.regId = regId;
    }
  }
  r.string("received", b.received);
  r.string("userAgent", b.userAgent);
  r.string("router", b.router);
  if (auto ok = r.result("binding"); !ok) {
    return tl::unexpected(ok.error());
  }
  return b;
}

std::string toJson(const DialogRecord& d) {
  json::object o;
  o["callId"] = d.id.callId;
  o["fromTag"] = d.id.fromTag;
  o["toTag"] = d.id.toTag;
  o["callerRouteSet"] = toArray(d.callerRouteSet);
  o["calleeRouteSet"] = toArray(d.calleeRouteSet);
  o["callerContact"] = d.callerContact;
  o["calleeContact"] = d.calleeContact;
  o["callerCseq"] = d.callerCseq;
  o["calleeCseq"] = d.calleeCseq;
  o["owner"] = d.owner;
  o["created"] = millis(d.created);
  o["expires"] = millis(d.expires);
  if (!d.mediaRelay.empty()) {
    o["mediaRelay"] = d.mediaRelay;
  }
  return json::serialize(o);
}

Result<DialogRecord> dialogFromJson(std::string_view text) {
  json::value holder;
  auto obj = parseObject(text, holder, "dialog");
  if (!obj) {
    return tl::unexpected(obj.error());
  }
  Reader r(**obj);
  DialogRecord d;
  r.string("callId", d.id.callId, true);
  r.string("fromTag", d.id.fromTag, true);
  r.string("toTag", d.id.toTag, true);
  r.routes("callerRouteSet", d.callerRouteSet);
  r.routes("calleeRouteSet", d.calleeRouteSet);
  r.string("callerContact", d.callerContact);
  r.string("calleeContact", d.calleeContact);
  r.unsignedInt("callerCseq", d.callerCseq);
  r.unsignedInt("calleeCseq", d.calleeCseq);
  r.string("owner", d.owner);
  r.time("created", d.created);
  r.time("expires", d.expires, true);
  r.string("mediaRelay", d.mediaRelay);
  if (auto ok = r.result("dialog"); !ok) {
    return tl::unexpected(ok.error());
  }
  return d;
}

}  // namespace evosip::store
