#pragma once
// Wiring of the app role: configuration, workers (one AppCore per worker, calls owned by the
// Call-ID hash), the SIP transport, the prompt cache, the control server (RPC, metrics,
// health). Constructible in-process (evosip up) like the other roles' services.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <evosip/app/app_core.hpp>
#include <evosip/app/stored_calls.hpp>
#include <evosip/config/config.hpp>
#include <evosip/role/host.hpp>
#include <evosip/role/settings.hpp>
#include <evosip/transport/address_acl.hpp>

namespace evosip::app {

struct AppConfig {
  role::CommonSettings common;
  AppSettings app;
  uint16_t rtpPortMin = 40000;
  uint16_t rtpPortMax = 49999;
  // app.realtime_priority: SCHED_FIFO priority of the pacing threads (1..99, default 10), 0 =
  // normal scheduling. Needs CAP_SYS_NICE; without it start-up logs a warning and goes on.
  int realtimePriority = 10;
  // app.routers: the only sources whose SIP requests are served (the platform's routers); any
  // other source gets 403 to a request and nothing else (no call, no media, no voicemail).
  transport::AddressAcl routers = transport::AddressAcl::loopback();
  // app.state, app.instance_id, app.takeover.peers, store.*: calls kept in the store and taken
  // over from dead peer apps (stored_calls.hpp).
  StoredCallsSettings state;
};

// Reads every key of the app role; throws config::ConfigError naming the key. Calls
// checkUnknownKeys() at the end.
AppConfig readAppConfig(config::Document& doc);

class AppService {
 public:
  explicit AppService(AppConfig config);
  ~AppService();
  AppService(const AppService&) = delete;
  AppService& operator=(const AppService&) = delete;

  // Binds the SIP and control addresses (throws naming the address) and starts the workers.
  void start();
  void stop();

  const std::vector<transport::ListenSpec>& sipAddresses() const;
  uint16_t controlPort() const;
  role::Host& host();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `evosip app --config FILE`: runs until SIGTERM/SIGINT. Returns the process exit code.
int runApp(const std::string& configPath);

}  // namespace evosip::app
