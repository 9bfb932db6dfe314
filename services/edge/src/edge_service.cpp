#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/edge/edge_service.hpp>
#include <evosip/metrics/stats.hpp>
#include <evosip/role/set_request.hpp>
#include <evosip/role/set_resolver.hpp>
#include <evosip/role/transport_metrics.hpp>
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

// edge.egress_addresses: at most one unicast IP per family.
std::vector<boost::asio::ip::address> readEgressAddresses(config::Document& doc) {
  const std::string key = "edge.egress_addresses";
  std::vector<boost::asio::ip::address> out;
  for (const auto& text : doc.getList(key, {})) {
    auto parsed = transport::parseNumericHost(text);
    if (!parsed || parsed->is_unspecified() || parsed->is_multicast()) {
      throw config::ConfigError(key + ": '" + text + "' is not a unicast IP address");
    }
    const auto ip = *parsed;
    for (const auto& other : out) {
      if (other.is_v6() == ip.is_v6()) {
        throw config::ConfigError(key + ": more than one address of the same family");
      }
    }
    out.push_back(ip);
  }
  return out;
}

role::SetRequest routerRequest(std::vector<std::string> targets) {
  return role::SetRequest{"routers", std::move(targets), {}};
}

}  // namespace

EdgeConfig readEdgeConfig(config::Document& doc) {
  EdgeConfig c;
  c.common = role::readCommon(doc, {"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"}, "127.0.0.1:8060",
                              "batch", kDrainIdleS);
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
  c.edge.egressAddresses = readEgressAddresses(doc);
  c.readyNeedsRouter = doc.getBool("edge.ready_needs_router", true);
  c.dns = role::readResolverSettings(doc);
  c.edge.advertiseHost = c.common.advertiseHost;
  c.edge.advertisePort = c.common.advertisePort;
  c.edge.limits.maxSize = c.common.maxMessageSize;
  doc.checkUnknownKeys();
  // Validate the router list now so that a typo stops start-up.
  if (auto set =
          role::SetResolver::check(routerRequest(c.routers), role::TargetForm::kSipUri, 5060);
      !set) {
    throw config::ConfigError("edge.routers: " + set.error().message);
  }
  return c;
}

struct EdgeService::Impl {
  explicit Impl(EdgeConfig c)
      : config(std::move(c)),
        host("edge", config.common, config.common.workers),
        pool(host.pool()),
        logger(host.logger()),
        metrics(host.metrics()),
        rpc(host.rpc()),
        sets(config.dns) {}

  EdgeConfig config;
  role::Host host;
  runtime::WorkerPool& pool;
  std::shared_ptr<spdlog::logger> logger;
  metrics::Registry& metrics;
  control::RpcRegistry& rpc;
  std::unique_ptr<transport::SipTransport> transport;
  std::unique_ptr<EdgeProxy> proxy;
  // The router set's entries and the DNS answers of its names; publishes to proxy.
  role::SetResolver sets;

  // Sums one counter over the workers.
  template <typename Get>
  uint64_t sum(Get get) const {
    uint64_t total = 0;
    for (size_t w = 0; w < proxy->workers(); ++w) {
      total += get(proxy->counters(w));
    }
    return total;
  }

  void registerRpc();
  void registerMetrics();
  void registerRouterMetrics();
  void setWork();
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
      if (!t.name.empty()) {
        o["name"] = t.name;
      }
      o["address"] = t.endpoint.str();
      o["state"] = !t.upAt(now) ? "down" : t.drainingAt(now) ? "draining" : "up";
      o["forwarded"] = t.forwarded.load();
      o["responses"] = t.responses.load();
      o["timeouts"] = t.timeouts.load();
      routers.push_back(std::move(o));
    }
    json::object result;
    result["routers"] = std::move(routers);
    result["names"] = sets.names("routers");
    return json::value(std::move(result));
  });
  rpc.add("dispatcher.set", [this](const json::value& params) -> control::RpcResult {
    auto request = role::parseSetRequest(params);
    if (!request) {
      return control::invalidParams(request.error());
    }
    if (request->set != "routers") {
      return control::invalidParams("set: the edge has one set, \"routers\"");
    }
    const std::vector<std::string>& uris = request->targets;
    auto assigned = sets.assign(*request, role::TargetForm::kSipUri, 5060,
                                [this](std::shared_ptr<RouterSet> set) { proxy->setRouters(set); });
    if (!assigned) {
      return control::invalidParams("targets: " + assigned.error().message);
    }
    logger->info("router set replaced: {} targets, {} draining", uris.size(),
                 request->draining.size());
    json::object result;
    result["set"] = "routers";
    result["targets"] = uris.size();
    return json::value(std::move(result));
  });
}

namespace {

std::string methodLabel(size_t i) {
  return std::string(kCountedMethods[i]);
}

std::string codeLabel(size_t i) {
  return i < kCountedCodes.size() ? std::to_string(kCountedCodes[i])
                                  : fmt::format("{}xx", i - kCountedCodes.size() + 1);
}

std::string_view dropLabel(size_t i) {
  return dropReasonName(static_cast<DropReason>(i));
}

}  // namespace

void EdgeService::Impl::registerMetrics() {
  metrics::exposeStats<WorkerCounters>(
      metrics, EVOSIP_STAT_TABLE(WorkerCounters, EVOSIP_EDGE_STATS), [this](const auto& visit) {
        for (size_t w = 0; w < proxy->workers(); ++w) {
          visit(proxy->counters(w));
        }
      });
  auto& pending = metrics
                      .gaugeFamily("evosip_edge_pending_requests",
                                   "Requests forwarded to routers and not answered yet")
                      .Add({});
  metrics.addCollectHook([this, &pending] {
    double total = 0;
    for (size_t w = 0; w < proxy->workers(); ++w) {
      total += static_cast<double>(proxy->pending(w));
    }
    pending.Set(total);
  });
  registerRouterMetrics();
}

// Per-router series follow the current set: series of removed routers are dropped.
void EdgeService::Impl::registerRouterMetrics() {
  auto& forwarded = metrics.counterFamily("evosip_edge_router_forwarded_total",
                                          "Requests forwarded to each router");
  auto& timeouts = metrics.counterFamily("evosip_edge_router_timeouts_total",
                                         "Requests a router did not answer in time");
  auto& up = metrics.gaugeFamily("evosip_edge_router_up", "1 when the router is up, 0 when down");
  struct State {
    std::map<std::string, prometheus::Counter*> routerForwarded, routerTimeouts;
    std::map<std::string, double> lastForwarded, lastTimeouts;
    std::map<std::string, prometheus::Gauge*> routerUp;
  };
  auto st = std::make_shared<State>();
  metrics.addCollectHook([this, st, &forwarded, &timeouts, &up] {
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

void EdgeService::Impl::setWork() {
  // The edge keeps no dialog: it forwards everything (new and in-dialog requests) while the
  // tier in front withdraws its route, and leaves once requests stop arriving.
  role::WorkHooks work;
  work.inProgress = [this] {
    uint64_t total = 0;
    for (size_t w = 0; w < proxy->workers(); ++w) {
      total += proxy->pending(w);
    }
    return total;
  };
  work.arrivals = [this] {
    return sum([](const WorkerCounters& c) {
      uint64_t n = 0;
      for (const auto& r : c.requests) {
        n += r.load(std::memory_order_relaxed);
      }
      return n;
    });
  };
  host.setWork(std::move(work));
}

EdgeService::EdgeService(EdgeConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

EdgeService::~EdgeService() {
  stop();
}

void EdgeService::start() {
  Impl& d = *impl_;
  auto transportSettings = role::transportSettings(d.config.common);
  transportSettings.egressPerWorker = d.config.egressPerWorker;
  transportSettings.egressAddresses = d.config.edge.egressAddresses;
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
  settings.egressPerWorker = d.config.egressPerWorker;
  d.proxy = std::make_unique<EdgeProxy>(
      settings, *RouterSet::build({}), d.pool.size(), runtime::SteadyClock::instance(),
      [&d](const transport::Destination& to, std::string_view bytes) {
        return d.transport->send(to, bytes);
      },
      [&d](size_t worker, std::function<void()> fn) { d.pool.post(worker, std::move(fn)); });
  // Names in edge.routers are looked up now; the first calls wait for no answer still missing.
  if (auto set = d.sets.assign(routerRequest(d.config.routers), role::TargetForm::kSipUri, 5060,
                               [&d](std::shared_ptr<RouterSet> s) { d.proxy->setRouters(s); });
      !set) {
    throw config::ConfigError("edge.routers: " + set.error().message);
  }
  d.sets.waitAnswered(role::SetResolver::startWait(d.config.dns));

  d.registerRpc();
  d.registerMetrics();
  d.setWork();
  role::exportTransportMetrics(d.metrics, *d.transport);
  // Failover deadlines are checked a few times per router timeout.
  const auto period = std::chrono::milliseconds(
      std::clamp<int64_t>(d.config.edge.routerTimeout.count() / 5, 10, 100));
  d.host.tickEvery(period, [&d](size_t w) { d.proxy->onTick(w); });
  d.pool.setBatchScheduling(d.config.common.batchScheduling);
  if (d.config.readyNeedsRouter) {
    // An edge cut off from every router withdraws (its front tier sends callers elsewhere)
    // rather than answer them 503.
    d.host.setReadyCheck([&d] { return d.proxy->anyRouterUp(); });
  }
  d.host.start();
  d.host.markReady();
  std::string addrs;
  for (const auto& spec : d.transport->bound()) {
    addrs += (addrs.empty() ? "" : ", ") + spec.str();
  }
  d.logger->info("edge ready: sip {} control {} workers {} io {} routers {}", addrs,
                 d.config.common.control.listen, d.pool.size(),
                 runtime::ioModeName(d.pool.ioMode()), d.config.routers.size());
}

void EdgeService::stop() {
  Impl& d = *impl_;
  if (!d.transport) {
    return;
  }
  d.host.stopServing();
  d.transport->stop();
  d.host.stopWorkers();
  d.transport.reset();
}

const std::vector<transport::ListenSpec>& EdgeService::sipAddresses() const {
  return impl_->transport->bound();
}

uint16_t EdgeService::controlPort() const {
  return impl_->host.controlPort();
}

role::Host& EdgeService::host() {
  return impl_->host;
}

int runEdge(const std::string& configPath) {
  return role::run<EdgeService>(configPath, &readEdgeConfig);
}

}  // namespace evosip::edge
