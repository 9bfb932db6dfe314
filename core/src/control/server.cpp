// The control server: the routes of DESIGN.md section 4 on the general HttpServer.

#include <fmt/format.h>

#include <evosip/control/client.hpp>
#include <evosip/control/http_server.hpp>
#include <evosip/control/server.hpp>
#include <evosip/log/log.hpp>

namespace evosip::control {

struct ControlServer::Impl {
  ServerSettings settings;
  RpcRegistry& rpc;
  metrics::Registry& metrics;
  std::function<bool()> ready;
  std::shared_ptr<spdlog::logger> log = log::get("control");
  prometheus::Counter& refused =
      metrics
          .counterFamily("evosip_control_connections_refused_total",
                         "Control connections closed at once because the limits were reached")
          .Add({});
  prometheus::Counter& evicted =
      metrics
          .counterFamily("evosip_control_connections_evicted_total",
                         "Idle control connections closed to make room for a new one")
          .Add({});
  prometheus::Counter& readTimeouts =
      metrics
          .counterFamily("evosip_control_read_timeouts_total",
                         "Control connections closed because a request did not arrive in time")
          .Add({});
  HttpServer http;

  Impl(ServerSettings s, RpcRegistry& r, metrics::Registry& m, std::function<bool()> f)
      : settings(std::move(s)),
        rpc(r),
        metrics(m),
        ready(std::move(f)),
        http(
            httpSettings(settings.listen),
            [this](const HttpRequest& req, HttpServer::Respond respond) { respond(route(req)); },
            [this](ConnectionEvent event) { count(event); }) {}

  static HttpServerSettings httpSettings(const std::string& listen) {
    HttpServerSettings h;
    h.listen = listen;
    h.name = "control";
    h.listenKey = "control.listen";
    h.maxBodyBytes = kMaxBodyBytes;
    h.maxConnections = kMaxConnections;
    h.requestTimeout = std::chrono::seconds(kRequestTimeoutSeconds);
    h.maxConnectionsPerSource = kMaxConnectionsPerSource;
    h.readTimeout = std::chrono::seconds(kReadTimeoutSeconds);
    h.probePaths = {"/healthz", "/readyz"};
    return h;
  }

  void count(ConnectionEvent event) {
    switch (event) {
      case ConnectionEvent::kRefused:
        refused.Increment();
        break;
      case ConnectionEvent::kEvicted:
        evicted.Increment();
        break;
      case ConnectionEvent::kReadTimeout:
        readTimeouts.Increment();
        break;
    }
  }

  HttpResponse route(const HttpRequest& req);
};

HttpResponse ControlServer::Impl::route(const HttpRequest& req) {
  const std::string& path = req.path;
  auto methodNotAllowed = [&](std::string_view allow) {
    HttpResponse res = makeHttpResponse(405, fmt::format("method not allowed; use {}\n", allow));
    res.headers.emplace_back("Allow", std::string(allow));
    return res;
  };

  try {
    if (path == "/healthz") {
      if (req.method != "GET") {
        return methodNotAllowed("GET");
      }
      return makeHttpResponse(200, "ok");
    }
    if (path == "/readyz") {
      if (req.method != "GET") {
        return methodNotAllowed("GET");
      }
      const bool isReady = !ready || ready();
      return isReady ? makeHttpResponse(200, "ready") : makeHttpResponse(503, "not ready");
    }
    if (path == "/metrics") {
      if (req.method != "GET") {
        return methodNotAllowed("GET");
      }
      if (!bearerTokenMatches(req, settings.token)) {
        return unauthorizedResponse(req);
      }
      return makeHttpResponse(200, metrics.render(), "text/plain; version=0.0.4");
    }
    if (path == "/rpc") {
      if (req.method != "POST") {
        return methodNotAllowed("POST");
      }
      if (!bearerTokenMatches(req, settings.token)) {
        return unauthorizedResponse(req);
      }
      std::string reply = rpc.handle(req.body);
      if (reply.empty()) {
        return makeHttpResponse(204, "");
      }
      return makeHttpResponse(200, std::move(reply), "application/json");
    }
    return makeHttpResponse(404, "not found\n");
  } catch (const std::exception& e) {
    log->error("control request {} {} failed: {}", req.method, path, e.what());
    return makeHttpResponse(500, "internal error\n");
  }
}

ControlServer::ControlServer(ServerSettings settings, RpcRegistry& rpc, metrics::Registry& metrics,
                             std::function<bool()> ready)
    : impl_(std::make_unique<Impl>(std::move(settings), rpc, metrics, std::move(ready))) {}

ControlServer::~ControlServer() {
  stop();
}

void ControlServer::start() {
  // The roles' configuration refuses this already; a server built some other way must too.
  if (impl_->settings.token.empty() && !isLoopbackListen(impl_->settings.listen)) {
    throw std::runtime_error("control.token is required when control.listen is not loopback ('" +
                             impl_->settings.listen + "')");
  }
  impl_->http.start();
}

void ControlServer::stop() {
  impl_->http.stop();
}

uint16_t ControlServer::port() const {
  return impl_->http.port();
}

}  // namespace evosip::control
