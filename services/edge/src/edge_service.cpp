#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/edge/edge_service.hpp>
#include <evosip/role/worker_ticks.hpp>
#include <evosip/runtime/worker_pool.hpp>

namespace evosip::edge {

namespace json = boost::json;

namespace {

transport::AddressAcl readNetworks(config::Document& doc, const std::string& key) {
  auto list = transport::AddressAcl::parse(doc.getList(key, {}));
  if (!list) {
    throw config::ConfigError(key + ": " + list.error().message);
  }
  return *list;
}

}  // namespace

EdgeConfig readEdgeConfig(config::Document& doc) {
  EdgeConfig c;
  c.common = role::readCommon(doc, {"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"}, "127.0.0.1:8060",
                              "batch");
  c.routers = doc.getList("edge.routers", {"sip:127.0.0.1:5070"});
  c.edge.routerTimeout =
      std::chrono::milliseconds(doc.getInt("edge.router_timeout_ms", 500, 0, 60000));
  c.edge.holdDown =
      std::chrono::milliseconds(doc.getInt("edge.router_hold_down_ms", 10000, 100, 3600000));
  c.edge.setupCheck =
      std::chrono::milliseconds(doc.getInt("edge.setup_check_ms", 1000, 100, 60000));
  c.edge.maxForwards = static_cast<uint32_t>(doc.getInt("edge.max_forwards", 20, 1, 255));
  c.edge.rateLimitPerSecond = doc.getDouble("edge.rate_limit.requests_per_second", 30, 0, 1e9);
  c.edge.rateLimitBurst = doc.getDouble("edge.rate_limit.burst", 90, 0, 1e9);
  c.edge.rateLimitExempt = readNetworks(doc, "edge.rate_limit.exempt");
  c.edge.authBan.failures =
      static_cast<uint32_t>(doc.getInt("edge.auth_ban.failures", 10, 0, 1000000));
  c.edge.authBan.window = std::chrono::seconds(doc.getInt("edge.auth_ban.window_s", 60, 1, 86400));
  c.edge.authBan.banFor = std::chrono::seconds(doc.getInt("edge.auth_ban.ban_s", 300, 1, 604800));
  c.edge.authBan.slots =
      static_cast<size_t>(doc.getInt("edge.auth_ban.table_size", 8192, 64, 1 << 22));
  c.edge.authBanExempt = readNetworks(doc, "edge.auth_ban.exempt");
  c.edge.maxPendingPerWorker =
      static_cast<size_t>(doc.getInt("edge.max_pending", 50000, 100, 10000000));
  c.edge.maxPendingBytesPerWorker = static_cast<size_t>(
      doc.getInt("edge.max_pending_bytes", int64_t{32} << 20, 1 << 20, int64_t{1} << 34));
  c.edge.flowSecret = config::readSecret(doc.getString("edge.flow_secret", ""));
  c.egressPerWorker = static_cast<size_t>(doc.getInt("edge.egress_sockets", 2, 0, 64));
  c.edge.advertiseHost = c.common.advertiseHost;
  c.edge.advertisePort = c.common.advertisePort;
  c.edge.limits.maxSize = c.common.maxMessageSize;
  doc.checkUnknownKeys();
  // Validate the router list now so that a typo stops start-up.
  if (auto set = RouterSet::build(c.routers); !set) {
    throw config::ConfigError("edge.routers: " + set.error().message);
  }
  return c;
}

struct EdgeService::Impl {
  explicit Impl(EdgeConfig c)
      : config(std::move(c)), pool(config.common.workers), logger(log::get("edge")) {}

  EdgeConfig config;
  runtime::WorkerPool pool;
  std::shared_ptr<spdlog::logger> logger;
  metrics::Registry metrics;
  control::RpcRegistry rpc;
  std::unique_ptr<transport::SipTransport> transport;
  std::unique_ptr<EdgeProxy> proxy;
  std::unique_ptr<control::ControlServer> control;
  std::unique_ptr<role::WorkerTicks> ticks;
  std::atomic<bool> ready{false};

  void registerRpc();
  void registerMetrics();
};

void EdgeService::Impl::registerRpc() {
  rpc.add("dispatcher.list", [this](const json::value&) -> control::RpcResult {
    auto set = proxy->routers();
    const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    json::array routers;
    for (size_t i = 0; i < set->size(); ++i) {
      const RouterTarget& t = set->at(i);
      json::object o;
      o["uri"] = t.uri;
      o["address"] = t.endpoint.str();
      o["state"] = !t.upAt(now) ? "down" : t.drainingAt(now) ? "draining" : "up";
      o["forwarded"] = t.forwarded.load();
      o["responses"] = t.responses.load();
      o["timeouts"] = t.timeouts.load();
      routers.push_back(std::move(o));
    }
    json::object result;
    result["routers"] = std::move(routers);
    return json::value(std::move(result));
  });
  rpc.add("dispatcher.set", [this](const json::value& params) -> control::RpcResult {
    const auto* obj = params.if_object();
    if (!obj) {
      return control::invalidParams("params must be an object {\"set\": ..., \"targets\": [...]}");
    }
    const auto* set = obj->if_contains("set");
    if (!set || !set->is_string() || set->as_string() != "routers") {
      return control::invalidParams("set: the edge has one set, \"routers\"");
    }
    const auto* targets = obj->if_contains("targets");
    if (!targets || !targets->is_array()) {
      return control::invalidParams("targets: an array of sip: URIs is required");
    }
    std::vector<std::string> uris;
    for (const auto& t : targets->as_array()) {
      if (!t.is_string()) {
        return control::invalidParams("targets: every target must be a string");
      }
      uris.emplace_back(t.as_string());
    }
    auto built = RouterSet::build(uris);
    if (!built) {
      return control::invalidParams("targets: " + built.error().message);
    }
    proxy->setRouters(*built);
    logger->info("router set replaced: {} targets", uris.size());
    json::object result;
    result["set"] = "routers";
    result["targets"] = uris.size();
    return json::value(std::move(result));
  });
}

void EdgeService::Impl::registerMetrics() {
  auto& requests = metrics.counterFamily("evosip_edge_requests_total",
                                         "SIP requests received by the edge, by method");
  auto& responses = metrics.counterFamily("evosip_edge_responses_total",
                                          "SIP responses received by the edge, by status code");
  auto& drops = metrics.counterFamily(
      "evosip_edge_drops_total", "Messages not forwarded, by reason (a reply may have been sent)");
  auto& local = metrics.counterFamily("evosip_edge_local_replies_total",
                                      "Responses generated by the edge itself");
  auto& failovers = metrics.counterFamily("evosip_edge_failovers_total",
                                          "Requests resent to another router after a timeout");
  auto& unanswered = metrics.counterFamily(
      "evosip_edge_unanswered_total",
      "Requests a live router left unanswered (not failed over: it answers other requests)");
  auto& probes = metrics.counterFamily(
      "evosip_edge_router_probes_total",
      "OPTIONS probes sent to a router that left a request unanswered and answered nothing since");
  auto& probeFailures =
      metrics.counterFamily("evosip_edge_router_probe_failures_total",
                            "Probes a router left unanswered too: the router was marked down");
  auto& authFailures = metrics.counterFamily(
      "evosip_edge_auth_failures_total",
      "Router 401/407 answers to requests that carried credentials (stale nonces excluded)");
  auto& bans = metrics.counterFamily(
      "evosip_edge_bans_total", "Source addresses banned after repeated authentication failures");
  auto& drainRetries = metrics.counterFamily(
      "evosip_edge_drain_retries_total",
      "Requests a draining router refused, sent on to the next router at once");
  auto& setupLost = metrics.counterFamily(
      "evosip_edge_setup_router_lost_total",
      "Calls in setup whose router died after a provisional response (moved, or answered 408)");
  auto& forwarded = metrics.counterFamily("evosip_edge_router_forwarded_total",
                                          "Requests forwarded to each router");
  auto& timeouts = metrics.counterFamily("evosip_edge_router_timeouts_total",
                                         "Requests a router did not answer in time");
  auto& up = metrics.gaugeFamily("evosip_edge_router_up", "1 when the router is up, 0 when down");
  auto& pending = metrics.gaugeFamily("evosip_edge_pending_requests",
                                      "Requests forwarded to routers and not answered yet");

  struct State {
    std::vector<role::CounterMirror> requests, responses, drops;
    std::unique_ptr<role::CounterMirror> local, failovers, unanswered, probes, probeFailures,
        authFailures, bans, drainRetries, setupLost;
    std::map<std::string, prometheus::Counter*> routerForwarded, routerTimeouts;
    std::map<std::string, double> lastForwarded, lastTimeouts;
    std::map<std::string, prometheus::Gauge*> routerUp;
    prometheus::Gauge* pending = nullptr;
  };
  auto st = std::make_shared<State>();
  for (auto m : kCountedMethods) {
    st->requests.emplace_back(requests.Add({{"method", std::string(m)}}));
  }
  for (int code : kCountedCodes) {
    st->responses.emplace_back(responses.Add({{"code", std::to_string(code)}}));
  }
  for (int cls = 1; cls <= 6; ++cls) {
    st->responses.emplace_back(responses.Add({{"code", fmt::format("{}xx", cls)}}));
  }
  for (size_t r = 0; r < static_cast<size_t>(DropReason::kCount); ++r) {
    st->drops.emplace_back(
        drops.Add({{"reason", std::string(dropReasonName(static_cast<DropReason>(r)))}}));
  }
  st->local = std::make_unique<role::CounterMirror>(local.Add({}));
  st->failovers = std::make_unique<role::CounterMirror>(failovers.Add({}));
  st->unanswered = std::make_unique<role::CounterMirror>(unanswered.Add({}));
  st->probes = std::make_unique<role::CounterMirror>(probes.Add({}));
  st->probeFailures = std::make_unique<role::CounterMirror>(probeFailures.Add({}));
  st->authFailures = std::make_unique<role::CounterMirror>(authFailures.Add({}));
  st->bans = std::make_unique<role::CounterMirror>(bans.Add({}));
  st->drainRetries = std::make_unique<role::CounterMirror>(drainRetries.Add({}));
  st->setupLost = std::make_unique<role::CounterMirror>(setupLost.Add({}));
  st->pending = &pending.Add({});

  metrics.addCollectHook([this, st, &forwarded, &timeouts, &up] {
    const size_t n = proxy->workers();
    auto sum = [&](auto get) {
      double total = 0;
      for (size_t w = 0; w < n; ++w) {
        total += static_cast<double>(get(proxy->counters(w)).load(std::memory_order_relaxed));
      }
      return total;
    };
    for (size_t i = 0; i < st->requests.size(); ++i) {
      st->requests[i].set(sum([i](const WorkerCounters& c) -> auto& { return c.requests[i]; }));
    }
    for (size_t i = 0; i < st->responses.size(); ++i) {
      st->responses[i].set(sum([i](const WorkerCounters& c) -> auto& { return c.responses[i]; }));
    }
    for (size_t i = 0; i < st->drops.size(); ++i) {
      st->drops[i].set(sum([i](const WorkerCounters& c) -> auto& { return c.drops[i]; }));
    }
    st->local->set(sum([](const WorkerCounters& c) -> auto& { return c.localReplies; }));
    st->failovers->set(sum([](const WorkerCounters& c) -> auto& { return c.failovers; }));
    st->unanswered->set(sum([](const WorkerCounters& c) -> auto& { return c.unanswered; }));
    st->probes->set(sum([](const WorkerCounters& c) -> auto& { return c.probesSent; }));
    st->probeFailures->set(sum([](const WorkerCounters& c) -> auto& { return c.probesFailed; }));
    st->authFailures->set(sum([](const WorkerCounters& c) -> auto& { return c.authFailures; }));
    st->bans->set(sum([](const WorkerCounters& c) -> auto& { return c.bans; }));
    st->drainRetries->set(sum([](const WorkerCounters& c) -> auto& { return c.drainRetries; }));
    st->setupLost->set(sum([](const WorkerCounters& c) -> auto& { return c.setupRouterLost; }));
    double pendingTotal = 0;
    for (size_t w = 0; w < n; ++w) {
      pendingTotal += static_cast<double>(proxy->pending(w));
    }
    st->pending->Set(pendingTotal);

    // Per-router series follow the current set: series of removed routers are dropped.
    auto set = proxy->routers();
    const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    std::map<std::string, bool> present;
    for (size_t i = 0; i < set->size(); ++i) {
      const RouterTarget& t = set->at(i);
      present[t.uri] = true;
      if (!st->routerForwarded.count(t.uri)) {
        st->routerForwarded[t.uri] = &forwarded.Add({{"router", t.uri}});
        st->routerTimeouts[t.uri] = &timeouts.Add({{"router", t.uri}});
        st->routerUp[t.uri] = &up.Add({{"router", t.uri}});
      }
      auto advance = [](prometheus::Counter* c, double& last, double total) {
        if (total > last) {
          c->Increment(total - last);
        }
        last = total;
      };
      advance(st->routerForwarded[t.uri], st->lastForwarded[t.uri],
              static_cast<double>(t.forwarded.load()));
      advance(st->routerTimeouts[t.uri], st->lastTimeouts[t.uri],
              static_cast<double>(t.timeouts.load()));
      st->routerUp[t.uri]->Set(t.upAt(now) ? 1 : 0);
    }
    for (auto it = st->routerForwarded.begin(); it != st->routerForwarded.end();) {
      if (present.count(it->first)) {
        ++it;
        continue;
      }
      forwarded.Remove(it->second);
      timeouts.Remove(st->routerTimeouts[it->first]);
      up.Remove(st->routerUp[it->first]);
      st->routerTimeouts.erase(it->first);
      st->routerUp.erase(it->first);
      st->lastForwarded.erase(it->first);
      st->lastTimeouts.erase(it->first);
      it = st->routerForwarded.erase(it);
    }
  });
}

EdgeService::EdgeService(EdgeConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

EdgeService::~EdgeService() {
  stop();
}

void EdgeService::start() {
  Impl& d = *impl_;
  auto routers = RouterSet::build(d.config.routers);
  if (!routers) {
    throw config::ConfigError("edge.routers: " + routers.error().message);
  }
  auto transportSettings = role::transportSettings(d.config.common);
  transportSettings.egressPerWorker = d.config.egressPerWorker;
  d.transport = std::make_unique<transport::SipTransport>(
      d.pool, std::move(transportSettings),
      [&d](runtime::Worker& worker, const transport::Packet& packet) {
        d.proxy->onPacket(worker.index(), packet);
      });
  d.transport->start();  // binds: resolves port 0 before the proxy learns its own address
  EdgeSettings settings = d.config.edge;
  settings.listen = d.transport->bound();
  for (size_t i = 0; i < d.transport->egressCount(); ++i) {
    settings.egressPorts.push_back({d.transport->egressPort(i, false).value_or(0),
                                    d.transport->egressPort(i, true).value_or(0)});
  }
  d.proxy = std::make_unique<EdgeProxy>(
      settings, *routers, d.pool.size(), runtime::SteadyClock::instance(),
      [&d](const transport::Destination& to, std::string_view bytes) {
        return d.transport->send(to, bytes);
      },
      [&d](size_t worker, std::function<void()> fn) { d.pool.post(worker, std::move(fn)); });

  d.registerRpc();
  d.registerMetrics();
  role::exportTransportMetrics(d.metrics, *d.transport);
  d.control = std::make_unique<control::ControlServer>(d.config.common.control, d.rpc, d.metrics,
                                                       [&d] { return d.ready.load(); });
  d.control->start();

  // Failover deadlines are checked a few times per router timeout.
  const auto period = std::chrono::milliseconds(
      std::clamp<int64_t>(d.config.edge.routerTimeout.count() / 5, 10, 100));
  d.ticks =
      std::make_unique<role::WorkerTicks>(d.pool, period, [&d](size_t w) { d.proxy->onTick(w); });
  d.pool.setBatchScheduling(d.config.common.batchScheduling);
  d.pool.start();
  d.ticks->start();
  d.ready = true;
  std::string addrs;
  for (const auto& spec : d.transport->bound()) {
    addrs += (addrs.empty() ? "" : ", ") + spec.str();
  }
  d.logger->info("edge ready: sip {} control {} workers {} routers {}", addrs,
                 d.config.common.control.listen, d.pool.size(), d.config.routers.size());
}

void EdgeService::stop() {
  Impl& d = *impl_;
  if (!d.transport) {
    return;
  }
  d.ready = false;
  if (d.control) {
    d.control->stop();
  }
  if (d.ticks) {  // absent when start() failed before arming them
    d.ticks->stop();
  }
  d.transport->stop();
  d.pool.stop();
  d.ticks.reset();
  d.transport.reset();
}

const std::vector<transport::ListenSpec>& EdgeService::sipAddresses() const {
  return impl_->transport->bound();
}

uint16_t EdgeService::controlPort() const {
  return impl_->control->port();
}

int runEdge(const std::string& configPath) {
  return role::runUntilStopped<EdgeService>("edge", configPath, &readEdgeConfig);
}

}  // namespace evosip::edge
