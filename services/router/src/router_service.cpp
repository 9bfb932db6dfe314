// Wiring of the router role: the workers' Routers, the SIP transport and which worker a packet
// goes to, the store, metrics and the drain.
#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/base/hash.hpp>
#include <evosip/metrics/stats.hpp>
#include <evosip/role/transport_metrics.hpp>
#include <evosip/sip/response.hpp>

#include "router_service_impl.hpp"

namespace evosip::router {

namespace json = boost::json;

void RouterService::Impl::onPacket(runtime::Worker& worker, const transport::Packet& packet) {
  auto msg = sip::Message::parse(packet.data);
  if (!msg) {
    onUnparsable(packet);
    return;
  }
  // A REGISTER is answered here, by the worker that received it: the router keeps no state
  // for it but its server transaction, whose retransmissions come from the same source and
  // so reach this same worker (SO_REUSEPORT hashes the source). Posting it to another
  // worker cost a thread wake-up, the largest single cost of a registration.
  if (msg->isRequest() && msg->method() == sip::Method::kRegister) {
    routers[worker.index()]->onMessage(*msg, packet.source);
    return;
  }
  size_t owner = worker.index();
  if (egressPorts.empty()) {
    // The worker of the Call-ID owns the call's transactions.
    owner = hash64(msg->callId()) % routers.size();
  } else if (msg->isResponse()) {
    owner = ownerOfResponse(*msg, owner);
  } else if (msg->method() == sip::Method::kCancel && routers.size() > 1 &&
             !routers[owner]->knows(*msg)) {
    // The worker that received a request owns its transactions: retransmissions, its ACK
    // and CANCEL come over the same flow (the same SO_REUSEPORT hash, the same TCP
    // connection) to the same worker. A CANCEL from another flow (another source port, a
    // new connection) looks for its INVITE on the other workers before it is answered 481.
    seekCancel((owner + 1) % routers.size(), 1, std::string(packet.data), packet.source);
    return;
  }
  if (owner == worker.index()) {
    routers[owner]->onMessage(*msg, packet.source);
    return;
  }
  pool.post(owner, [this, owner, bytes = std::string(packet.data), src = packet.source] {
    if (auto m = sip::Message::parse(bytes)) {
      routers[owner]->onMessage(*m, src);
    }
  });
}

// Counted; a request over UDP whose request line and headers can be found gets a 400.
void RouterService::Impl::onUnparsable(const transport::Packet& packet) {
  parseDrops.fetch_add(1, std::memory_order_relaxed);
  if (packet.source.protocol == transport::Protocol::kUdp) {
    std::string reply = sip::buildUnframedResponse(packet.data, 400);
    if (!reply.empty()) {
      transport->send({transport::Protocol::kUdp, packet.source.remote, {}}, reply);
    }
  }
}

// Our requests leave from the sending worker's egress port (in our Via) and the answers come
// back to that socket; a request that followed a Route left from the listen port, and its
// answer is handed to the worker named in the branch. Else the worker that received it.
size_t RouterService::Impl::ownerOfResponse(const sip::Message& msg, size_t received) const {
  auto via = msg.topVia();
  if (!via) {
    return received;
  }
  if (auto it = egressPorts.find(via->port); via->port != 0 && it != egressPorts.end()) {
    return it->second;
  }
  if (auto branch = via->branch()) {
    if (auto w = transaction::TransactionLayer::workerOfBranch(*branch); w && *w < routers.size()) {
      return *w;
    }
  }
  return received;
}

// A CANCEL tried on `tried` workers so far: handled here if its INVITE is here or no worker
// is left to try (then answered 481 here).
void RouterService::Impl::seekCancel(size_t at, size_t tried, std::string bytes,
                                     transport::Source src) {
  pool.post(at, [this, at, tried, bytes = std::move(bytes), src]() mutable {
    auto m = sip::Message::parse(bytes);
    if (!m) {
      return;
    }
    if (tried + 1 >= routers.size() || routers[at]->knows(*m)) {
      routers[at]->onMessage(*m, src);
      return;
    }
    seekCancel((at + 1) % routers.size(), tried + 1, std::move(bytes), src);
  });
}

void RouterService::Impl::setWork() {
  role::WorkHooks work;
  // New registrations and calls get 503.
  work.refuseNew = [this](bool draining) { shared->draining = draining; };
  // The router keeps no dialog state of its own (dialogs are in the store): what it must finish
  // is its proxy transactions.
  work.inProgress = [this] {
    uint64_t transactions = 0;
    for (const auto& r : routers) {
      transactions += static_cast<uint64_t>(r->counters().proxyContexts.load());
    }
    return transactions;
  };
  work.describe = [this](json::object& o) {
    int64_t dialogs = 0;
    for (const auto& r : routers) {
      dialogs += static_cast<int64_t>(r->counters().dialogsCreated.load()) -
                 static_cast<int64_t>(r->counters().dialogsRemoved.load());
    }
    o["transactions"] = o["in_progress"];
    o["dialogs"] = std::max<int64_t>(0, dialogs);
  };
  host.setWork(std::move(work));
}

namespace {

std::string_view verifyResultLabel(size_t i) {
  return auth::verifyResultName(static_cast<auth::VerifyResult>(i));
}

std::string_view rejectionLabel(size_t i) {
  return rejectionName(static_cast<Rejection>(i));
}

}  // namespace

void RouterService::Impl::registerMetrics() {
  metrics::exposeStats<RouterCounters>(
      metrics, EVOSIP_STAT_TABLE(RouterCounters, EVOSIP_ROUTER_STATS), [this](const auto& visit) {
        for (const auto& r : routers) {
          visit(r->counters());
        }
      });
  auto& active = metrics
                     .gaugeFamily("evosip_router_dialogs_active",
                                  "Dialogs this instance created minus those it removed (others "
                                  "may remove them)")
                     .Add({});
  auto& parse =
      metrics.counterFamily("evosip_router_parse_drops_total", "Messages that could not be parsed")
          .Add({});
  auto& invalidated = metrics
                          .counterFamily("evosip_router_credential_invalidations_total",
                                         "auth.invalidate calls applied (the api sends one per "
                                         "change of a subscriber)")
                          .Add({});
  auto& names = metrics.gaugeFamily("evosip_router_dns_names",
                                    "Host names of requests' next hops: answers cached "
                                    "(dns.max_cached), lookups queued or in progress "
                                    "(dns.max_lookups)");
  auto& cachedNames = names.Add({{"state", "cached"}});
  auto& lookingUp = names.Add({{"state", "looking_up"}});
  metrics.addCollectHook([this, &cachedNames, &lookingUp] {
    if (const auto* resolver = shared ? shared->nextHops() : nullptr) {
      cachedNames.Set(static_cast<double>(resolver->cachedCount()));
      lookingUp.Set(static_cast<double>(resolver->lookupsInProgress()));
    }
  });
  metrics.addCollectHook([this, &active, parse = metrics::CounterMirror(parse),
                          invalidated = metrics::CounterMirror(invalidated)]() mutable {
    double created = 0;
    double removed = 0;
    for (const auto& r : routers) {
      created += metrics::statValue(r->counters().dialogsCreated);
      removed += metrics::statValue(r->counters().dialogsRemoved);
    }
    active.Set(std::max(0.0, created - removed));
    parse.set(static_cast<double>(parseDrops.load()));
    invalidated.set(static_cast<double>(invalidations.load()));
  });
}

TimedStore::Histograms RouterService::Impl::storeLatencyHistograms() {
  auto& latency = metrics.histogramFamily("evosip_router_store_latency_seconds",
                                          "Store operations, from request to answer");
  const prometheus::Histogram::BucketBoundaries buckets{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
  return TimedStore::Histograms{
      &latency.Add({{"op", "bindings"}}, buckets), &latency.Add({{"op", "dialogs"}}, buckets),
      &latency.Add({{"op", "nonce_count"}}, buckets), &latency.Add({{"op", "ping"}}, buckets)};
}

// One Router per worker, each with its own store connection and, with egress sockets, its own
// egress ports in its Via. The transport is bound already (the routers need the egress ports).
void RouterService::Impl::makeRouters() {
  std::vector<uint16_t> allEgressPorts;
  for (size_t i = 0; i < transport->egressCount(); ++i) {
    for (bool v6 : {false, true}) {
      if (auto port = transport->egressPort(i, v6)) {
        egressPorts[*port] = transport->egressWorker(i);
        allEgressPorts.push_back(*port);
      }
    }
  }
  const TimedStore::Histograms histograms = storeLatencyHistograms();
  for (size_t w = 0; w < pool.size(); ++w) {
    transaction::ProxySettings proxy = config.router.proxy;
    if (transport->egressCount() > 0) {
      proxy.egress = static_cast<int32_t>(w);  // one egress socket per worker
      proxy.egressPort[0] = transport->egressPort(w, false).value_or(0);
      proxy.egressPort[1] = transport->egressPort(w, true).value_or(0);
      proxy.alsoViaPorts = allEgressPorts;
    }
    routers.push_back(std::make_unique<Router>(
        *shared, pool.at(w).io(),
        std::make_unique<TimedStore>(storeFactory->open(pool.at(w).io().get_executor()),
                                     histograms),
        clock,
        [this](const transport::Destination& to, std::string_view bytes) {
          return transport->send(to, bytes);
        },
        std::move(proxy), egressPorts.empty() ? -1 : static_cast<int32_t>(w)));
  }
}

// The ready line, and the warnings of a configuration that works but is unsafe.
void RouterService::Impl::logReady() {
  std::string addrs;
  for (const auto& spec : transport->bound()) {
    addrs += (addrs.empty() ? "" : ", ") + spec.str();
  }
  logger->info("router ready: sip {} control {} domain {} store {} workers {} api {}", addrs,
               config.common.control.listen, config.router.domain, config.store.backend,
               pool.size(), config.router.api);
  if (!config.router.requireQop) {
    logger->warn("router.auth_require_qop is off: qop-less answers can be replayed");
  }
  for (const auto& n : config.dialplan.numbers()) {
    // A mailbox that changes with the caller's From or To resolves to whatever they write.
    if (n.isPublic &&
        Dialplan::mailboxOf(n, "from-user", "to-user") != Dialplan::mailboxOf(n, "", "")) {
      logger->warn(
          "router.dialplan.{}: public, with a mailbox the caller names: anyone may "
          "leave messages in any subscriber's mailbox",
          n.number);
    }
  }
}

Result<void> RouterService::Impl::assignSet(const role::SetRequest& request) {
  if (request.set == "apps") {
    return sets.assign(request, role::TargetForm::kSipUri, 5060,
                       [this](std::shared_ptr<role::TargetSet> s) { shared->setApps(s); });
  }
  return sets.assign(request, role::TargetForm::kAddress, kNgPort,
                     [this](std::shared_ptr<role::TargetSet> s) { shared->setMedia(s); });
}

RouterService::RouterService(RouterConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}

RouterService::~RouterService() {
  stop();
}

void RouterService::start() {
  Impl& d = *impl_;
  d.shared = std::make_unique<RouterShared>(d.config.router, d.config.nonces, d.config.dialplan,
                                            *role::TargetSet::build({}), d.clock);
  // Requests' next hops by host name: a resolver and a cache of their own (the names of the
  // peer sets are never evicted by them).
  d.shared->setNextHops(std::make_unique<transport::Resolver>(d.config.dns, nullptr));
  // Names in router.apps and router.media.relays are looked up now; the first calls wait for no
  // answer still missing.
  if (auto set = d.assignSet({"apps", d.config.apps, {}}); !set) {
    throw config::ConfigError("router.apps: " + set.error().message);
  }
  if (auto set = d.assignSet({"media", d.config.mediaRelays, {}}); !set) {
    throw config::ConfigError("router.media.relays: " + set.error().message);
  }
  d.sets.waitAnswered(role::SetResolver::startWait(d.config.dns));
  d.storeFactory = store::makeStoreFactory(d.config.store);
  auto transportSettings = role::transportSettings(d.config.common);
  transportSettings.egressPerWorker = d.config.egressSockets ? 1 : 0;
  d.transport = std::make_unique<transport::SipTransport>(
      d.pool, std::move(transportSettings),
      [&d](runtime::Worker& w, const transport::Packet& p) { d.onPacket(w, p); });
  // A TCP next hop that could not be reached: the sending worker's transactions learn it.
  d.transport->onSendFailure([&d](runtime::Worker& w, const transport::Destination& to) {
    if (w.index() < d.routers.size()) {
      d.routers[w.index()]->onTransportFailure(to);
    }
  });
  // Bound before the routers are made (they need the egress ports); nothing is received
  // before the pool starts.
  d.transport->start();
  d.makeRouters();
  d.registerRpc();
  d.registerMetrics();
  d.setWork();
  role::exportTransportMetrics(d.metrics, *d.transport);
  // RFC 3261 timers: T1 is 500 ms, a 10 ms tick is well inside every deadline's tolerance.
  d.host.tickEvery(std::chrono::milliseconds(10), [&d](size_t w) { d.routers[w]->onTick(); });
  d.pool.setBatchScheduling(d.config.common.batchScheduling);
  d.host.start();
  d.host.markReady();
  d.logReady();
}

void RouterService::stop() {
  Impl& d = *impl_;
  if (!d.transport) {
    return;
  }
  d.host.stopServing();
  d.transport->stop();
  d.host.stopWorkers();
  d.routers.clear();
  d.transport.reset();
}

const std::vector<transport::ListenSpec>& RouterService::sipAddresses() const {
  return impl_->transport->bound();
}

uint16_t RouterService::controlPort() const {
  return impl_->host.controlPort();
}

role::Host& RouterService::host() {
  return impl_->host;
}

int runRouter(const std::string& configPath) {
  return role::run<RouterService>(configPath, &readRouterConfig);
}

}  // namespace evosip::router
