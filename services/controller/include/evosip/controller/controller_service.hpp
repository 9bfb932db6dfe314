#pragma once
// Wiring of the controller role: watches the platform's Services (EndpointSlices through the
// Kubernetes API, or SRV and A/AAAA records of headless Service names in DNS mode), computes each
// instance's peer sets and pushes them with dispatcher.set while it holds the leader Lease. `evosip
// controller` runs it.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <evosip/config/config.hpp>
#include <evosip/controller/peer_sets.hpp>
#include <evosip/role/host.hpp>
#include <evosip/role/settings.hpp>
#include <evosip/transport/resolver.hpp>

namespace evosip::controller {

enum class Mode { kKubernetes, kDns };

struct DnsSettings {
  // The lookups: resolver.minTtl is controller.dns.interval_ms (an answer is used at least this
  // long; hosts-file answers are read again at this period).
  transport::ResolverSettings resolver;
  uint16_t sipPort = 5060;
  uint16_t controlPort = 8060;  // every instance's control port in DNS mode
  uint16_t ngPort = 2223;
};

struct ControllerSettings {
  Mode mode = Mode::kKubernetes;
  std::string api;  // "https://HOST:PORT"; "" -> KUBERNETES_SERVICE_HOST/_PORT
  std::string tokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string caFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string ns;                             // "" -> the service account's namespace file
  std::array<std::string, kLayers> services;  // per Layer; "" = not watched
  PortNames ports;
  std::string controlToken;
  std::chrono::seconds resync{300};
  std::chrono::milliseconds check{10000};
  std::chrono::milliseconds pushTimeout{2000};
  std::string leaseName = "evosip-controller";
  std::chrono::seconds leaseDuration{15};
  std::string identity;  // "" -> hostname-pid
  DnsSettings dns;
};

struct ControllerConfig {
  role::CommonSettings common;  // control, workers, log (no SIP)
  ControllerSettings controller;
};

// Reads every key of the controller role; throws config::ConfigError naming the key. Calls
// checkUnknownKeys() at the end.
ControllerConfig readControllerConfig(config::Document& doc);

class ControllerService {
 public:
  explicit ControllerService(ControllerConfig config);
  ~ControllerService();
  ControllerService(const ControllerService&) = delete;
  ControllerService& operator=(const ControllerService&) = delete;

  // Throws std::runtime_error naming the key or file that failed (CA, namespace file).
  void start();
  void stop();  // idempotent

  uint16_t controlPort() const;
  role::Host& host();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// `evosip controller --config FILE`: runs until SIGTERM/SIGINT. Returns the process exit code.
int runController(const std::string& configPath);

}  // namespace evosip::controller
