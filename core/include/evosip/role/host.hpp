#pragma once
// The host every role runs in: its worker threads and their periodic ticks, the control server
// (RPC, /metrics, /healthz, /readyz), the stop signals and the drain. A role's *Service builds
// its own parts (transport, proxies, relays) on the host's pool, registers its RPC methods and
// metrics on the host, tells it how to refuse new work and how much work is in progress, and
// starts and stops in this order:
//
//   host.start();          // binds the control server, starts the workers and their ticks
//   ... role listeners ...
//   host.markReady();      // /readyz 200 from here on (unless draining)
//   ...
//   host.stopServing();    // /readyz 503, control server closed, ticks cancelled
//   ... role listeners stop ...
//   host.stopWorkers();    // joins the workers
//
// The host registers instance.drain, instance.undrain and instance.status, and the gauge
// evosip_draining.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include <evosip/config/config.hpp>
#include <evosip/control/rpc.hpp>
#include <evosip/control/server.hpp>
#include <evosip/log/log.hpp>
#include <evosip/metrics/metrics.hpp>
#include <evosip/role/drain.hpp>
#include <evosip/role/settings.hpp>
#include <evosip/role/worker_ticks.hpp>
#include <evosip/runtime/signals.hpp>
#include <evosip/runtime/worker_pool.hpp>

namespace evosip::role {

// What a role does while it drains. Every member may be empty.
struct WorkHooks {
  // Called with true when a drain begins and false when instance.undrain ends it (control or
  // signal thread): the role refuses new dialogs, registrations or sessions while true.
  std::function<void(bool draining)> refuseNew;
  // Work still in progress: transactions, calls, sessions, requests (control or signal thread).
  std::function<uint64_t()> inProgress;
  // A running count of arrivals (requests received), for a role that stays quiet before it
  // exits; empty: arrivals do not matter.
  std::function<uint64_t()> arrivals;
  // Adds the role's own figures to the answers of instance.drain, .undrain and .status.
  std::function<void(boost::json::object&)> describe;
};

class Host {
 public:
  // workers: event-loop threads; blockingThreads: the pool for blocking work.
  Host(std::string role, const CommonSettings& common, size_t workers, size_t blockingThreads = 2);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  const std::string& role() const { return role_; }
  runtime::WorkerPool& pool() { return pool_; }
  metrics::Registry& metrics() { return metrics_; }
  control::RpcRegistry& rpc() { return rpc_; }
  const std::shared_ptr<spdlog::logger>& logger() const { return logger_; }
  Drain& drain() { return drain_; }

  // Before start(): tick(worker) runs on every worker each period from start() to stopServing().
  void tickEvery(std::chrono::milliseconds period, std::function<void(size_t)> tick);
  // Before start(): how the role drains.
  void setWork(WorkHooks hooks) { work_ = std::move(hooks); }
  // Before start(): a further condition of readiness (a database connection).
  void setReadyCheck(std::function<bool()> check) { readyCheck_ = std::move(check); }

  // Binds the control server (throws std::runtime_error naming control.listen), starts the
  // workers and their ticks.
  void start();
  void markReady() { ready_ = true; }
  bool ready() const;
  // Not ready, control server closed, ticks cancelled on their workers. Idempotent.
  void stopServing();
  // Joins the workers. Idempotent.
  void stopWorkers();
  bool started() const { return started_; }
  uint16_t controlPort() const;

  // Runs on the calling thread (the process's main thread, stop signals blocked) until the
  // process must exit: a second SIGTERM or a SIGINT at once, the first SIGTERM after the
  // drain. Returns the exit code.
  int serveUntilStopped();
  // The first SIGTERM: drains (new work refused) and starts drain_timeout_s. False when the
  // host was stopping already (a second SIGTERM).
  bool beginStopOnSignal();
  // While stopping on a signal: true once the work in progress is done or drain_timeout_s
  // passed (logged).
  bool stopDrained();

  // The drain's RPC answers (instance.drain, instance.undrain, instance.status).
  control::RpcResult beginDrain();
  control::RpcResult endDrain();
  boost::json::object status();

 private:
  uint64_t inProgress() const;
  uint64_t arrivals() const;
  void registerRpc();

  std::string role_;
  CommonSettings common_;
  std::shared_ptr<spdlog::logger> logger_;
  runtime::WorkerPool pool_;
  metrics::Registry metrics_;
  control::RpcRegistry rpc_;
  Drain drain_;
  WorkHooks work_;
  std::function<bool()> readyCheck_;
  std::unique_ptr<control::ControlServer> control_;
  std::unique_ptr<WorkerTicks> ticks_;
  std::atomic<bool> ready_{false};
  bool started_ = false;
};

// serveUntilStopped for several roles in one process (`evosip up`): the first SIGTERM drains
// every host at once, and the call returns when all are drained; a second SIGTERM or a SIGINT
// returns at once.
int serveUntilStopped(const std::vector<Host*>& hosts);

// `evosip <role> --config FILE`: reads the configuration, starts the service, serves until a
// stop signal (Host::serveUntilStopped), stops it. Config is a role's config struct with a
// `common` member; Service has start(), stop() and host().
template <typename Service, typename Config>
int run(const std::string& configPath, Config (*readConfig)(config::Document&)) {
  runtime::blockStopSignals();
  auto doc = config::Document::loadFile(configPath);
  Config config = readConfig(doc);
  log::init(config.common.log);
  Service service(std::move(config));
  service.start();
  const int code = service.host().serveUntilStopped();
  service.stop();
  return code;
}

}  // namespace evosip::role
