#include <arpa/inet.h>
#include <future>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>
#include <unordered_map>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <openssl/rand.h>

#include <evosip/base/hash.hpp>
#include <evosip/metrics/stats.hpp>
#include <evosip/role/transport_metrics.hpp>
#include <evosip/router/router_service.hpp>
#include <evosip/router/timed_store.hpp>
#include <evosip/runtime/worker_pool.hpp>
#include <evosip/sip/response.hpp>

namespace evosip::router {

namespace json = boost::json;

namespace {

// The addresses of this host's interfaces, of one family.
std::vector<std::string> localAddresses(bool v6) {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return out;
  }
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != (v6 ? AF_INET6 : AF_INET)) {
      continue;
    }
    char text[INET6_ADDRSTRLEN] = {};
    const void* addr =
        v6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr)
           : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr);
    if (::inet_ntop(v6 ? AF_INET6 : AF_INET, addr, text, sizeof text) != nullptr) {
      out.emplace_back(text);
    }
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace

RouterConfig readRouterConfig(config::Document& doc) {
  RouterConfig c;
  c.common = role::readCommon(doc, {"udp:127.0.0.1:5070"}, "127.0.0.1:8070", "batch", kDrainIdleS);
  auto& r = c.router;
  r.domain = doc.getString("router.domain", "evosip.local");
  if (r.domain.empty()) {
    throw config::ConfigError("router.domain: must not be empty");
  }
  r.aliases = doc.getList("router.aliases", {"127.0.0.1"});
  r.api = doc.getString("router.api", "127.0.0.1:8080");
  r.apiToken = config::readSecret(doc.getString("router.api_token", ""));
  r.apiTimeout = std::chrono::milliseconds(doc.getInt("router.api_timeout_ms", 2000, 100, 60000));
  r.credentials.ttl = std::chrono::seconds(doc.getInt("router.credential_ttl_s", 300, 0, 86400));
  r.challengeAlgorithms.clear();
  for (const auto& name : doc.getList("router.auth_algorithms", {"MD5", "SHA-256"})) {
    auto a = auth::algorithmFromName(name);
    if (!a) {
      throw config::ConfigError(
          fmt::format("router.auth_algorithms: '{}' is not MD5 or SHA-256", name));
    }
    r.challengeAlgorithms.push_back(*a);
  }
  if (r.challengeAlgorithms.empty()) {
    throw config::ConfigError("router.auth_algorithms: at least one algorithm");
  }
  r.requireQop = doc.getBool("router.auth_require_qop", true);
  r.registrar.defaultExpires =
      static_cast<uint32_t>(doc.getInt("router.expires.default", 3600, 1, 604800));
  r.registrar.minExpires = static_cast<uint32_t>(doc.getInt("router.expires.min", 60, 1, 604800));
  r.registrar.maxExpires = static_cast<uint32_t>(doc.getInt("router.expires.max", 7200, 1, 604800));
  if (r.registrar.minExpires > r.registrar.maxExpires) {
    throw config::ConfigError("router.expires.min: larger than router.expires.max");
  }
  r.dialogMaxDuration =
      std::chrono::seconds(doc.getInt("router.dialog_max_duration_s", 43200, 60, 604800));
  const bool recordRoute = doc.getBool("router.record_route", false);
  c.egressSockets = doc.getBool("router.egress_sockets", true);
  r.instanceId = doc.getString("router.instance_id", "");
  // Server transactions a worker holds before it answers 503: a REGISTER's transaction lives
  // 32 s after its answer (RFC 3261 Timer J), so 4,000 registrations/s from one peer (one
  // worker) hold 256,000.
  r.layer.maxServerTransactions =
      static_cast<size_t>(doc.getInt("router.max_transactions", 300000, 1000, 10000000));
  r.layer.maxClientTransactions = r.layer.maxServerTransactions;
  // Bytes of transactions a worker holds before it answers 503: what bounds a flood of requests
  // that never complete (a transaction of a forwarded INVITE holds ~3 KB for up to 3 minutes).
  r.layer.maxTransactionBytes = static_cast<size_t>(
      doc.getInt("router.max_transaction_bytes", 128ll << 20, 1ll << 20, 64ll << 30));
  r.proxy.maxForwards = static_cast<uint32_t>(doc.getInt("router.max_forwards", 20, 1, 255));
  r.registrar.maxContacts = static_cast<size_t>(doc.getInt("router.max_contacts", 10, 1, 1000));
  r.registrar.maxBindingBytes =
      static_cast<size_t>(doc.getInt("router.max_binding_bytes", 16384, 1024, 1 << 20));

  std::string secret = config::readSecret(doc.getString("router.nonce_secret", ""));
  if (secret.empty()) {
    unsigned char raw[32];
    RAND_bytes(raw, sizeof raw);
    secret.assign(reinterpret_cast<const char*>(raw), sizeof raw);
  } else if (secret.size() < auth::NonceCodec::kMinSecretSize) {
    throw config::ConfigError(fmt::format("router.nonce_secret: at least {} characters",
                                          auth::NonceCodec::kMinSecretSize));
  }
  c.nonces.secret = secret;
  c.nonces.lifetime = std::chrono::seconds(doc.getInt("router.nonce_lifetime_s", 300, 1, 86400));

  c.apps = doc.getList("router.apps", {});
  c.mediaRelays = doc.getList("router.media.relays", {});
  const std::string mode = doc.getString("router.media.mode", "nat");
  if (auto m = mediaModeFromName(mode)) {
    r.mediaMode = *m;
  } else {
    throw config::ConfigError(
        fmt::format("router.media.mode: '{}' is not never, nat or always", mode));
  }
  r.ng.timeout = std::chrono::milliseconds(doc.getInt("router.media.timeout_ms", 1000, 50, 30000));
  r.ng.retries = static_cast<int>(doc.getInt("router.media.retries", 2, 0, 10));
  r.relayHoldDown = std::chrono::seconds(doc.getInt("router.media.hold_down_s", 10, 0, 3600));
  r.appTimeout = std::chrono::milliseconds(doc.getInt("router.app_timeout_ms", 2000, 0, 60000));
  r.appHoldDown = std::chrono::seconds(doc.getInt("router.app_hold_down_s", 10, 0, 3600));
  for (const auto& number : doc.childKeys("router.dialplan")) {
    ServiceNumber n;
    n.number = number;
    const std::string base = "router.dialplan." + number;
    for (const auto& key : doc.childKeys(base)) {
      if (key == "public") {
        n.isPublic = doc.getBool(base + ".public", false);
        continue;
      }
      std::string value = doc.getString(base + "." + key, "");
      if (key == "action") {
        n.action = value;
      } else if (key == "media") {
        n.media = mediaModeFromName(value);
        if (!n.media) {
          throw config::ConfigError(
              fmt::format("{}.media: '{}' is not never, nat or always", base, value));
        }
      } else {
        n.params.emplace_back(headerSuffix(key), value);
      }
    }
    if (n.action.empty()) {
      throw config::ConfigError(fmt::format("{}.action: required", base));
    }
    if (n.action == "Voicemail" && !Dialplan::mailboxOf(n, "", "")) {
      throw config::ConfigError(fmt::format("{}.mailbox: required for Voicemail", base));
    }
    c.dialplan.add(std::move(n));
  }

  c.store.backend = doc.getString("store.backend", "memory");
  if (c.store.backend != "memory" && c.store.backend != "redis") {
    throw config::ConfigError(
        fmt::format("store.backend: '{}' is not memory or redis", c.store.backend));
  }
  c.store.redis.host = doc.getString("store.redis.host", "127.0.0.1");
  c.store.redis.port = static_cast<uint16_t>(doc.getInt("store.redis.port", 6379, 1, 65535));
  if (auto pw = config::readSecret(doc.getString("store.redis.password", "")); !pw.empty()) {
    c.store.redis.password = pw;
  }
  c.store.redis.db = static_cast<int>(doc.getInt("store.redis.db", 0, 0, 1000));
  doc.checkUnknownKeys();

  if (auto set = role::TargetSet::build(c.apps); !set) {
    throw config::ConfigError("router.apps: " + set.error().message);
  }
  if (auto set = role::TargetSet::buildAddresses(c.mediaRelays, 2223); !set) {
    throw config::ConfigError("router.media.relays: " + set.error().message);
  }
  // Our address for Via, Record-Route and the Route entries that name us.
  const auto& first = c.common.listen.front();
  std::string host =
      c.common.advertiseHost.empty() ? first.endpoint.hostForUri() : c.common.advertiseHost;
  uint16_t port = c.common.advertisePort != 0 ? c.common.advertisePort : first.endpoint.port;
  r.proxy.viaHost = host;
  r.proxy.viaPort = port;
  for (const auto& spec : c.common.listen) {
    r.proxy.self.emplace_back(spec.endpoint.ip.to_string(), spec.endpoint.port);
    if (spec.endpoint.ip.is_unspecified()) {
      // A wildcard listen address: every local address of its family names us.
      for (const auto& ip : localAddresses(spec.endpoint.ip.is_v6())) {
        r.proxy.self.emplace_back(ip, spec.endpoint.port);
      }
    }
  }
  if (!c.common.advertiseHost.empty()) {
    std::string h = c.common.advertiseHost;
    if (h.size() > 2 && h.front() == '[') {
      h = h.substr(1, h.size() - 2);
    }
    r.proxy.self.emplace_back(h, port);
  }
  if (recordRoute) {
    r.recordRoute = fmt::format("sip:{}:{};lr", host, port);
  }
  if (r.instanceId.empty()) {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    r.instanceId = fmt::format("{}:{}", name, port);
  }
  return c;
}

struct RouterService::Impl {
  explicit Impl(RouterConfig c)
      : config(std::move(c)),
        host("router", config.common, config.common.workers),
        pool(host.pool()),
        logger(host.logger()),
        metrics(host.metrics()),
        rpc(host.rpc()) {}

  RouterConfig config;
  const runtime::Clock& clock = runtime::SteadyClock::instance();
  role::Host host;
  runtime::WorkerPool& pool;
  std::shared_ptr<spdlog::logger> logger;
  metrics::Registry& metrics;
  control::RpcRegistry& rpc;
  std::unique_ptr<RouterShared> shared;
  std::shared_ptr<store::StoreFactory> storeFactory;
  std::vector<std::unique_ptr<Router>> routers;
  std::unique_ptr<transport::SipTransport> transport;
  std::atomic<uint64_t> parseDrops{0};
  // Egress port -> the worker that owns it (router.egress_sockets); empty: Call-ID ownership.
  std::unordered_map<uint16_t, size_t> egressPorts;

  void onPacket(runtime::Worker& worker, const transport::Packet& packet) {
    auto msg = sip::Message::parse(packet.data);
    if (!msg) {
      parseDrops.fetch_add(1, std::memory_order_relaxed);
      if (packet.source.protocol == transport::Protocol::kUdp) {
        std::string reply = sip::buildUnframedResponse(packet.data, 400);
        if (!reply.empty()) {
          transport->send({transport::Protocol::kUdp, packet.source.remote, {}}, reply);
        }
      }
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
      // Our requests leave from the sending worker's egress port (in our Via) and the answers
      // come back to that socket; a request that followed a Route left from the listen port,
      // and its answer is handed to the worker named in the branch.
      if (auto via = msg->topVia()) {
        if (auto it = egressPorts.find(via->port); via->port != 0 && it != egressPorts.end()) {
          owner = it->second;
        } else if (auto branch = via->branch()) {
          if (auto w = transaction::TransactionLayer::workerOfBranch(*branch);
              w && *w < routers.size()) {
            owner = *w;
          }
        }
      }
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

  // A CANCEL tried on `tried` workers so far: handled here if its INVITE is here or no worker
  // is left to try (then answered 481 here).
  void seekCancel(size_t at, size_t tried, std::string bytes, transport::Source src) {
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

  // Runs fn(Router&) on worker 0 and waits for its answer (RPC handlers run on the control
  // thread; the store answers on the worker).
  control::RpcResult onWorker(
      const std::function<void(Router&, std::function<void(control::RpcResult)>)>& fn) {
    auto promise = std::make_shared<std::promise<control::RpcResult>>();
    auto future = promise->get_future();
    pool.post(0, [this, fn, promise] {
      fn(*routers[0], [promise](control::RpcResult r) { promise->set_value(std::move(r)); });
    });
    if (future.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      return tl::unexpected(control::RpcError{control::kInternalError, "store timeout", nullptr});
    }
    return future.get();
  }

  void registerRpc();
  void registerMetrics();
  void setWork();
};

namespace {

json::object bindingJson(const store::Binding& b) {
  json::object o;
  o["aor"] = b.aor;
  o["contact"] = b.contact;
  json::array path;
  for (const auto& p : b.path) {
    path.push_back(json::string(p));
  }
  o["path"] = std::move(path);
  const auto left =
      std::chrono::duration_cast<std::chrono::seconds>(b.expires - store::systemNow());
  o["expires"] = std::max<int64_t>(0, left.count());
  o["q"] = b.q;
  o["call_id"] = b.callId;
  o["cseq"] = b.cseq;
  o["received"] = b.received;
  o["user_agent"] = b.userAgent;
  o["router"] = b.router;
  return o;
}

json::object dialogJson(const store::DialogRecord& d) {
  json::object o;
  o["call_id"] = d.id.callId;
  o["from_tag"] = d.id.fromTag;
  o["to_tag"] = d.id.toTag;
  o["caller_contact"] = d.callerContact;
  o["callee_contact"] = d.calleeContact;
  o["owner"] = d.owner;
  o["media_relay"] = d.mediaRelay;
  o["age_s"] =
      std::chrono::duration_cast<std::chrono::seconds>(store::systemNow() - d.created).count();
  return o;
}

std::string stringParam(const json::value& params, const char* name) {
  const auto* o = params.if_object();
  const auto* v = o ? o->if_contains(name) : nullptr;
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

control::RpcResult storeError(const Error& e) {
  return tl::unexpected(control::RpcError{control::kInternalError, "store: " + e.message, nullptr});
}

}  // namespace

void RouterService::Impl::registerRpc() {
  rpc.add("location.lookup", [this](const json::value& params) -> control::RpcResult {
    std::string aor = stringParam(params, "aor");
    if (aor.empty()) {
      return control::invalidParams("aor: \"user@domain\" is required");
    }
    return onWorker([aor](Router& r, auto done) {
      r.store().getBindings(aor, [done](Result<std::vector<store::Binding>> res) {
        if (!res) {
          done(storeError(res.error()));
          return;
        }
        json::array list;
        for (const auto& b : *res) {
          list.push_back(bindingJson(b));
        }
        done(json::value(json::object{{"bindings", std::move(list)}}));
      });
    });
  });
  rpc.add("location.list", [this](const json::value& params) -> control::RpcResult {
    std::string cursor = stringParam(params, "cursor");
    size_t count = 100;
    if (const auto* o = params.if_object(); o && o->if_contains("count")) {
      const auto& c = o->at("count");
      if (!c.is_int64() || c.as_int64() < 1 || c.as_int64() > 1000) {
        return control::invalidParams("count: an integer 1..1000");
      }
      count = static_cast<size_t>(c.as_int64());
    }
    return onWorker([cursor, count](Router& r, auto done) {
      r.store().listAors(cursor, count, [done](Result<store::Page<std::string>> res) {
        if (!res) {
          done(storeError(res.error()));
          return;
        }
        json::array aors;
        for (const auto& a : res->items) {
          aors.push_back(json::string(a));
        }
        done(json::value(json::object{{"aors", std::move(aors)}, {"next", res->next}}));
      });
    });
  });
  rpc.add("dialog.list", [this](const json::value& params) -> control::RpcResult {
    std::string cursor = stringParam(params, "cursor");
    return onWorker([cursor](Router& r, auto done) {
      r.store().listDialogs(cursor, 100, [done](Result<store::Page<store::DialogRecord>> res) {
        if (!res) {
          done(storeError(res.error()));
          return;
        }
        json::array list;
        for (const auto& d : res->items) {
          list.push_back(dialogJson(d));
        }
        done(json::value(json::object{{"dialogs", std::move(list)}, {"next", res->next}}));
      });
    });
  });
  rpc.add("dialog.get", [this](const json::value& params) -> control::RpcResult {
    std::string callId = stringParam(params, "call_id");
    if (callId.empty()) {
      return control::invalidParams("call_id is required");
    }
    return onWorker([callId](Router& r, auto done) {
      r.store().getDialogs(callId, [done](Result<std::vector<store::DialogRecord>> res) {
        if (!res) {
          done(storeError(res.error()));
          return;
        }
        json::array list;
        for (const auto& d : *res) {
          list.push_back(dialogJson(d));
        }
        done(json::value(json::object{{"dialogs", std::move(list)}}));
      });
    });
  });
  rpc.add("auth.invalidate", [this](const json::value& params) -> control::RpcResult {
    std::string domain = stringParam(params, "domain");
    std::string user = stringParam(params, "user");
    if (domain.empty() != user.empty()) {
      return control::invalidParams("give both domain and user, or neither (all)");
    }
    // The process-wide table first, at once: a fetch that completes after this is not stored.
    if (domain.empty()) {
      shared->credentialTable().invalidateAll();
    } else {
      shared->credentialTable().invalidate(domain, user);
    }
    pool.postAll([this, domain, user](runtime::Worker& w) {
      if (domain.empty()) {
        routers[w.index()]->invalidateAll();
      } else {
        routers[w.index()]->invalidate(domain, user);
      }
    });
    return json::value(json::object{{"invalidated", domain.empty() ? "all" : user + "@" + domain}});
  });
  rpc.add("dispatcher.list", [this](const json::value&) -> control::RpcResult {
    const int64_t now = clock.now().time_since_epoch().count();
    auto list = [now](const role::TargetSet& set) {
      json::array out;
      for (size_t i = 0; i < set.size(); ++i) {
        const auto& t = set.at(i);
        out.push_back(json::object{{"uri", t.uri},
                                   {"address", t.endpoint.str()},
                                   {"state", !t.upAt(now)        ? "down"
                                             : t.drainingAt(now) ? "draining"
                                                                 : "up"},
                                   {"forwarded", t.forwarded.load()},
                                   {"timeouts", t.timeouts.load()}});
      }
      return out;
    };
    return json::value(
        json::object{{"apps", list(*shared->apps())}, {"media", list(*shared->media())}});
  });
  rpc.add("dispatcher.set", [this](const json::value& params) -> control::RpcResult {
    std::string set = stringParam(params, "set");
    if (set != "apps" && set != "media") {
      return control::invalidParams("set: \"apps\" (sip: URIs) or \"media\" (ng addresses)");
    }
    const auto* o = params.if_object();
    const auto* targets = o ? o->if_contains("targets") : nullptr;
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
    auto built =
        set == "apps" ? role::TargetSet::build(uris) : role::TargetSet::buildAddresses(uris, 2223);
    if (!built) {
      return control::invalidParams("targets: " + built.error().message);
    }
    if (set == "apps") {
      shared->setApps(*built);
    } else {
      shared->setMedia(*built);
    }
    return json::value(json::object{{"set", set}, {"targets", uris.size()}});
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
  metrics.addCollectHook([this, &active, parse = metrics::CounterMirror(parse)]() mutable {
    double created = 0;
    double removed = 0;
    for (const auto& r : routers) {
      created += metrics::statValue(r->counters().dialogsCreated);
      removed += metrics::statValue(r->counters().dialogsRemoved);
    }
    active.Set(std::max(0.0, created - removed));
    parse.set(static_cast<double>(parseDrops.load()));
  });
}

RouterService::RouterService(RouterConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}

RouterService::~RouterService() {
  stop();
}

void RouterService::start() {
  Impl& d = *impl_;
  auto apps = role::TargetSet::build(d.config.apps);
  if (!apps) {
    throw config::ConfigError("router.apps: " + apps.error().message);
  }
  d.shared = std::make_unique<RouterShared>(d.config.router, d.config.nonces, d.config.dialplan,
                                            *apps, d.clock);
  d.shared->setMedia(*role::TargetSet::buildAddresses(d.config.mediaRelays, 2223));
  d.storeFactory = store::makeStoreFactory(d.config.store);
  auto transportSettings = role::transportSettings(d.config.common);
  transportSettings.egressPerWorker = d.config.egressSockets ? 1 : 0;
  d.transport = std::make_unique<transport::SipTransport>(
      d.pool, std::move(transportSettings),
      [&d](runtime::Worker& w, const transport::Packet& p) { d.onPacket(w, p); });
  // Bound before the routers are made (they need the egress ports); nothing is received
  // before the pool starts.
  d.transport->start();
  std::vector<uint16_t> egressPorts;
  for (size_t i = 0; i < d.transport->egressCount(); ++i) {
    for (bool v6 : {false, true}) {
      if (auto port = d.transport->egressPort(i, v6)) {
        d.egressPorts[*port] = d.transport->egressWorker(i);
        egressPorts.push_back(*port);
      }
    }
  }
  auto& latency = d.metrics.histogramFamily("evosip_router_store_latency_seconds",
                                            "Store operations, from request to answer");
  const prometheus::Histogram::BucketBoundaries buckets{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
  const TimedStore::Histograms histograms{
      &latency.Add({{"op", "bindings"}}, buckets), &latency.Add({{"op", "dialogs"}}, buckets),
      &latency.Add({{"op", "nonce_count"}}, buckets), &latency.Add({{"op", "ping"}}, buckets)};
  for (size_t w = 0; w < d.pool.size(); ++w) {
    transaction::ProxySettings proxy = d.config.router.proxy;
    if (d.transport->egressCount() > 0) {
      proxy.egress = static_cast<int32_t>(w);  // one egress socket per worker
      proxy.egressPort[0] = d.transport->egressPort(w, false).value_or(0);
      proxy.egressPort[1] = d.transport->egressPort(w, true).value_or(0);
      proxy.alsoViaPorts = egressPorts;
    }
    d.routers.push_back(std::make_unique<Router>(
        *d.shared, d.pool.at(w).io(),
        std::make_unique<TimedStore>(d.storeFactory->open(d.pool.at(w).io().get_executor()),
                                     histograms),
        d.clock,
        [&d](const transport::Destination& to, std::string_view bytes) {
          return d.transport->send(to, bytes);
        },
        std::move(proxy), d.egressPorts.empty() ? -1 : static_cast<int32_t>(w)));
  }
  d.registerRpc();
  d.registerMetrics();
  d.setWork();
  role::exportTransportMetrics(d.metrics, *d.transport);
  // RFC 3261 timers: T1 is 500 ms, a 10 ms tick is well inside every deadline's tolerance.
  d.host.tickEvery(std::chrono::milliseconds(10), [&d](size_t w) { d.routers[w]->onTick(); });
  d.pool.setBatchScheduling(d.config.common.batchScheduling);
  d.host.start();
  d.host.markReady();
  std::string addrs;
  for (const auto& spec : d.transport->bound()) {
    addrs += (addrs.empty() ? "" : ", ") + spec.str();
  }
  d.logger->info("router ready: sip {} control {} domain {} store {} workers {} api {}", addrs,
                 d.config.common.control.listen, d.config.router.domain, d.config.store.backend,
                 d.pool.size(), d.config.router.api);
  if (!d.config.router.requireQop) {
    d.logger->warn("router.auth_require_qop is off: qop-less answers can be replayed");
  }
  for (const auto& n : d.config.dialplan.numbers()) {
    // A mailbox that changes with the caller's From or To resolves to whatever they write.
    if (n.isPublic &&
        Dialplan::mailboxOf(n, "from-user", "to-user") != Dialplan::mailboxOf(n, "", "")) {
      d.logger->warn(
          "router.dialplan.{}: public, with a mailbox the caller names: anyone may "
          "leave messages in any subscriber's mailbox",
          n.number);
    }
  }
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
