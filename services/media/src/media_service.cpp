#include <future>
#include <mutex>
#include <sys/resource.h>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/base/hash.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/media/media_service.hpp>
#include <evosip/media/ng_server.hpp>
#include <evosip/metrics/stats.hpp>
#include <evosip/runtime/worker_pool.hpp>
#include <evosip/store/config.hpp>

namespace evosip::media {

namespace json = boost::json;
using bencode::Value;

uint64_t defaultMaxSessions(uint16_t portMin, uint16_t portMax, uint32_t maxStreams) {
  const uint64_t first = portMin % 2 == 0 ? portMin : uint64_t(portMin) + 1;
  const uint64_t pairs = portMax > first ? (portMax - first + 1) / 2 : 0;
  return std::max<uint64_t>(1, pairs / (2 * std::max<uint64_t>(1, maxStreams)));
}

namespace {

uint64_t readMaxSessions(config::Document& doc, uint64_t derived) {
  if (std::string v = doc.getString("media.max_sessions", "auto"); trim(v) == "auto") {
    return derived;
  }
  return static_cast<uint64_t>(doc.getInt("media.max_sessions", 0, 0, 100000000));
}

transport::AddressAcl readNgAllow(config::Document& doc) {
  const auto entries = doc.getList("media.ng_allow", {"127.0.0.0/8", "::1"});
  if (entries.empty()) {
    throw config::ConfigError(
        "media.ng_allow: must name at least one address or network (the SIP proxies)");
  }
  auto acl = transport::AddressAcl::parse(entries);
  if (!acl) {
    throw config::ConfigError("media.ng_allow: " + acl.error().message);
  }
  return std::move(*acl);
}

StateSettings readStateSettings(config::Document& doc) {
  StateSettings s;
  s.enabled = doc.getBool("media.state.enabled", false);
  s.instanceId = role::readInstanceId(doc, "media.instance_id");
  s.keyPrefix = doc.getString("media.state.key_prefix", "media:");
  s.recordTtl = std::chrono::seconds(doc.getInt("media.state.record_ttl_s", 60, 3, 86400));
  s.heartbeat = std::chrono::milliseconds(doc.getInt("media.state.heartbeat_ms", 300, 50, 60000));
  s.heartbeatTtl =
      std::chrono::milliseconds(doc.getInt("media.state.heartbeat_ttl_ms", 1200, 100, 600000));
  if (s.heartbeatTtl <= s.heartbeat) {
    throw config::ConfigError("media.state.heartbeat_ttl_ms: must be longer than heartbeat_ms");
  }
  s.takeoverPeers = doc.getList("media.takeover.peers", {});
  for (const auto& p : s.takeoverPeers) {
    if (!role::validInstanceId(p) || p == s.instanceId) {
      throw config::ConfigError("media.takeover.peers: '" + p +
                                "' is not another relay's media.instance_id");
    }
  }
  if (!s.takeoverPeers.empty() && !s.enabled) {
    throw config::ConfigError("media.takeover.peers: needs media.state.enabled: true");
  }
  // A relay whose address a peer may take over must stop serving it before the peer may: on by
  // default where relays take each other over (media.takeover.peers set).
  if (std::string fence = doc.getString("media.state.fence", "auto"); trim(fence) == "auto") {
    s.fence = s.enabled && !s.takeoverPeers.empty();
  } else if (trim(fence) == "true" || trim(fence) == "false") {
    s.fence = trim(fence) == "true";
  } else {
    throw config::ConfigError("media.state.fence: '" + fence + "' is not auto, true or false");
  }
  if (s.fence && !s.enabled) {
    throw config::ConfigError("media.state.fence: needs media.state.enabled: true");
  }
  s.fenceMargin =
      std::chrono::milliseconds(doc.getInt("media.state.fence_margin_ms", 300, 10, 600000));
  if (s.fence && s.heartbeat + s.fenceMargin >= s.heartbeatTtl) {
    throw config::ConfigError(
        "media.state.fence_margin_ms: heartbeat_ms + fence_margin_ms must be below "
        "heartbeat_ttl_ms (a relay that renews its heartbeat on time must not fence itself)");
  }
  s.store = store::readSettings(doc);
  if (s.enabled && s.store.backend != "redis" && !s.takeoverPeers.empty()) {
    throw config::ConfigError(
        "media.takeover.peers: needs store.backend: redis (the memory store is one process's)");
  }
  return s;
}

}  // namespace

MediaConfig readMediaConfig(config::Document& doc) {
  MediaConfig c;
  c.common = role::readCommonWithoutSip(doc, "127.0.0.1:8062");
  c.ngListen = doc.getString("media.ng_listen", "127.0.0.1:2223");
  if (auto ep = transport::parseEndpoint(c.ngListen, 2223); !ep) {
    throw config::ConfigError(fmt::format("media.ng_listen: '{}' is not ADDRESS:PORT ({})",
                                          c.ngListen, ep.error().message));
  }
  c.relay.advertise = doc.getString("media.address", "127.0.0.1");
  auto advertised = Endpoint::parse(c.relay.advertise, 0);
  if (!advertised) {
    throw config::ConfigError("media.address: " + advertised.error().message);
  }
  if (advertised->isUnspecified()) {
    throw config::ConfigError(
        "media.address: '" + c.relay.advertise +
        "' is written into SDP and must be a real address (bind the wildcard with media.bind)");
  }
  c.relay.advertise = advertised->address();  // canonical text, no brackets
  c.relay.bind = doc.getString("media.bind", "");
  if (!c.relay.bind.empty()) {
    auto bind = Endpoint::parse(c.relay.bind, 0);
    if (!bind) {
      throw config::ConfigError("media.bind: " + bind.error().message);
    }
    if (bind->isV6() != advertised->isV6()) {
      throw config::ConfigError("media.bind: '" + c.relay.bind +
                                "' must be of the same address family as media.address");
    }
    c.relay.bind = bind->address();
  }
  c.portMin = static_cast<uint16_t>(doc.getInt("media.port_min", 30000, 1, 65535));
  c.portMax = static_cast<uint16_t>(doc.getInt("media.port_max", 40000, 1, 65535));
  if (c.portMin > c.portMax) {
    throw config::ConfigError(
        fmt::format("media.port_max: {} is below media.port_min {}", c.portMax, c.portMin));
  }
  if (auto split = splitPortRange(c.portMin, c.portMax, c.common.workers); !split) {
    throw config::ConfigError("media.port_min/media.port_max: " + split.error().message);
  }
  c.relay.timeoutS = static_cast<uint32_t>(doc.getInt("media.timeout_s", 60, 0, 86400));
  c.relay.maxStreams = static_cast<uint32_t>(doc.getInt("media.max_streams", 4, 1, 64));
  c.relay.maxSessions =
      readMaxSessions(doc, defaultMaxSessions(c.portMin, c.portMax, c.relay.maxStreams));
  c.ngAllow = readNgAllow(doc);
  c.relay.ioUring = doc.getBool("media.io_uring", true);
  c.relay.freeBind = doc.getBool("media.free_bind", false);
  c.realtimePriority = static_cast<int>(doc.getInt("media.realtime_priority", 0, 0, 99));
  c.relay.waitInRing = true;  // the workers run nothing but their relay; posts wake them
  c.state = readStateSettings(doc);
  doc.checkUnknownKeys();
  return c;
}

struct MediaService::Impl {
  explicit Impl(MediaConfig c)
      : config(std::move(c)),
        host("media", config.common, config.common.workers),
        pool(host.pool()),
        logger(host.logger()),
        metrics(host.metrics()),
        rpc(host.rpc()) {}

  MediaConfig config;
  role::Host host;
  runtime::WorkerPool& pool;
  std::shared_ptr<spdlog::logger> logger;
  metrics::Registry& metrics;
  control::RpcRegistry& rpc;
  RelayShared shared;
  std::vector<std::unique_ptr<Relay>> relays;
  std::unique_ptr<NgServer> ng;
  std::mutex ngMutex;  // ng's start and stop: the state thread (fence, standby) and stop()
  bool ngStopping = false;
  std::unique_ptr<SessionState> state;  // media.state.enabled
  // media.state: not ready until the start-up claim of the relay's own address is decided and
  // the calls stored under its name are restored on the workers.
  std::atomic<bool> starting{false};
  std::mutex takenNgMutex;
  // ng sockets on taken-over relays' addresses, by instance
  std::vector<std::pair<std::string, std::unique_ptr<NgServer>>> takenNg;

  size_t ownerOf(std::string_view callId) const { return hash64(callId) % relays.size(); }
  // Every post to a worker goes through here: a worker may be waiting inside its io_uring
  // (RelaySettings::waitInRing), not in its io_context.
  template <typename Fn>
  void post(size_t w, Fn&& fn) {
    pool.post(w, std::forward<Fn>(fn));
    relays[w]->wake();
  }
  void handle(std::string_view command, Value body, NgServer::Reply reply);
  void list(int64_t limit, std::function<void(std::vector<std::string>)> done);
  Value statistics() const;
  void registerRpc();
  void registerMetrics();
  void setWork();
  void startState();
  bool bindTakenNg(const ServedAddress& dead);
  void releaseTakenNg(const std::string& instance);
  void restore(SessionRecord record, const std::string& owner);
  void setFenced(bool on);
  void setNgBound(bool on);
  bool bindOwnNg();
  void settled();
  void dropLost(const std::string& instance);
};

void MediaService::Impl::startState() {
  const ServedAddress self{config.state.instanceId, config.relay.advertise, config.ngListen};
  RecordLimits limits;
  limits.maxStreams = config.relay.maxStreams;
  limits.maxLegs = 2 * static_cast<size_t>(config.relay.maxStreams);
  SessionState::Hooks hooks;
  hooks.takeOver = [this](const ServedAddress& dead) { return bindTakenNg(dead); };
  hooks.restore = [this](SessionRecord r, const std::string& owner) {
    restore(std::move(r), owner);
  };
  hooks.bindOwn = [this] { return bindOwnNg(); };
  hooks.settled = [this] { settled(); };
  hooks.sessions = [this] { return shared.sessions.load(); };
  hooks.release = [this](const std::string& instance) { releaseTakenNg(instance); };
  hooks.standby = [this](bool on) { shared.standby = on; };
  hooks.fence = [this](bool on) { setFenced(on); };
  hooks.lost = [this](const std::string& instance) { dropLost(instance); };
  shared.standby = true;  // until the relay's own address is its own
  starting = true;
  state = std::make_unique<SessionState>(config.state, self, limits, std::move(hooks));
  for (auto& relay : relays) {
    relay->setSessionSink(
        [st = state.get()](const std::string& callId, const std::string& owner,
                           std::string record) { st->write(callId, owner, std::move(record)); });
  }
  state->start();
}

bool MediaService::Impl::bindTakenNg(const ServedAddress& dead) {
  auto server = std::make_unique<NgServer>(
      dead.ng, config.ngAllow, [this](std::string_view command, Value body, NgServer::Reply reply) {
        handle(command, std::move(body), std::move(reply));
      });
  server->setFreeBind(true);
  try {
    server->start();
  } catch (const std::exception& e) {
    logger->error("media.state: cannot serve relay {}'s ng address: {}", dead.instance, e.what());
    return false;
  }
  std::lock_guard lock(takenNgMutex);
  takenNg.emplace_back(dead.instance, std::move(server));
  return true;
}

void MediaService::Impl::releaseTakenNg(const std::string& instance) {
  std::unique_ptr<NgServer> server;
  {
    std::lock_guard lock(takenNgMutex);
    for (auto it = takenNg.begin(); it != takenNg.end(); ++it) {
      if (it->first == instance) {
        server = std::move(it->second);
        takenNg.erase(it);
        break;
      }
    }
  }
  if (server) {
    server->stop();
  }
}

// media.state.fence: nothing relayed, offers and answers refused (the router takes another
// relay), /readyz 503, served() empty (the announcer withdraws the addresses), and every socket
// on the relay's addresses (call ports, ng sockets) closed, so that the peer that takes an
// address over can bind it even on this host. Lifted (the store confirmed the leases), the
// sockets are bound again on the same ports and the calls relayed again.
void MediaService::Impl::setFenced(bool on) {
  if (on) {
    shared.fenced = true;
    setNgBound(false);
  }
  for (size_t w = 0; w < relays.size(); ++w) {
    post(w, [this, relay = relays[w].get(), on] {
      if (on) {
        relay->setFenced(true);
        relay->releaseSockets();
        return;
      }
      if (const size_t n = relay->rebindSockets(); n > 0) {
        logger->warn("media.state: {} calls deleted after the fence: their ports are taken", n);
      }
      relay->setFenced(false);
    });
  }
  if (!on) {
    shared.fenced = false;
    setNgBound(true);
  }
}

// The ng sockets of the addresses this relay serves: its own and those taken over.
void MediaService::Impl::setNgBound(bool on) {
  if (on) {
    bindOwnNg();
  } else {
    std::lock_guard lock(ngMutex);
    ng->stop();
  }
  std::lock_guard lock(takenNgMutex);
  for (auto& [instance, server] : takenNg) {
    if (!on) {
      server->stop();
      continue;
    }
    try {
      server->start();
    } catch (const std::exception& e) {
      logger->error("media.state: cannot serve relay {}'s ng address again: {}", instance,
                    e.what());
    }
  }
}

// The relay's own ng socket, bound at start unless a peer relay on this host serves the address
// (then at the first heartbeat after it is free), and again after a fence. False: another process
// holds its address and port.
bool MediaService::Impl::bindOwnNg() {
  std::lock_guard lock(ngMutex);
  if (ng->running()) {
    return true;
  }
  if (ngStopping) {
    return false;
  }
  if (shared.fenced.load()) {
    return true;  // bound when the fence lifts
  }
  try {
    ng->start();
  } catch (const std::exception&) {
    return false;
  }
  logger->info("media.state: ng socket {} bound", config.ngListen);
  return true;
}

// Ready once every worker has run the restores posted to it before this.
void MediaService::Impl::settled() {
  auto remaining = std::make_shared<std::atomic<size_t>>(relays.size());
  for (size_t w = 0; w < relays.size(); ++w) {
    post(w, [this, remaining] {
      if (remaining->fetch_sub(1) == 1) {
        starting = false;
        logger->info("media.state: start-up claim decided, {} calls up", shared.sessions.load());
      }
    });
  }
}

// Another relay holds `instance`'s address: its calls here go (their records are the holder's).
void MediaService::Impl::dropLost(const std::string& instance) {
  const std::string owner = instance == config.state.instanceId ? "" : instance;
  for (size_t w = 0; w < relays.size(); ++w) {
    post(w, [this, relay = relays[w].get(), owner, instance] {
      if (const size_t n = relay->dropCalls(owner); n > 0) {
        logger->warn(
            "media.state: {} calls on relay {}'s address dropped: another relay serves "
            "them",
            n, instance);
      }
    });
  }
  if (!owner.empty()) {
    releaseTakenNg(instance);
  }
}

void MediaService::Impl::restore(SessionRecord record, const std::string& owner) {
  const size_t w = ownerOf(record.callId);
  post(w, [this, w, record = std::move(record), owner] {
    auto ok = relays[w]->restore(record, owner);
    if (ok) {
      state->counters().restored.fetch_add(1, std::memory_order_relaxed);
    } else if (ok.error().code == Errc::kNotFound) {
      logger->info("call {}: not restored: {}", record.callId, ok.error().message);
    } else {
      state->counters().restoreErrors.fetch_add(1, std::memory_order_relaxed);
      logger->warn("call {}: not restored from relay {}: {}", record.callId,
                   owner.empty() ? config.state.instanceId : owner, ok.error().message);
    }
  });
}

void MediaService::Impl::list(int64_t limit, std::function<void(std::vector<std::string>)> done) {
  struct Gather {
    std::mutex mutex;
    std::vector<std::string> ids;
    size_t remaining = 0;
    std::function<void(std::vector<std::string>)> done;
  };
  auto g = std::make_shared<Gather>();
  g->remaining = relays.size();
  g->done = std::move(done);
  const size_t max = static_cast<size_t>(std::max<int64_t>(1, limit));
  for (size_t w = 0; w < relays.size(); ++w) {
    post(w, [this, g, w, max] {
      auto ids = relays[w]->callIds(max);
      std::unique_lock lock(g->mutex);
      for (auto& id : ids) {
        if (g->ids.size() < max) {
          g->ids.push_back(std::move(id));
        }
      }
      if (--g->remaining == 0) {
        auto out = std::move(g->ids);
        lock.unlock();
        g->done(std::move(out));
      }
    });
  }
}

Value MediaService::Impl::statistics() const {
  uint64_t managed = 0, rejected = 0, timeouts = 0, deleted = 0, packets = 0, errors = 0;
  uint64_t bytes = 0;
  for (const auto& r : relays) {
    const auto& c = r->counters();
    managed += c.managedSessions.load(std::memory_order_relaxed);
    rejected += c.rejectedSessions.load(std::memory_order_relaxed);
    timeouts += c.timeoutSessions.load(std::memory_order_relaxed);
    deleted += c.deletedSessions.load(std::memory_order_relaxed);
    packets += c.packetsRelayed.load(std::memory_order_relaxed);
    bytes += c.bytesRelayed.load(std::memory_order_relaxed);
    for (const auto& d : c.drops) {
      errors += d.load(std::memory_order_relaxed);
    }
  }
  const int64_t sessions = shared.sessions.load();
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now() - shared.started)
                          .count();
  Value current = Value::makeDict();
  current.set("sessionsown", sessions)
      .set("sessionsforeign", 0)
      .set("sessionstotal", sessions)
      .set("transcodedmedia", 0);
  Value total = Value::makeDict();
  total.set("uptime", std::to_string(uptime))
      .set("managedsessions", managed)
      .set("rejectedsessions", rejected)
      .set("timeoutsessions", timeouts)
      .set("regularterminatedsessions", deleted)
      .set("relayedpackets", packets)
      .set("relayedbytes", bytes)
      .set("relayedpacketerrors", errors);
  Value stats = Value::makeDict();
  stats.set("currentstatistics", std::move(current)).set("totalstatistics", std::move(total));
  Value reply = bencode::ngOk();
  reply.set("statistics", std::move(stats));
  return reply;
}

void MediaService::Impl::handle(std::string_view command, Value body, NgServer::Reply reply) {
  const NgCommand c = ngCommandFromName(command);
  switch (c) {
    case NgCommand::kPing:
      reply(bencode::ngPong());
      return;
    case NgCommand::kStatistics:
      reply(statistics());
      return;
    case NgCommand::kList: {
      const int64_t limit = body.integer("limit").value_or(32);
      if (limit <= 0) {
        reply(bencode::ngError("Invalid limit"));
        return;
      }
      list(limit, [reply](std::vector<std::string> ids) {
        Value calls = Value::makeList();
        for (auto& id : ids) {
          calls.add(std::move(id));
        }
        Value r = bencode::ngOk();
        r.set("calls", std::move(calls));
        reply(std::move(r));
      });
      return;
    }
    case NgCommand::kOffer:
    case NgCommand::kAnswer:
    case NgCommand::kDelete:
    case NgCommand::kQuery: {
      if (shared.fenced.load() && (c == NgCommand::kOffer || c == NgCommand::kAnswer)) {
        // Fenced: another relay may serve this call's address by now. "draining" makes the
        // router take another relay for a new call.
        reply(bencode::ngError("draining"));
        return;
      }
      const auto* id = findKey(body, "call-id");
      if (!id || !id->isString() || id->asString().empty()) {
        reply(bencode::ngError("No call-id in message"));
        return;
      }
      const size_t w = ownerOf(id->asString());
      Relay* relay = relays[w].get();
      post(w, [relay, c, body = std::move(body), reply = std::move(reply)] {
        switch (c) {
          case NgCommand::kOffer:
            reply(relay->offer(body));
            break;
          case NgCommand::kAnswer:
            reply(relay->answer(body));
            break;
          case NgCommand::kDelete:
            reply(relay->remove(body));
            break;
          default:
            reply(relay->query(body));
            break;
        }
      });
      return;
    }
    default:
      reply(bencode::ngError("Unrecognized command"));
      return;
  }
}

void MediaService::Impl::registerRpc() {
  rpc.add("media.list", [this](const json::value& params) -> control::RpcResult {
    int64_t limit = 1000;
    if (const auto* o = params.if_object()) {
      if (const auto* l = o->if_contains("limit"); l && l->is_int64()) {
        limit = l->as_int64();
      }
    }
    auto promise = std::make_shared<std::promise<std::vector<std::string>>>();
    auto future = promise->get_future();
    list(limit, [promise](std::vector<std::string> ids) { promise->set_value(std::move(ids)); });
    if (future.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      return tl::unexpected(
          control::RpcError{control::kInternalError, "workers did not answer", nullptr});
    }
    json::array calls;
    for (auto& id : future.get()) {
      calls.emplace_back(id);
    }
    return json::value(json::object{{"calls", std::move(calls)},
                                    {"sessions", shared.sessions.load()},
                                    {"draining", shared.draining.load()}});
  });
}

void MediaService::Impl::setWork() {
  role::WorkHooks work;
  // New offers get the error "draining"; the calls up keep their media until they are deleted
  // or time out.
  work.refuseNew = [this](bool draining) { shared.draining = draining; };
  work.inProgress = [this] { return static_cast<uint64_t>(std::max<int64_t>(0, shared.sessions)); };
  work.describe = [this](json::object& o) {
    o["sessions"] = shared.sessions.load();
    if (state) {
      // The addresses this relay serves (its own, and those of dead peers it took over): what
      // an announcer routes to this host.
      json::array served;
      for (const auto& s : state->served()) {
        served.emplace_back(
            json::object{{"instance", s.instance}, {"address", s.address}, {"ng", s.ng}});
      }
      o["instance_id"] = config.state.instanceId;
      o["served"] = std::move(served);
      o["fenced"] = shared.fenced.load();
    }
  };
  host.setWork(std::move(work));
}

namespace {

std::string_view dropLabel(size_t i) {
  return dropReasonName(static_cast<DropReason>(i));
}

}  // namespace

void MediaService::Impl::registerMetrics() {
  metrics::exposeStats<RelayCounters>(metrics, EVOSIP_STAT_TABLE(RelayCounters, EVOSIP_RELAY_STATS),
                                      [this](const auto& visit) {
                                        for (const auto& relay : relays) {
                                          visit(relay->counters());
                                        }
                                      });
  metrics::exposeStats<StateCounters>(metrics,
                                      EVOSIP_STAT_TABLE(StateCounters, EVOSIP_MEDIA_STATE_STATS),
                                      [this](const auto& visit) {
                                        if (state) {
                                          visit(state->counters());
                                        }
                                      });
  metrics::exposeStats<NgCounters>(metrics, EVOSIP_STAT_TABLE(NgCounters, EVOSIP_NG_STATS),
                                   [this](const auto& visit) {
                                     if (ng) {
                                       visit(ng->counters());
                                     }
                                   });
  auto& family = metrics.counterFamily("evosip_media_ng_commands_total",
                                       "ng control commands answered, by command and result");
  auto commands = std::make_shared<std::vector<metrics::CounterMirror>>();  // command-major
  for (size_t c = 0; c < size_t(NgCommand::kCount); ++c) {
    for (size_t r = 0; r < size_t(NgResult::kCount); ++r) {
      commands->emplace_back(family.Add(
          {{"command", ngCommandName(NgCommand(c))}, {"result", ngResultName(NgResult(r))}}));
    }
  }
  metrics.addCollectHook([this, commands] {
    if (!ng) {
      return;
    }
    const auto& nc = ng->counters();
    size_t i = 0;
    for (size_t c = 0; c < size_t(NgCommand::kCount); ++c) {
      for (size_t r = 0; r < size_t(NgResult::kCount); ++r) {
        (*commands)[i++].set(metrics::statValue(nc.commands[c][r]));
      }
    }
  });
}

MediaService::MediaService(MediaConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

MediaService::~MediaService() {
  stop();
}

void MediaService::start() {
  Impl& d = *impl_;
  // A socket per port: the default soft limit (1024) is far below a port range's worth.
  if (rlimit rl{}; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  auto ranges = splitPortRange(d.config.portMin, d.config.portMax, d.pool.size());
  if (!ranges) {
    throw config::ConfigError("media.port_min/media.port_max: " + ranges.error().message);
  }
  for (size_t w = 0; w < d.pool.size(); ++w) {
    d.relays.push_back(
        std::make_unique<Relay>(d.pool.at(w).io(), d.config.relay, (*ranges)[w], d.shared));
  }
  d.ng =
      std::make_unique<NgServer>(d.config.ngListen, d.config.ngAllow,
                                 [&d](std::string_view command, Value body, NgServer::Reply reply) {
                                   d.handle(command, std::move(body), std::move(reply));
                                 });
  d.ng->setFreeBind(d.config.relay.freeBind);
  if (!d.config.state.enabled) {
    d.ng->start();
  } else {
    try {
      d.ng->start();
    } catch (const std::exception& e) {
      // A peer relay on this host may serve this relay's address (its ng socket): the relay
      // stands by and binds it once it is free (SessionState::Hooks::bindOwn).
      d.logger->warn("{}: standby until it is free", e.what());
    }
    d.startState();
  }
  d.registerRpc();
  d.registerMetrics();
  d.setWork();
  d.host.setReadyCheck([&d] { return !d.shared.fenced.load() && !d.starting.load(); });
  d.host.tickEvery(std::chrono::milliseconds(1000), [&d](size_t w) { d.relays[w]->onTick(); });
  d.pool.setRealtimePriority(d.config.realtimePriority);
  d.host.start();
  d.host.markReady();
  if (auto ng = transport::parseEndpoint(d.config.ngListen, 2223);
      ng && !ng->ip.is_loopback() && d.config.ngAllow.onlyLoopback()) {
    d.logger->warn(
        "media.ng_listen {} is reachable from other hosts but media.ng_allow ({}) "
        "lets only this host in: list the SIP proxies' addresses",
        d.config.ngListen, d.config.ngAllow.str());
  }
  d.logger->info(
      "media ready: ng {} (from {}) control {} address {} ports {}-{} workers {} max_sessions {} "
      "max_streams {}",
      d.config.ngListen, d.config.ngAllow.str(), d.config.common.control.listen,
      d.config.relay.advertise, d.config.portMin, d.config.portMax, d.pool.size(),
      d.config.relay.maxSessions == 0 ? std::string("unlimited")
                                      : std::to_string(d.config.relay.maxSessions),
      d.config.relay.maxStreams);
}

void MediaService::stop() {
  Impl& d = *impl_;
  if (!d.ng) {
    return;
  }
  d.host.stopServing();
  {
    std::lock_guard lock(d.ngMutex);
    d.ngStopping = true;
    d.ng->stop();
  }
  if (d.state) {
    d.state->stop();  // before the calls are closed: with calls up, the peers take them over
  }
  {
    std::lock_guard lock(d.takenNgMutex);
    for (auto& [instance, n] : d.takenNg) {
      n->stop();
    }
  }
  for (size_t w = 0; w < d.relays.size(); ++w) {
    d.pool.at(w).io().stop();
    d.relays[w]->wake();  // out of its io_uring wait, to see the stop
  }
  d.host.stopWorkers();
  for (auto& r : d.relays) {
    r->closeAll();
  }
  d.ng.reset();
  std::lock_guard lock(d.takenNgMutex);
  d.takenNg.clear();
}

uint16_t MediaService::ngPort() const {
  return impl_->ng ? impl_->ng->port() : 0;
}

uint16_t MediaService::controlPort() const {
  return impl_->host.controlPort();
}

role::Host& MediaService::host() {
  return impl_->host;
}

int runMedia(const std::string& configPath) {
  return role::run<MediaService>(configPath, &readMediaConfig);
}

}  // namespace evosip::media
