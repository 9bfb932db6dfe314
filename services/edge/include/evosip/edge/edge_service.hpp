#pragma once
// Wiring of the edge role: reads the configuration, builds the worker pool, the SIP transport,
// the EdgeProxy, the control server (RPC, metrics, health) and runs them until stopped.

#include <memory>
#include <string>
#include <vector>

#include <evosip/config/config.hpp>
#include <evosip/edge/edge_proxy.hpp>
#include <evosip/role/host.hpp>
#include <evosip/role/settings.hpp>
#include <evosip/transport/resolver.hpp>

namespace evosip::edge {

// drain_idle_s default: after SIGTERM the edge forwards everything until no request has arrived
// for this long (the anycast route or the Service endpoint is withdrawn by then), or until
// drain_timeout_s.
inline constexpr int kDrainIdleS = 2;

struct EdgeConfig {
  role::CommonSettings common;
  EdgeSettings edge;
  std::vector<std::string> routers;  // sip: URIs, numeric or host names (dns.*)
  transport::ResolverSettings dns;
  size_t egressPerWorker = 2;    // edge.egress_sockets
  bool readyNeedsRouter = true;  // edge.ready_needs_router
};

// Reads every key of the edge role; throws config::ConfigError naming the key. Calls
// checkUnknownKeys() at the end.
EdgeConfig readEdgeConfig(config::Document& doc);

class EdgeService {
 public:
  explicit EdgeService(EdgeConfig config);
  ~EdgeService();
  EdgeService(const EdgeService&) = delete;
  EdgeService& operator=(const EdgeService&) = delete;

  // Binds SIP and control addresses (throws std::runtime_error naming the address) and starts
  // the workers.
  void start();
  void stop();

  const std::vector<transport::ListenSpec>& sipAddresses() const;
  uint16_t controlPort() const;
  role::Host& host();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `evosip edge --config FILE`: runs until SIGTERM/SIGINT. Returns the process exit code.
int runEdge(const std::string& configPath);

}  // namespace evosip::edge
