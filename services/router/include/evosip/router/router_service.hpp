#pragma once
// Wiring of the router role: configuration, workers (one Router per worker, calls owned by the
// Call-ID hash), the SIP transport, the shared store, the control server (RPC, metrics).

#include <memory>
#include <string>
#include <vector>

#include <evosip/config/config.hpp>
#include <evosip/role/host.hpp>
#include <evosip/role/settings.hpp>
#include <evosip/router/router.hpp>
#include <evosip/store/store.hpp>
#include <evosip/transport/resolver.hpp>

namespace evosip::router {

// drain_idle_s default: after SIGTERM the router exits once no proxy transaction has been in
// progress for this long (dialogs live in the store: in-dialog requests of the calls up reach
// another router), or at drain_timeout_s.
inline constexpr int kDrainIdleS = 2;

// The ng port of a media relay entry that names none.
inline constexpr uint16_t kNgPort = 2223;

struct RouterConfig {
  role::CommonSettings common;
  RouterSettings router;
  auth::NonceCodec::Settings nonces;
  Dialplan dialplan;
  std::vector<std::string> apps;         // sip: URIs, numeric or host names (dns.*)
  std::vector<std::string> mediaRelays;  // ng addresses, "udp:HOST:PORT", numeric or host names
  transport::ResolverSettings dns;
  store::Settings store;
  // router.egress_sockets: each worker forwards over UDP from its own ephemeral port, so the
  // worker that receives a request keeps its transactions (no hand-off to another worker).
  bool egressSockets = true;
};

// Reads every key of the router role; throws config::ConfigError naming the key.
RouterConfig readRouterConfig(config::Document& doc);

class RouterService {
 public:
  explicit RouterService(RouterConfig config);
  ~RouterService();
  RouterService(const RouterService&) = delete;
  RouterService& operator=(const RouterService&) = delete;

  void start();
  void stop();

  const std::vector<transport::ListenSpec>& sipAddresses() const;
  uint16_t controlPort() const;
  role::Host& host();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

int runRouter(const std::string& configPath);

}  // namespace evosip::router
