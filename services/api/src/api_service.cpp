#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/api/api_handler.hpp>
#include <evosip/api/api_service.hpp>
#include <evosip/api/database.hpp>
#include <evosip/api/invalidator.hpp>
#include <evosip/api/provisioning_store.hpp>
#include <evosip/control/client.hpp>
#include <evosip/control/http_server.hpp>
#include <evosip/runtime/worker_pool.hpp>

namespace evosip::api {

namespace json = boost::json;

ApiConfig readApiConfig(config::Document& doc) {
  ApiConfig c;
  c.common = role::readCommonWithoutSip(doc, "127.0.0.1:8081", kDrainIdleS);
  ApiSettings& a = c.api;
  a.listen = doc.getString("api.listen", a.listen);
  if (auto address = control::splitHostPort(a.listen); !address) {
    throw config::ConfigError("api.listen: '" + a.listen + "': " + address.error());
  }
  a.database = config::readSecret(doc.getString("api.database", a.database));
  auto sqlite = sqlitePathFromUrl(a.database);
  if (!sqlite) {
    throw config::ConfigError("api.database: " + sqlite.error());
  }
  if (!*sqlite && !isPostgresUrl(a.database)) {
    throw config::ConfigError("api.database: '" + redactDatabaseUrl(a.database) +
                              "': use sqlite:///path/evosip.db or postgresql://user@host:port/db");
  }
  a.token = config::readSecret(doc.getString("api.token", ""));
  if (a.token.empty() && !control::isLoopbackListen(a.listen)) {
    throw config::ConfigError(
        fmt::format("api.token is required when api.listen is not loopback ('{}')", a.listen));
  }
  a.internalToken = config::readSecret(doc.getString("api.internal_token", ""));
  a.maxConnectionsPerSource = static_cast<std::size_t>(
      doc.getInt("api.max_connections_per_source", static_cast<int64_t>(a.maxConnectionsPerSource),
                 1, 100000));
  a.routers = doc.getList("api.routers", {});
  for (const auto& router : a.routers) {
    if (auto ok = Invalidator::checkAddress(router); !ok) {
      throw config::ConfigError("api.routers: " + ok.error());
    }
  }
  a.routerToken = config::readSecret(doc.getString("api.router_token", ""));
  a.routerTimeout = std::chrono::milliseconds(doc.getInt("api.router_timeout_ms", 2000, 10, 60000));
  doc.checkUnknownKeys();
  return c;
}

struct ApiService::Impl {
  // Worker 0 runs the PostgreSQL connection and the router calls; the blocking pool runs SQLite.
  explicit Impl(ApiConfig c)
      : config(std::move(c)),
        host("api", config.common, 1, 2),
        pool(host.pool()),
        logger(host.logger()),
        metrics(host.metrics()),
        rpc(host.rpc()) {}

  ApiConfig config;
  role::Host host;
  runtime::WorkerPool& pool;
  std::shared_ptr<spdlog::logger> logger;
  metrics::Registry& metrics;
  control::RpcRegistry& rpc;
  std::unique_ptr<Database> db;
  std::unique_ptr<ProvisioningStore> store;
  std::unique_ptr<Invalidator> invalidator;
  std::unique_ptr<ApiHandler> handler;
  std::unique_ptr<control::HttpServer> http;
  // REST requests received, and those not answered yet (the drain waits for them).
  std::atomic<uint64_t> requests{0};
  std::shared_ptr<std::atomic<int64_t>> inFlight = std::make_shared<std::atomic<int64_t>>(0);

  // Hands one REST request to the handler, counting it until its answer.
  void handle(const control::HttpRequest& req, control::HttpServer::Respond respond) {
    requests.fetch_add(1, std::memory_order_relaxed);
    inFlight->fetch_add(1);
    handler->handle(
        req, [respond = std::move(respond), inFlight = inFlight](control::HttpResponse answer) {
          inFlight->fetch_sub(1);
          respond(std::move(answer));
        });
  }

  void registerRpc();
  void setWork();
};

void ApiService::Impl::setWork() {
  // The api keeps answering while the tier in front stops sending (REST clients and routers
  // follow readiness) and leaves once requests stop arriving.
  role::WorkHooks work;
  work.inProgress = [this] { return static_cast<uint64_t>(std::max<int64_t>(0, *inFlight)); };
  work.arrivals = [this] { return requests.load(std::memory_order_relaxed); };
  host.setWork(std::move(work));
}

void ApiService::Impl::registerRpc() {
  rpc.add("dispatcher.list", [this](const json::value&) -> control::RpcResult {
    json::array routers;
    for (const auto& r : invalidator->routers()) {
      routers.push_back(
          json::object{{"address", r.address}, {"sent", r.sent}, {"failed", r.failed}});
    }
    return json::value(json::object{{"routers", std::move(routers)}});
  });
  rpc.add("dispatcher.set", [this](const json::value& params) -> control::RpcResult {
    const auto* obj = params.if_object();
    if (obj == nullptr) {
      return control::invalidParams("params must be an object {\"set\": ..., \"targets\": [...]}");
    }
    const auto* set = obj->if_contains("set");
    if (set == nullptr || !set->is_string() || set->as_string() != "routers") {
      return control::invalidParams("set: the api has one set, \"routers\"");
    }
    const auto* targets = obj->if_contains("targets");
    if (targets == nullptr || !targets->is_array()) {
      return control::invalidParams("targets: an array of \"host:port\" control addresses");
    }
    std::vector<std::string> addresses;
    for (const auto& t : targets->as_array()) {
      if (!t.is_string()) {
        return control::invalidParams("targets: every target must be a string");
      }
      std::string address(t.as_string());
      if (auto ok = Invalidator::checkAddress(address); !ok) {
        return control::invalidParams("targets: " + ok.error());
      }
      addresses.push_back(std::move(address));
    }
    invalidator->setRouters(addresses);
    logger->info("router set replaced: {} targets", addresses.size());
    return json::value(json::object{{"set", "routers"}, {"targets", addresses.size()}});
  });
}

namespace {

control::HttpServerSettings httpSettings(const ApiSettings& a) {
  control::HttpServerSettings h;
  h.listen = a.listen;
  h.name = "api";
  h.listenKey = "api.listen";
  h.maxBodyBytes = 1024 * 1024;
  h.maxConnections = kMaxConnections;
  h.maxConnectionsPerSource = a.maxConnectionsPerSource;
  return h;
}

// evosip_api_connections_{refused,evicted}_total and evosip_api_read_timeouts_total.
control::HttpServer::ConnectionObserver connectionCounter(metrics::Registry& metrics) {
  auto& refused =
      metrics
          .counterFamily("evosip_api_connections_refused_total",
                         "API connections closed at once because the limits were reached")
          .Add({});
  auto& evicted = metrics
                      .counterFamily("evosip_api_connections_evicted_total",
                                     "Idle API connections closed to make room for a new one")
                      .Add({});
  auto& timeouts =
      metrics
          .counterFamily("evosip_api_read_timeouts_total",
                         "API connections closed because a request did not arrive in time")
          .Add({});
  return [&refused, &evicted, &timeouts](control::ConnectionEvent event) {
    switch (event) {
      case control::ConnectionEvent::kRefused:
        refused.Increment();
        break;
      case control::ConnectionEvent::kEvicted:
        evicted.Increment();
        break;
      case control::ConnectionEvent::kReadTimeout:
        timeouts.Increment();
        break;
    }
  };
}

}  // namespace

ApiService::ApiService(ApiConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

ApiService::~ApiService() {
  stop();
}

void ApiService::start() {
  Impl& d = *impl_;
  const ApiSettings& a = d.config.api;
  auto sqlite = sqlitePathFromUrl(a.database);
  if (sqlite && *sqlite) {
    d.db = openSqlite(**sqlite,
                      [&d](std::function<void()> fn) { d.pool.postBlocking(std::move(fn)); });
  } else {
    d.db = openPostgres(a.database, d.pool.at(0).io());
  }
  d.db->migrate();
  d.store = std::make_unique<ProvisioningStore>(*d.db, d.metrics);
  d.invalidator =
      std::make_unique<Invalidator>(d.pool.at(0).io(), a.routerToken, a.routerTimeout, d.metrics);
  d.invalidator->setRouters(a.routers);
  d.handler = std::make_unique<ApiHandler>(
      ApiHandlerSettings{a.token, a.internalToken}, *d.store, d.metrics,
      [&d](const std::string& domain, const std::string& user) {
        d.invalidator->invalidate(domain, user);
      });
  d.http = std::make_unique<control::HttpServer>(
      httpSettings(a),
      [&d](const control::HttpRequest& req, control::HttpServer::Respond respond) {
        d.handle(req, std::move(respond));
      },
      connectionCounter(d.metrics));
  d.registerRpc();
  d.setWork();
  d.host.setReadyCheck([&d] { return d.db->connected(); });
  d.host.start();
  d.db->start();
  d.http->start();
  d.host.markReady();
  if (a.token.empty()) {
    d.logger->warn("api.token is not set: the provisioning API is open to anyone who reaches {}",
                   a.listen);
  }
  if (a.internalToken.empty()) {
    d.logger->warn(
        "api.internal_token is not set: /internal/v1/credentials answers 403 to every request");
  }
  d.logger->info("api ready: http {} (port {}) control {} database {} routers {}", a.listen,
                 d.http->port(), d.config.common.control.listen, d.db->kind(), a.routers.size());
}

void ApiService::stop() {
  Impl& d = *impl_;
  if (!d.host.started()) {
    return;
  }
  d.host.stopServing();
  d.http->stop();
  d.host.stopWorkers();
  d.db.reset();  // after the pool: no statement or callback runs any more
}

uint16_t ApiService::apiPort() const {
  return impl_->http ? impl_->http->port() : 0;
}

uint16_t ApiService::controlPort() const {
  return impl_->host.controlPort();
}

role::Host& ApiService::host() {
  return impl_->host;
}

int runApi(const std::string& configPath) {
  return role::run<ApiService>(configPath, &readApiConfig);
}

}  // namespace evosip::api
