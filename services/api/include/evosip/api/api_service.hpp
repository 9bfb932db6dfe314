#pragma once
// Wiring of the api role: reads the configuration, opens and migrates the database, runs the REST
// API server, the router invalidations and the control server (RPC, metrics, health) until
// stopped. `evosip api` runs it alone; `evosip up` can run it in-process with the other roles.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <evosip/config/config.hpp>
#include <evosip/role/host.hpp>
#include <evosip/role/settings.hpp>

namespace evosip::api {

struct ApiSettings {
  std::string listen = "127.0.0.1:8080";
  std::string database = "sqlite://evosip.db";
  std::string token;          // public API bearer token; "" -> open (loopback only)
  std::string internalToken;  // credentials endpoint; "" -> the endpoint answers 403
  std::size_t maxConnectionsPerSource = 256;
  std::vector<std::string> routers;  // control addresses of the routers to invalidate
  std::string routerToken;           // bearer token of the routers' control RPC
  std::chrono::milliseconds routerTimeout{2000};
};

// Connections the REST server holds at most (HttpServerSettings::maxConnections).
inline constexpr std::size_t kMaxConnections = 1024;

// drain_idle_s default: after SIGTERM the api answers every request until none has been in
// progress or arrived for this long, or until drain_timeout_s.
inline constexpr int kDrainIdleS = 1;

struct ApiConfig {
  role::CommonSettings common;  // control, workers, log (no SIP)
  ApiSettings api;
};

// Reads every key of the api role; throws config::ConfigError naming the key. Calls
// checkUnknownKeys() at the end.
ApiConfig readApiConfig(config::Document& doc);

class ApiService {
 public:
  explicit ApiService(ApiConfig config);
  ~ApiService();
  ApiService(const ApiService&) = delete;
  ApiService& operator=(const ApiService&) = delete;

  // Opens and migrates the database, binds the API and control addresses and starts serving.
  // Throws std::runtime_error naming the key, file or address that failed.
  void start();
  void stop();  // idempotent

  uint16_t apiPort() const;
  uint16_t controlPort() const;
  role::Host& host();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `evosip api --config FILE`: runs until SIGTERM/SIGINT. Returns the process exit code.
int runApi(const std::string& configPath);

}  // namespace evosip::api
