#pragma once
// The configuration keys every role reads the same way (DESIGN.md section 5): sip.listen /
// sip.advertise, sip.tcp.*, control.listen / control.token, workers, worker_scheduling, log.*,
// drain_timeout_s and drain_idle_s.

#include <chrono>
#include <string>
#include <vector>

#include <evosip/config/config.hpp>
#include <evosip/control/server.hpp>
#include <evosip/log/log.hpp>
#include <evosip/runtime/worker_pool.hpp>
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
  // Outbound TCP (transport::TransportSettings): sip.tcp.connect_timeout_ms,
  // sip.tcp.max_outbound_connections (per worker), sip.tcp.max_outbound_per_remote,
  // sip.tcp.connect_queue_bytes.
  int tcpConnectTimeoutMs = 3000;
  size_t maxOutboundPerWorker = 256;
  size_t maxOutboundPerRemote = 64;
  size_t tcpConnectQueue = 65536;
  bool freeBind = false;  // sip.free_bind: listen on an address not (yet) on this host
  // worker_scheduling: "batch" runs the workers SCHED_BATCH (runtime::WorkerPool).
  bool batchScheduling = false;
  // sip.io: what the workers wait in (auto: io_uring where the kernel allows it, else epoll).
  // Roles without SIP keep epoll.
  runtime::IoMode ioMode = runtime::IoMode::kEpoll;
  // drain_timeout_s: the longest a SIGTERM drain waits for work in progress before the exit.
  std::chrono::seconds drainTimeout{30};
  // drain_idle_s: how long nothing may be in progress (and, where the role counts arrivals,
  // nothing may arrive) after a drain began before a SIGTERM drain exits.
  std::chrono::milliseconds drainIdle{0};
};

// Reads the shared keys. defaultListen / defaultControl differ per role. Throws
// config::ConfigError naming the key.
// defaultScheduling: "batch" or "normal", the role's default for worker_scheduling.
// defaultDrainIdleS: the role's default for drain_idle_s.
CommonSettings readCommon(config::Document& doc, const std::vector<std::string>& defaultListen,
                          const std::string& defaultControl,
                          const std::string& defaultScheduling = "normal",
                          int defaultDrainIdleS = 0);

// The same for a role that speaks no SIP (api): control.*, workers and log.* only; the sip.* keys
// are not read (so they are unknown keys in its file) and listen stays empty.
CommonSettings readCommonWithoutSip(config::Document& doc, const std::string& defaultControl,
                                    int defaultDrainIdleS = 0);

transport::TransportSettings transportSettings(const CommonSettings& s);

// An instance's name in the shared store and in its peers' takeover lists (`key`, e.g.
// media.instance_id), the host name when empty: 1-128 characters without ':', spaces or
// wildcards. Throws config::ConfigError naming the key.
std::string readInstanceId(config::Document& doc, const std::string& key);
// Whether `name` could be an instance's name (as readInstanceId checks it).
bool validInstanceId(std::string_view name);

}  // namespace evosip::role
