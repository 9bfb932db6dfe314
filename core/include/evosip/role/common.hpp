#pragma once
// The configuration keys and start-up steps shared by every role (DESIGN.md section 5):
// sip.listen / sip.advertise, control.listen / control.token, workers, log.*.

#include <memory>
#include <string>
#include <vector>

#include <evosip/config/config.hpp>
#include <evosip/control/rpc.hpp>
#include <evosip/control/server.hpp>
#include <evosip/log/log.hpp>
#include <evosip/metrics/metrics.hpp>
#include <evosip/runtime/signals.hpp>
#include <evosip/transport/address.hpp>
#include <evosip/transport/sip_transport.hpp>

namespace evosip::role {

struct CommonSettings {
  std::vector<transport::ListenSpec> listen;
  std::string advertiseHost;  // "" = listen address
  uint16_t advertisePort = 0;
  control::ServerSettings control;
  size_t workers = 0;  // resolved: never 0
  log::Settings log;
  size_t maxMessageSize = 65535;
  size_t maxConnections = 10000;
  size_t maxConnectionsPerIp = 32;
  int tcpIdleTimeoutS = 300;
  int tcpMessageTimeoutS = 10;
  // worker_scheduling: "batch" runs the workers SCHED_BATCH (runtime::WorkerPool).
  bool batchScheduling = false;
};

// Reads the shared keys. defaultListen / defaultControl differ per role. Throws
// config::ConfigError naming the key.
// defaultScheduling: "batch" or "normal", the role's default for worker_scheduling.
CommonSettings readCommon(config::Document& doc, const std::vector<std::string>& defaultListen,
                          const std::string& defaultControl,
                          const std::string& defaultScheduling = "normal");

// The same for a role that speaks no SIP (api): control.*, workers and log.* only; the sip.* keys
// are not read (so they are unknown keys in its file) and listen stays empty.
CommonSettings readCommonWithoutSip(config::Document& doc, const std::string& defaultControl);

transport::TransportSettings transportSettings(const CommonSettings& s);

// Exposes the transport counters as evosip_sip_* metrics (refreshed at every scrape).
void exportTransportMetrics(metrics::Registry& registry, const transport::SipTransport& transport);

// Keeps a Prometheus counter equal to a running total read at scrape time.
class CounterMirror {
 public:
  explicit CounterMirror(prometheus::Counter& counter) : counter_(&counter) {}
  void set(double total) {
    if (total > last_) {
      counter_->Increment(total - last_);
      last_ = total;
    }
  }

 private:
  prometheus::Counter* counter_;
  double last_ = 0;
};

// `evosip <role> --config FILE`: reads the configuration, starts the service, waits for SIGTERM
// or SIGINT, stops it. Config is a role's config struct with a `common` member; Service has
// start() and stop().
template <typename Service, typename Config>
int runUntilStopped(const std::string& role, const std::string& configPath,
                    Config (*readConfig)(config::Document&)) {
  runtime::blockStopSignals();
  auto doc = config::Document::loadFile(configPath);
  Config config = readConfig(doc);
  log::init(config.common.log);
  Service service(std::move(config));
  service.start();
  int sig = runtime::waitForStopSignal();
  log::get(role)->info("signal {}: stopping", sig);
  service.stop();
  return 0;
}

}  // namespace evosip::role
