#include <chrono>
#include <ctime>

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>

#include <evosip/api/api_handler.hpp>
#include <evosip/api/validation.hpp>
#include <evosip/auth/digest.hpp>
#include <evosip/log/log.hpp>

namespace evosip::api {

namespace json = boost::json;
using control::HttpRequest;
using control::HttpResponse;

namespace {

constexpr std::string_view kJson = "application/json";

HttpResponse jsonResponse(unsigned status, const json::value& body) {
  return control::makeHttpResponse(status, json::serialize(body), kJson);
}

HttpResponse errorResponse(unsigned status, std::string_view message, std::string_view field = "") {
  json::object body{{"error", message}};
  if (!field.empty()) {
    body["field"] = field;
  }
  return jsonResponse(status, body);
}

HttpResponse fieldError(const FieldError& e) {
  return errorResponse(400, e.message, e.field);
}

HttpResponse methodNotAllowed(std::string_view allow) {
  HttpResponse res = errorResponse(405, fmt::format("method not allowed; use {}", allow));
  res.headers.emplace_back("Allow", std::string(allow));
  return res;
}

// The answer to a failed store operation; notFound names what was missing.
HttpResponse storeFailure(const StoreError& e, std::string_view notFound,
                          std::string_view conflict = "already exists",
                          std::string_view conflictField = "") {
  switch (e.code) {
    case StoreErrc::kNotFound:
      return errorResponse(404, notFound);
    case StoreErrc::kDomainNotFound:
      return errorResponse(404, "domain not found", "domain");
    case StoreErrc::kConflict:
      return errorResponse(409, conflict, conflictField);
    case StoreErrc::kUnavailable:
      return errorResponse(503, "database unavailable");
    case StoreErrc::kFailed:
      break;
  }
  return errorResponse(500, "database error");
}

// RFC 3339 UTC with milliseconds: "2026-01-31T12:00:00.123Z".
std::string nowUtc() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

// The request body as a JSON object whose members are all in allowed; otherwise the 400 to send.
tl::expected<json::object, HttpResponse> parseBody(
    const HttpRequest& req, std::initializer_list<std::string_view> allowed) {
  boost::system::error_code ec;
  json::value body = json::parse(req.body, ec);
  if (ec) {
    return tl::unexpected(errorResponse(400, "the body is not valid JSON: " + ec.message()));
  }
  if (!body.is_object()) {
    return tl::unexpected(errorResponse(400, "the body must be a JSON object"));
  }
  for (const auto& member : body.get_object()) {
    bool known = false;
    for (auto name : allowed) {
      known = known || member.key() == name;
    }
    if (!known) {
      const std::string key(member.key());
      return tl::unexpected(errorResponse(400, key + ": unknown field", key));
    }
  }
  return std::move(body.get_object());
}

// A required string member of body, or the 400 that names it.
tl::expected<std::string, HttpResponse> stringField(const json::object& body,
                                                    std::string_view name) {
  const json::value* v = body.if_contains(name);
  if (v == nullptr) {
    return tl::unexpected(errorResponse(400, std::string(name) + ": required", name));
  }
  if (!v->is_string()) {
    return tl::unexpected(errorResponse(400, std::string(name) + ": must be a string", name));
  }
  return std::string(v->get_string());
}

json::object domainJson(const DomainRecord& d) {
  return json::object{{"name", d.name}, {"created_at", d.createdAt}};
}

// Never includes the HA1 values: the public API does not hand out credentials.
json::object subscriberJson(const SubscriberRecord& s) {
  return json::object{{"domain", s.domain},
                      {"username", s.username},
                      {"created_at", s.createdAt},
                      {"updated_at", s.updatedAt}};
}

template <typename T, typename ToJson>
json::object pageJson(const Page<T>& page, const Paging& paging, ToJson toJson) {
  json::array items;
  for (const auto& item : page.items) {
    items.push_back(toJson(item));
  }
  return json::object{{"items", std::move(items)},
                      {"page", paging.page},
                      {"per_page", paging.perPage},
                      {"total", page.total}};
}

struct Query {
  std::string domain, page, perPage;
};

}  // namespace

ApiHandler::ApiHandler(ApiHandlerSettings settings, ProvisioningStore& store,
                       metrics::Registry& metrics, ChangeListener onSubscriberChanged)
    : settings_(std::move(settings)),
      store_(store),
      requests_(metrics.counterFamily("evosip_api_requests_total",
                                      "API requests answered, by route, method and status")),
      onSubscriberChanged_(std::move(onSubscriberChanged)) {}

namespace {

// Whether the path is `prefix` followed by non-empty segments, `size` in all.
bool pathIs(const std::vector<std::string>& segments,
            std::initializer_list<std::string_view> prefix, size_t size) {
  const size_t n = segments.size();
  if (n != size || prefix.size() > n) {
    return false;
  }
  size_t i = 0;
  for (auto p : prefix) {
    if (segments[i++] != p) {
      return false;
    }
  }
  for (size_t j = prefix.size(); j < n; ++j) {
    if (segments[j].empty()) {
      return false;
    }
  }
  return true;
}

// The route template a path matches (the label of the request counter), "other" for none.
std::string routeOf(const std::vector<std::string>& segments) {
  if (pathIs(segments, {"openapi.json"}, 1)) {
    return "/openapi.json";
  }
  if (pathIs(segments, {"v1", "domains"}, 2)) {
    return "/v1/domains";
  }
  if (pathIs(segments, {"v1", "domains"}, 3)) {
    return "/v1/domains/{name}";
  }
  if (pathIs(segments, {"v1", "subscribers"}, 2)) {
    return "/v1/subscribers";
  }
  if (pathIs(segments, {"v1", "subscribers"}, 4)) {
    return "/v1/subscribers/{domain}/{username}";
  }
  if (pathIs(segments, {"internal", "v1", "credentials"}, 5)) {
    return "/internal/v1/credentials/{domain}/{username}";
  }
  return "other";
}

}  // namespace

void ApiHandler::handle(const HttpRequest& req, Respond respond) {
  auto target = boost::urls::parse_origin_form(req.target);
  std::vector<std::string> segments;
  if (target) {
    for (auto segment : target->segments()) {
      segments.push_back(segment);
    }
  }
  const std::string route = routeOf(segments);
  // Every answer is counted by route, method and status.
  const std::string method = (req.method == "GET" || req.method == "POST" ||
                              req.method == "PATCH" || req.method == "DELETE")
                                 ? req.method
                                 : "other";
  Respond answer = [this, route, method, respond = std::move(respond)](HttpResponse res) {
    requests_.Add({{"route", route}, {"method", method}, {"status", std::to_string(res.status)}})
        .Increment();
    respond(std::move(res));
  };

  if (!target) {
    answer(errorResponse(400, "malformed request target"));
    return;
  }
  if (route == "other") {
    answer(errorResponse(404, "no such resource"));
    return;
  }
  if (route == "/openapi.json") {
    if (req.method != "GET") {
      answer(methodNotAllowed("GET"));
      return;
    }
    answer(control::makeHttpResponse(200, std::string(openApiDocument()), kJson));
    return;
  }
  if (segments[0] == "internal") {
    internalCredentials(req, segments[3], segments[4], answer);
    return;
  }
  if (!control::bearerTokenMatches(req, settings_.token)) {
    answer(control::unauthorizedResponse(req));
    return;
  }
  if (route == "/v1/domains") {
    domains(req, answer);
  } else if (route == "/v1/domains/{name}") {
    domain(req, segments[2], answer);
  } else if (route == "/v1/subscribers") {
    subscribers(req, answer);
  } else {
    subscriber(req, segments[2], segments[3], answer);
  }
}

void ApiHandler::internalCredentials(const HttpRequest& req, const std::string& domain,
                                     const std::string& username, const Respond& answer) {
  // HA1 values are as good as passwords: never served without a token of their own.
  if (settings_.internalToken.empty()) {
    answer(errorResponse(403, "forbidden"));
    return;
  }
  if (!control::bearerTokenMatches(req, settings_.internalToken)) {
    answer(control::unauthorizedResponse(req));
    return;
  }
  if (req.method != "GET") {
    answer(methodNotAllowed("GET"));
    return;
  }
  credentials(domain, username, answer);
}

namespace {

Query readQuery(const HttpRequest& req) {
  Query q;
  auto target = boost::urls::parse_origin_form(req.target);
  if (!target) {
    return q;
  }
  for (auto param : target->params()) {
    if (param.key == "domain") {
      q.domain = param.value;
    } else if (param.key == "page") {
      q.page = param.value;
    } else if (param.key == "per_page") {
      q.perPage = param.value;
    }
  }
  return q;
}

}  // namespace

void ApiHandler::domains(const HttpRequest& req, const Respond& respond) {
  if (req.method == "GET") {
    const Query q = readQuery(req);
    auto paging = parsePaging(q.page, q.perPage);
    if (!paging) {
      respond(fieldError(paging.error()));
      return;
    }
    store_.listDomains(paging->offset(), paging->perPage,
                       [respond, paging = *paging](tl::expected<Page<DomainRecord>, StoreError> r) {
                         if (!r) {
                           respond(storeFailure(r.error(), "not found"));
                           return;
                         }
                         respond(jsonResponse(200, pageJson(*r, paging, domainJson)));
                       });
    return;
  }
  if (req.method != "POST") {
    respond(methodNotAllowed("GET, POST"));
    return;
  }
  auto body = parseBody(req, {"name"});
  if (!body) {
    respond(body.error());
    return;
  }
  auto raw = stringField(*body, "name");
  if (!raw) {
    respond(raw.error());
    return;
  }
  auto name = normalizeDomain(*raw, "name");
  if (!name) {
    respond(fieldError(name.error()));
    return;
  }
  DomainRecord record{*name, nowUtc()};
  store_.createDomain(record, [respond, record](tl::expected<Done, StoreError> r) {
    if (!r) {
      respond(storeFailure(r.error(), "not found", "domain already exists", "name"));
      return;
    }
    log::get("api")->info("domain {} created", record.name);
    HttpResponse res = jsonResponse(201, domainJson(record));
    res.headers.emplace_back("Location", "/v1/domains/" + record.name);
    respond(std::move(res));
  });
}

void ApiHandler::domain(const HttpRequest& req, const std::string& rawName,
                        const Respond& respond) {
  if (req.method != "GET" && req.method != "DELETE") {
    respond(methodNotAllowed("GET, DELETE"));
    return;
  }
  auto name = normalizeDomain(rawName, "name");
  if (!name) {
    respond(errorResponse(404, "domain not found"));
    return;
  }
  if (req.method == "GET") {
    store_.getDomain(*name, [respond](tl::expected<DomainRecord, StoreError> r) {
      if (!r) {
        respond(storeFailure(r.error(), "domain not found"));
        return;
      }
      respond(jsonResponse(200, domainJson(*r)));
    });
    return;
  }
  store_.deleteDomain(*name, [respond, name = *name](tl::expected<Done, StoreError> r) {
    if (!r) {
      respond(storeFailure(r.error(), "domain not found",
                           "the domain still has subscribers: delete them first", "name"));
      return;
    }
    log::get("api")->info("domain {} deleted", name);
    respond(control::makeHttpResponse(204, "", ""));
  });
}

void ApiHandler::subscribers(const HttpRequest& req, const Respond& respond) {
  if (req.method == "GET") {
    listSubscribers(req, respond);
    return;
  }
  if (req.method != "POST") {
    respond(methodNotAllowed("GET, POST"));
    return;
  }
  createSubscriber(req, respond);
}

void ApiHandler::listSubscribers(const HttpRequest& req, const Respond& respond) {
  const Query q = readQuery(req);
  auto paging = parsePaging(q.page, q.perPage);
  if (!paging) {
    respond(fieldError(paging.error()));
    return;
  }
  std::string domain;
  if (!q.domain.empty()) {
    auto normalized = normalizeDomain(q.domain, "domain");
    if (!normalized) {
      respond(fieldError(normalized.error()));
      return;
    }
    domain = *normalized;
  }
  store_.listSubscribers(
      domain, paging->offset(), paging->perPage,
      [respond, paging = *paging](tl::expected<Page<SubscriberRecord>, StoreError> r) {
        if (!r) {
          respond(storeFailure(r.error(), "domain not found"));
          return;
        }
        respond(jsonResponse(200, pageJson(*r, paging, subscriberJson)));
      });
}

void ApiHandler::createSubscriber(const HttpRequest& req, const Respond& respond) {
  auto body = parseBody(req, {"domain", "username", "password"});
  if (!body) {
    respond(body.error());
    return;
  }
  auto rawDomain = stringField(*body, "domain");
  if (!rawDomain) {
    respond(rawDomain.error());
    return;
  }
  auto domain = normalizeDomain(*rawDomain, "domain");
  if (!domain) {
    respond(fieldError(domain.error()));
    return;
  }
  auto rawUser = stringField(*body, "username");
  if (!rawUser) {
    respond(rawUser.error());
    return;
  }
  auto username = validateUsername(*rawUser);
  if (!username) {
    respond(fieldError(username.error()));
    return;
  }
  auto rawPassword = stringField(*body, "password");
  if (!rawPassword) {
    respond(rawPassword.error());
    return;
  }
  auto password = validatePassword(*rawPassword);
  if (!password) {
    respond(fieldError(password.error()));
    return;
  }
  const std::string now = nowUtc();
  SubscriberRecord record{
      *domain,
      *username,
      auth::computeHa1(auth::DigestAlgorithm::kMd5, *username, *domain, *password),
      auth::computeHa1(auth::DigestAlgorithm::kSha256, *username, *domain, *password),
      now,
      now};
  store_.createSubscriber(record, [this, respond, record](tl::expected<Done, StoreError> r) {
    if (!r) {
      respond(storeFailure(r.error(), "not found", "subscriber already exists", "username"));
      return;
    }
    log::get("api")->info("subscriber {}@{} created", record.username, record.domain);
    // A router may hold a negative answer for this user.
    onSubscriberChanged_(record.domain, record.username);
    HttpResponse res = jsonResponse(201, subscriberJson(record));
    res.headers.emplace_back("Location",
                             "/v1/subscribers/" + record.domain + "/" + record.username);
    respond(std::move(res));
  });
}

void ApiHandler::subscriber(const HttpRequest& req, const std::string& rawDomain,
                            const std::string& rawUser, const Respond& respond) {
  if (req.method != "GET" && req.method != "PATCH" && req.method != "DELETE") {
    respond(methodNotAllowed("GET, PATCH, DELETE"));
    return;
  }
  auto domain = normalizeDomain(rawDomain, "domain");
  auto username = validateUsername(rawUser);
  if (!domain || !username) {
    respond(errorResponse(404, "subscriber not found"));
    return;
  }
  if (req.method == "GET") {
    store_.getSubscriber(*domain, *username,
                         [respond](tl::expected<SubscriberRecord, StoreError> r) {
                           if (!r) {
                             respond(storeFailure(r.error(), "subscriber not found"));
                             return;
                           }
                           respond(jsonResponse(200, subscriberJson(*r)));
                         });
    return;
  }
  if (req.method == "DELETE") {
    store_.deleteSubscriber(
        *domain, *username,
        [this, respond, domain = *domain, username = *username](tl::expected<Done, StoreError> r) {
          if (!r) {
            respond(storeFailure(r.error(), "subscriber not found"));
            return;
          }
          log::get("api")->info("subscriber {}@{} deleted", username, domain);
          onSubscriberChanged_(domain, username);
          respond(control::makeHttpResponse(204, "", ""));
        });
    return;
  }
  // PATCH: the password is the one thing a subscriber has to change.
  auto body = parseBody(req, {"password"});
  if (!body) {
    respond(body.error());
    return;
  }
  auto rawPassword = stringField(*body, "password");
  if (!rawPassword) {
    respond(rawPassword.error());
    return;
  }
  auto password = validatePassword(*rawPassword);
  if (!password) {
    respond(fieldError(password.error()));
    return;
  }
  const std::string ha1Md5 =
      auth::computeHa1(auth::DigestAlgorithm::kMd5, *username, *domain, *password);
  const std::string ha1Sha256 =
      auth::computeHa1(auth::DigestAlgorithm::kSha256, *username, *domain, *password);
  store_.updateCredentials(
      *domain, *username, ha1Md5, ha1Sha256, nowUtc(),
      [this, respond, domain = *domain, username = *username](tl::expected<Done, StoreError> r) {
        if (!r) {
          respond(storeFailure(r.error(), "subscriber not found"));
          return;
        }
        log::get("api")->info("subscriber {}@{}: password changed", username, domain);
        onSubscriberChanged_(domain, username);
        // Answer with the stored state (timestamps included).
        store_.getSubscriber(domain, username,
                             [respond](tl::expected<SubscriberRecord, StoreError> s) {
                               if (!s) {
                                 respond(storeFailure(s.error(), "subscriber not found"));
                                 return;
                               }
                               respond(jsonResponse(200, subscriberJson(*s)));
                             });
      });
}

void ApiHandler::credentials(const std::string& rawDomain, const std::string& rawUser,
                             const Respond& respond) {
  auto domain = normalizeDomain(rawDomain, "domain");
  auto username = validateUsername(rawUser);
  if (!domain || !username) {
    respond(errorResponse(404, "subscriber not found"));
    return;
  }
  store_.getSubscriber(*domain, *username, [respond](tl::expected<SubscriberRecord, StoreError> r) {
    if (!r) {
      respond(storeFailure(r.error(), "subscriber not found"));
      return;
    }
    HttpResponse res =
        jsonResponse(200, json::object{{"ha1_md5", r->ha1Md5}, {"ha1_sha256", r->ha1Sha256}});
    res.headers.emplace_back("Cache-Control", "no-store");
    respond(std::move(res));
  });
}

}  // namespace evosip::api
