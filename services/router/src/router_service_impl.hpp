#pragma once
// The router role's running state, shared by its wiring (router_service.cpp) and its control
// methods (router_rpc.cpp).

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <evosip/role/set_resolver.hpp>
#include <evosip/router/router_service.hpp>
#include <evosip/router/timed_store.hpp>
#include <evosip/runtime/worker_pool.hpp>

namespace evosip::router {

struct RouterService::Impl {
  explicit Impl(RouterConfig c)
      : config(std::move(c)),
        host("router", config.common, config.common.workers),
        pool(host.pool()),
        logger(host.logger()),
        metrics(host.metrics()),
        rpc(host.rpc()),
        sets(config.dns) {}

  RouterConfig config;
  const runtime::Clock& clock = runtime::SteadyClock::instance();
  role::Host host;
  runtime::WorkerPool& pool;
  std::shared_ptr<spdlog::logger> logger;
  metrics::Registry& metrics;
  control::RpcRegistry& rpc;
  std::unique_ptr<RouterShared> shared;
  // The apps and media sets' entries and the DNS answers of their names; publish to shared.
  role::SetResolver sets;
  std::shared_ptr<store::StoreFactory> storeFactory;
  std::vector<std::unique_ptr<Router>> routers;
  std::unique_ptr<transport::SipTransport> transport;
  std::atomic<uint64_t> parseDrops{0};
  std::atomic<uint64_t> invalidations{0};  // auth.invalidate calls applied
  // Egress port -> the worker that owns it (router.egress_sockets); empty: Call-ID ownership.
  std::unordered_map<uint16_t, size_t> egressPorts;

  // The steps of a received packet (router_service.cpp).
  void onPacket(runtime::Worker& worker, const transport::Packet& packet);
  void onUnparsable(const transport::Packet& packet);
  size_t ownerOfResponse(const sip::Message& msg, size_t received) const;
  void seekCancel(size_t at, size_t tried, std::string bytes, transport::Source src);

  // Start-up steps (router_service.cpp).
  void makeRouters();
  TimedStore::Histograms storeLatencyHistograms();
  void logReady();
  void registerMetrics();
  void setWork();
  // Gives `sets` a set ("apps" or "media") and where it publishes; errors name the entry.
  Result<void> assignSet(const role::SetRequest& request);

  // Control methods (router_rpc.cpp).
  void registerRpc();
  void registerLocationRpc();
  void registerDialogRpc();
  void registerAuthRpc();
  void registerDispatcherRpc();
  // Runs fn(Router&) on worker 0 and waits for its answer (RPC handlers run on the control
  // thread; the store answers on the worker).
  control::RpcResult onWorker(
      const std::function<void(Router&, std::function<void(control::RpcResult)>)>& fn);
};

}  // namespace evosip::router
