#include <future>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <evosip/controller/controller_service.hpp>
#include <evosip/controller/dns_source.hpp>
#include <evosip/controller/kube_client.hpp>
#include <evosip/controller/lease_elector.hpp>
#include <evosip/controller/pusher.hpp>
#include <evosip/controller/slice_watch.hpp>

namespace evosip::controller {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

struct ControllerService::Impl {
  explicit Impl(ControllerConfig c)
      : config(std::move(c)), host("controller", config.common, 1), io(host.pool().at(0).io()) {}

  ControllerConfig config;
  role::Host host;
  asio::io_context& io;
  std::unique_ptr<KubeClient> kube;
  std::array<std::unique_ptr<SliceWatch>, kLayers> watches;
  std::unique_ptr<DnsSource> dns;
  std::unique_ptr<LeaseElector> lease;
  std::unique_ptr<Pusher> pusher;
  prometheus::Gauge* leaderGauge = nullptr;
  prometheus::Gauge* instancesGauge = nullptr;
  prometheus::Gauge* pendingGauge = nullptr;

  void recompute();
  void startKubernetes();
  void startDns();
  void startTicker();
  void registerRpc();
  // A leader gives its Lease up before the process stops (a rolling update): the standby pushes
  // at once instead of a Lease duration later. Waits at most 2 s for the API.
  void releaseLease();
  WatchCounters watchCounters(const std::string& service);
  json::object status();
};

namespace {

std::string readNamespace(const std::string& tokenFile) {
  const std::string path = tokenFile.substr(0, tokenFile.rfind('/') + 1) + "namespace";
  try {
    return config::readSecret("file:" + path);
  } catch (const config::ConfigError& e) {
    throw std::runtime_error(std::string("controller.kubernetes.namespace: not set, and ") +
                             e.what());
  }
}

}  // namespace

void ControllerService::Impl::recompute() {
  Platform platform;
  const auto& s = config.controller;
  for (size_t i = 0; i < kLayers; ++i) {
    if (dns) {
      platform[i] = dns->instances(Layer(i));
    } else if (watches[i] && watches[i]->listed()) {
      platform[i] = instancesOf(watches[i]->slices(), s.ports);
    }
  }
  pusher->update(assignments(platform));
}

WatchCounters ControllerService::Impl::watchCounters(const std::string& service) {
  auto& m = host.metrics();
  return WatchCounters{
      &m.counterFamily("evosip_controller_lists_total", "Complete EndpointSlice lists")
           .Add({{"service", service}}),
      &m.counterFamily("evosip_controller_watch_events_total", "EndpointSlice watch events")
           .Add({{"service", service}}),
      &m.counterFamily("evosip_controller_watch_gone_total",
                       "Watches whose resourceVersion was gone (410): a fresh list followed")
           .Add({{"service", service}}),
      &m.counterFamily("evosip_controller_api_errors_total",
                       "Failed lists and watches (errors, dropped connections, bad documents)")
           .Add({{"service", service}})};
}

void ControllerService::Impl::startKubernetes() {
  ControllerSettings& s = config.controller;
  if (s.ns.empty()) {
    s.ns = readNamespace(s.tokenFile);
  }
  KubeSettings k = kubeEndpoint(s.api);
  k.tokenFile = s.tokenFile;
  k.caFile = s.caFile;
  kube = std::make_unique<KubeClient>(io, k);
  for (size_t i = 0; i < kLayers; ++i) {
    if (s.services[i].empty()) {
      continue;
    }
    WatchSettings w{s.ns, s.services[i], s.resync};
    watches[i] = std::make_unique<SliceWatch>(*kube, w, watchCounters(s.services[i]),
                                              [this] { recompute(); });
    asio::co_spawn(io, watches[i]->run(), asio::detached);
  }
  LeaseSettings l{s.ns, s.leaseName, s.identity, s.leaseDuration};
  lease = std::make_unique<LeaseElector>(*kube, l, [this](bool leader) {
    leaderGauge->Set(leader ? 1 : 0);
    pusher->setActive(leader);
  });
  asio::co_spawn(io, lease->run(), asio::detached);
}

void ControllerService::Impl::startDns() {
  dns = std::make_unique<DnsSource>(io, config.controller.services, config.controller.dns,
                                    config.controller.ports, [this] { recompute(); });
  dns->start();
  leaderGauge->Set(1);
  pusher->setActive(true);  // no Lease without the API: run one replica in DNS mode
}

void ControllerService::Impl::releaseLease() {
  if (!lease) {
    return;
  }
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  asio::co_spawn(
      io,
      [this, done]() -> asio::awaitable<void> {
        co_await lease->release();
        done->set_value();
      },
      asio::detached);
  if (future.wait_for(2s) != std::future_status::ready) {
    host.logger()->warn("lease {}: not released within 2 s", config.controller.leaseName);
  }
}

void ControllerService::Impl::startTicker() {
  asio::co_spawn(
      io,
      [this]() -> asio::awaitable<void> {
        asio::steady_timer timer(io);
        for (;;) {
          timer.expires_after(100ms);
          co_await timer.async_wait(asio::use_awaitable);
          pusher->tick();
          instancesGauge->Set(static_cast<double>(pusher->instances()));
          pendingGauge->Set(static_cast<double>(pusher->pending()));
        }
      },
      asio::detached);
}

json::object ControllerService::Impl::status() {
  json::object o;
  o["mode"] = dns ? "dns" : "kubernetes";
  o["leader"] = lease ? lease->leader() : true;
  o["identity"] = lease ? lease->identity() : "";
  o["holder"] = lease ? lease->holder() : "";
  json::array services;
  for (size_t i = 0; i < kLayers; ++i) {
    if (watches[i]) {
      services.push_back(json::object{{"layer", layerName(Layer(i))},
                                      {"service", config.controller.services[i]},
                                      {"listed", watches[i]->listed()},
                                      {"slices", watches[i]->slices().size()},
                                      {"resource_version", watches[i]->resourceVersion()},
                                      {"error", watches[i]->lastError()}});
    }
  }
  o["services"] = std::move(services);
  o["instances"] = pusher->status();
  return o;
}

void ControllerService::Impl::registerRpc() {
  host.rpc().add("controller.status", [this](const json::value&) -> control::RpcResult {
    auto answer = std::make_shared<std::promise<json::object>>();
    auto future = answer->get_future();
    asio::post(io, [this, answer] { answer->set_value(status()); });
    if (future.wait_for(2s) != std::future_status::ready) {
      return tl::unexpected(control::RpcError{-32000, "the controller's loop does not answer"});
    }
    return json::value(future.get());
  });
}

ControllerService::ControllerService(ControllerConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}

ControllerService::~ControllerService() {
  stop();
}

void ControllerService::start() {
  Impl& d = *impl_;
  auto& m = d.host.metrics();
  d.leaderGauge =
      &m.gaugeFamily("evosip_controller_leader", "1 while this replica holds the Lease and pushes")
           .Add({});
  d.instancesGauge =
      &m.gaugeFamily("evosip_controller_instances", "Instances that receive peer sets").Add({});
  d.pendingGauge = &m.gaugeFamily("evosip_controller_pending_sets",
                                  "Peer sets not acknowledged by their instance yet")
                        .Add({});
  PushCounters pc{
      &m.counterFamily("evosip_controller_pushes_total", "dispatcher.set calls sent").Add({}),
      &m.counterFamily("evosip_controller_push_errors_total",
                       "dispatcher.set and dispatcher.list calls that failed")
           .Add({}),
      &m.counterFamily("evosip_controller_drift_total",
                       "Instances found holding another set than pushed (pushed again)")
           .Add({})};
  const ControllerSettings& s = d.config.controller;
  d.pusher =
      std::make_unique<Pusher>(d.io, PushSettings{s.controlToken, s.pushTimeout, s.check}, pc);
  d.registerRpc();
  if (s.mode == Mode::kDns) {
    d.startDns();
  } else {
    d.startKubernetes();
  }
  d.startTicker();
  d.host.start();
  d.host.markReady();
  d.host.logger()->info("controller ready: mode {} control {} identity {}",
                        s.mode == Mode::kDns ? "dns" : "kubernetes", d.config.common.control.listen,
                        s.identity);
}

void ControllerService::stop() {
  Impl& d = *impl_;
  if (!d.host.started()) {
    return;
  }
  d.releaseLease();
  d.host.stopServing();
  d.host.stopWorkers();
}

uint16_t ControllerService::controlPort() const {
  return impl_->host.controlPort();
}

role::Host& ControllerService::host() {
  return impl_->host;
}

int runController(const std::string& configPath) {
  return role::run<ControllerService, ControllerConfig>(configPath, readControllerConfig);
}

}  // namespace evosip::controller
