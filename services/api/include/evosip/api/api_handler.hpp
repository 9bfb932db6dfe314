#pragma once
// The REST/JSON API (services/api/README.md, docs/api/openapi.json), read top to bottom:
// route -> authorise -> parse and validate -> one or two store operations -> JSON answer ->
// (subscriber changed) invalidate the routers' cached credentials.
//
//   GET    /openapi.json
//   GET    /v1/domains?page=&per_page=            POST /v1/domains {"name"}
//   GET    /v1/domains/{name}                     DELETE /v1/domains/{name}
//   GET    /v1/subscribers?domain=&page=&per_page=
//   POST   /v1/subscribers {"domain","username","password"}
//   GET|PATCH|DELETE /v1/subscribers/{domain}/{username}     PATCH {"password"}
//   GET    /internal/v1/credentials/{domain}/{username}      (internal token)
//
// Passwords are turned into HA1-MD5 and HA1-SHA256 of user:domain:password at once and never
// stored, returned or logged.

#include <functional>
#include <string>

#include <evosip/api/provisioning_store.hpp>
#include <evosip/control/http_server.hpp>
#include <evosip/metrics/metrics.hpp>

namespace evosip::api {

struct ApiHandlerSettings {
  std::string token;          // "" -> the public API is open
  std::string internalToken;  // "" -> the credentials endpoint answers 403 to everyone
};

class ApiHandler {
 public:
  // onSubscriberChanged(domain, username) runs after a subscriber was created, changed or
  // deleted, before the client gets its answer; it must not block.
  using ChangeListener = std::function<void(const std::string&, const std::string&)>;

  ApiHandler(ApiHandlerSettings settings, ProvisioningStore& store, metrics::Registry& metrics,
             ChangeListener onSubscriberChanged);

  // The HttpServer handler: answers through respond, possibly on another thread.
  void handle(const control::HttpRequest& request, control::HttpServer::Respond respond);

 private:
  using Respond = control::HttpServer::Respond;

  void domains(const control::HttpRequest& req, const Respond& respond);
  void domain(const control::HttpRequest& req, const std::string& name, const Respond& respond);
  void subscribers(const control::HttpRequest& req, const Respond& respond);
  void listSubscribers(const control::HttpRequest& req, const Respond& respond);
  void createSubscriber(const control::HttpRequest& req, const Respond& respond);
  void subscriber(const control::HttpRequest& req, const std::string& domain,
                  const std::string& username, const Respond& respond);
  void credentials(const std::string& domain, const std::string& username, const Respond& respond);
  // /internal/v1/credentials/{domain}/{username}, behind its own token.
  void internalCredentials(const control::HttpRequest& req, const std::string& domain,
                           const std::string& username, const Respond& respond);

  ApiHandlerSettings settings_;
  ProvisioningStore& store_;
  prometheus::Family<prometheus::Counter>& requests_;
  ChangeListener onSubscriberChanged_;
};

// The OpenAPI 3 document served at /openapi.json: docs/api/openapi.json, embedded at build time.
std::string_view openApiDocument();

}  // namespace evosip::api
