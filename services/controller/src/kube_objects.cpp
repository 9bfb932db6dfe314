#include <chrono>
#include <ctime>

#include <boost/asio/ip/address.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/controller/kube_objects.hpp>

namespace evosip::controller {

namespace json = boost::json;

namespace {

tl::unexpected<Error> bad(std::string_view field, std::string_view what) {
  return makeError(Errc::kParse, fmt::format("{}: {}", field, what));
}

Result<json::object> parseObject(std::string_view text, size_t limit) {
  if (text.size() > limit) {
    return makeError(Errc::kTooLarge, fmt::format("document of {} bytes", text.size()));
  }
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 32;
  json::value v = json::parse(text, ec, {}, options);
  if (ec) {
    return bad("document", ec.message());
  }
  if (!v.is_object()) {
    return bad("document", "not a JSON object");
  }
  return std::move(v.get_object());
}

const json::object* objectAt(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr ? v->if_object() : nullptr;
}

// A string member: absent or null -> "", another type or too long -> error.
Result<std::string> stringAt(const json::object& o, std::string_view key, size_t limit) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) {
    return std::string();
  }
  if (!v->is_string()) {
    return bad(key, "not a string");
  }
  if (v->get_string().size() > limit) {
    return makeError(Errc::kTooLarge, fmt::format("{}: longer than {} bytes", key, limit));
  }
  return std::string(v->get_string());
}

// A boolean condition: absent or null -> def.
Result<bool> boolAt(const json::object& o, std::string_view key, bool def) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) {
    return def;
  }
  if (!v->is_bool()) {
    return bad(key, "not a boolean");
  }
  return v->get_bool();
}

Result<int64_t> intAt(const json::object& o, std::string_view key, int64_t min, int64_t max) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) {
    return min;
  }
  if (!v->is_int64() || v->get_int64() < min || v->get_int64() > max) {
    return bad(key, fmt::format("not an integer from {} to {}", min, max));
  }
  return v->get_int64();
}

Result<const json::array*> arrayAt(const json::object& o, std::string_view key, size_t limit) {
  static const json::array kEmpty;
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) {
    return &kEmpty;
  }
  if (!v->is_array()) {
    return bad(key, "not an array");
  }
  if (v->get_array().size() > limit) {
    return makeError(Errc::kTooLarge, fmt::format("{}: more than {} entries", key, limit));
  }
  return &v->get_array();
}

Result<std::string> resourceVersionOf(const json::object& o) {
  const json::object* meta = objectAt(o, "metadata");
  return meta != nullptr ? stringAt(*meta, "resourceVersion", kMaxNameBytes) : std::string();
}

Result<SliceEndpoint> parseEndpoint(const json::value& v) {
  const json::object* o = v.if_object();
  if (o == nullptr) {
    return bad("endpoints[]", "not an object");
  }
  SliceEndpoint e;
  auto addresses = arrayAt(*o, "addresses", kMaxAddressesPerEndpoint);
  if (!addresses) {
    return tl::unexpected(addresses.error());
  }
  for (const json::value& a : **addresses) {
    boost::system::error_code ec;
    const auto ip = a.is_string() ? boost::asio::ip::make_address(std::string(a.get_string()), ec)
                                  : boost::asio::ip::address();
    if (!a.is_string() || ec) {
      return bad("endpoints[].addresses[]", "not a numeric IP address");
    }
    e.addresses.push_back(ip.to_string());
  }
  static const json::object kNone;
  const json::object* conditions = objectAt(*o, "conditions");
  const json::object& c = conditions != nullptr ? *conditions : kNone;
  auto ready = boolAt(c, "ready", true);
  auto serving = ready ? boolAt(c, "serving", *ready) : ready;
  auto terminating = boolAt(c, "terminating", false);
  if (!ready || !serving || !terminating) {
    return tl::unexpected(!ready     ? ready.error()
                          : !serving ? serving.error()
                                     : terminating.error());
  }
  e.ready = *ready;
  e.serving = *serving;
  e.terminating = *terminating;
  return e;
}

Result<std::map<std::string, uint16_t>> parsePorts(const json::object& slice) {
  auto ports = arrayAt(slice, "ports", kMaxPortsPerSlice);
  if (!ports) {
    return tl::unexpected(ports.error());
  }
  std::map<std::string, uint16_t> out;
  for (const json::value& p : **ports) {
    const json::object* o = p.if_object();
    if (o == nullptr) {
      return bad("ports[]", "not an object");
    }
    auto name = stringAt(*o, "name", kMaxNameBytes);
    auto port = intAt(*o, "port", 0, 65535);
    if (!name || !port) {
      return tl::unexpected(!name ? name.error() : port.error());
    }
    if (!name->empty() && *port != 0) {
      out[*name] = static_cast<uint16_t>(*port);
    }
  }
  return out;
}

Result<EndpointSlice> parseSlice(const json::object& o) {
  EndpointSlice s;
  const json::object* meta = objectAt(o, "metadata");
  if (meta == nullptr) {
    return bad("metadata", "missing");
  }
  auto name = stringAt(*meta, "name", kMaxNameBytes);
  if (!name || name->empty()) {
    return name ? bad("metadata.name", "missing") : tl::unexpected(name.error());
  }
  s.name = std::move(*name);
  if (const json::object* labels = objectAt(*meta, "labels")) {
    auto service = stringAt(*labels, "kubernetes.io/service-name", kMaxNameBytes);
    if (!service) {
      return tl::unexpected(service.error());
    }
    s.service = std::move(*service);
  }
  auto ports = parsePorts(o);
  auto endpoints = arrayAt(o, "endpoints", kMaxEndpointsPerSlice);
  if (!ports || !endpoints) {
    return tl::unexpected(!ports ? ports.error() : endpoints.error());
  }
  s.ports = std::move(*ports);
  for (const json::value& e : **endpoints) {
    auto endpoint = parseEndpoint(e);
    if (!endpoint) {
      return tl::unexpected(endpoint.error());
    }
    s.endpoints.push_back(std::move(*endpoint));
  }
  return s;
}

Status statusFrom(const json::object& o) {
  Status s;
  const json::value* code = o.if_contains("code");
  s.code = code != nullptr && code->is_int64() && code->get_int64() >= 0 && code->get_int64() < 1000
               ? static_cast<int>(code->get_int64())
               : 0;
  s.reason = stringAt(o, "reason", 256).value_or("");
  s.message = stringAt(o, "message", 1024).value_or("");
  return s;
}

Result<WatchEventType> eventType(const json::object& o) {
  auto type = stringAt(o, "type", 16);
  if (!type) {
    return tl::unexpected(type.error());
  }
  static const std::pair<std::string_view, WatchEventType> kTypes[] = {
      {"ADDED", WatchEventType::kAdded},
      {"MODIFIED", WatchEventType::kModified},
      {"DELETED", WatchEventType::kDeleted},
      {"BOOKMARK", WatchEventType::kBookmark},
      {"ERROR", WatchEventType::kError}};
  for (const auto& [name, value] : kTypes) {
    if (*type == name) {
      return value;
    }
  }
  return bad("type", "not a watch event type");
}

}  // namespace

Result<SliceList> parseSliceList(std::string_view text) {
  auto doc = parseObject(text, kMaxListBytes);
  if (!doc) {
    return tl::unexpected(doc.error());
  }
  SliceList list;
  auto version = resourceVersionOf(*doc);
  const json::object* meta = objectAt(*doc, "metadata");
  auto next = meta != nullptr ? stringAt(*meta, "continue", 4096) : std::string();
  auto items = arrayAt(*doc, "items", kMaxSlicesPerList);
  if (!version || !next || !items) {
    return tl::unexpected(!version ? version.error() : !next ? next.error() : items.error());
  }
  list.resourceVersion = std::move(*version);
  list.continueToken = std::move(*next);
  for (const json::value& item : **items) {
    const json::object* o = item.if_object();
    auto slice = o != nullptr ? parseSlice(*o) : bad("items[]", "not an object");
    if (!slice) {
      return tl::unexpected(slice.error());
    }
    list.items.push_back(std::move(*slice));
  }
  return list;
}

Result<WatchEvent> parseWatchEvent(std::string_view text) {
  auto doc = parseObject(text, kMaxEventBytes);
  if (!doc) {
    return tl::unexpected(doc.error());
  }
  auto type = eventType(*doc);
  const json::object* object = objectAt(*doc, "object");
  if (!type || object == nullptr) {
    return type ? bad("object", "missing") : tl::unexpected(type.error());
  }
  WatchEvent event;
  event.type = *type;
  if (event.type == WatchEventType::kError) {
    Status s = statusFrom(*object);
    event.errorCode = s.code;
    event.errorMessage = std::move(s.message);
    return event;
  }
  auto version = resourceVersionOf(*object);
  if (!version) {
    return tl::unexpected(version.error());
  }
  event.resourceVersion = std::move(*version);
  if (event.type != WatchEventType::kBookmark) {
    auto slice = parseSlice(*object);
    if (!slice) {
      return tl::unexpected(slice.error());
    }
    event.slice = std::move(*slice);
  }
  return event;
}

Result<Status> parseStatus(std::string_view text) {
  auto doc = parseObject(text, kMaxEventBytes);
  if (!doc) {
    return tl::unexpected(doc.error());
  }
  return statusFrom(*doc);
}

Result<Lease> parseLease(std::string_view text) {
  auto doc = parseObject(text, kMaxEventBytes);
  if (!doc) {
    return tl::unexpected(doc.error());
  }
  Lease lease;
  auto version = resourceVersionOf(*doc);
  static const json::object kNone;
  const json::object* specPtr = objectAt(*doc, "spec");
  const json::object& spec = specPtr != nullptr ? *specPtr : kNone;
  auto holder = stringAt(spec, "holderIdentity", kMaxNameBytes);
  auto duration = intAt(spec, "leaseDurationSeconds", 0, 86400);
  auto renew = stringAt(spec, "renewTime", 64);
  auto transitions = intAt(spec, "leaseTransitions", 0, INT32_MAX);
  if (!version || !holder || !duration || !renew || !transitions) {
    return bad("lease", "malformed metadata or spec");
  }
  lease.resourceVersion = std::move(*version);
  lease.holder = std::move(*holder);
  lease.durationS = static_cast<int>(*duration);
  lease.renewTime = std::move(*renew);
  lease.transitions = static_cast<int>(*transitions);
  return lease;
}

std::string leaseJson(const std::string& name, const std::string& ns, const Lease& lease,
                      const std::string& nowMicroTime) {
  json::object meta{{"name", name}, {"namespace", ns}};
  if (!lease.resourceVersion.empty()) {
    meta["resourceVersion"] = lease.resourceVersion;
  }
  json::object spec{{"holderIdentity", lease.holder},
                    {"leaseDurationSeconds", lease.durationS},
                    {"renewTime", nowMicroTime},
                    {"leaseTransitions", lease.transitions}};
  return json::serialize(json::object{{"apiVersion", "coordination.k8s.io/v1"},
                                      {"kind", "Lease"},
                                      {"metadata", std::move(meta)},
                                      {"spec", std::move(spec)}});
}

std::string microTimeNow() {
  const auto now = std::chrono::system_clock::now();
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us % 1000000);
}

}  // namespace evosip::controller
