#include <cstring>
#include <filesystem>
#include <future>
#include <sys/resource.h>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/app/app_service.hpp>
#include <evosip/app/voicemail.hpp>
#include <evosip/base/hash.hpp>
#include <evosip/metrics/stats.hpp>
#include <evosip/role/transport_metrics.hpp>
#include <evosip/runtime/worker_pool.hpp>
#include <evosip/sip/response.hpp>
#include <evosip/store/config.hpp>
#include <evosip/transport/response_destination.hpp>

namespace evosip::app {

namespace json = boost::json;

#ifndef EVOSIP_BUILD_SOUNDS_DIR
#define EVOSIP_BUILD_SOUNDS_DIR "sounds"
#endif

namespace {

transport::AddressAcl readRouters(config::Document& doc) {
  const auto entries = doc.getList("app.routers", {"127.0.0.0/8", "::1"});
  if (entries.empty()) {
    throw config::ConfigError(
        "app.routers: must name at least one address or network (the "
        "routers that send calls to the app)");
  }
  auto acl = transport::AddressAcl::parse(entries);
  if (!acl) {
    throw config::ConfigError("app.routers: " + acl.error().message);
  }
  return std::move(*acl);
}

VoicemailQuota readVoicemailQuota(config::Document& doc) {
  VoicemailQuota q;
  constexpr int64_t kMax = int64_t(1) << 50;
  q.maxMessages = static_cast<uint64_t>(doc.getInt("app.voicemail_max_messages", 100, 1, kMax));
  q.maxBytes =
      static_cast<uint64_t>(doc.getInt("app.voicemail_max_bytes", 20'000'000, 100'000, kMax));
  q.maxTotalMessages =
      static_cast<uint64_t>(doc.getInt("app.voicemail_max_total_messages", 10'000, 1, kMax));
  q.maxTotalBytes = static_cast<uint64_t>(
      doc.getInt("app.voicemail_max_total_bytes", 1'000'000'000, 100'000, kMax));
  return q;
}

StoredCallsSettings readStateSettings(config::Document& doc) {
  StoredCallsSettings s;
  s.enabled = doc.getBool("app.state.enabled", false);
  s.instanceId = role::readInstanceId(doc, "app.instance_id");
  s.keyPrefix = doc.getString("app.state.key_prefix", "app:");
  s.recordTtl = std::chrono::seconds(doc.getInt("app.state.record_ttl_s", 60, 3, 86400));
  s.heartbeat = std::chrono::milliseconds(doc.getInt("app.state.heartbeat_ms", 300, 50, 60000));
  s.heartbeatTtl =
      std::chrono::milliseconds(doc.getInt("app.state.heartbeat_ttl_ms", 1200, 100, 600000));
  if (s.heartbeatTtl <= s.heartbeat) {
    throw config::ConfigError("app.state.heartbeat_ttl_ms: must be longer than heartbeat_ms");
  }
  s.takeoverPeers = doc.getList("app.takeover.peers", {});
  for (const auto& p : s.takeoverPeers) {
    if (!role::validInstanceId(p) || p == s.instanceId) {
      throw config::ConfigError("app.takeover.peers: '" + p +
                                "' is not another app's app.instance_id");
    }
  }
  if (!s.takeoverPeers.empty() && !s.enabled) {
    throw config::ConfigError("app.takeover.peers: needs app.state.enabled: true");
  }
  s.store = store::readSettings(doc);
  if (!s.takeoverPeers.empty() && s.store.backend != "redis") {
    throw config::ConfigError(
        "app.takeover.peers: needs store.backend: redis (the memory store is one process's)");
  }
  return s;
}

}  // namespace

AppConfig readAppConfig(config::Document& doc) {
  AppConfig c;
  c.common = role::readCommon(doc, {"udp:127.0.0.1:5080"}, "127.0.0.1:8090");
  for (const auto& spec : c.common.listen) {
    if (spec.protocol != transport::Protocol::kUdp) {
      throw config::ConfigError(
          fmt::format("sip.listen: '{}': the app speaks SIP over UDP only", spec.str()));
    }
  }
  auto& a = c.app;
  a.soundsDir = doc.getString("app.sounds_dir", EVOSIP_BUILD_SOUNDS_DIR);
  a.voicemailDir = doc.getString("app.voicemail_dir", "voicemail");
  if (a.soundsDir.empty()) {
    throw config::ConfigError("app.sounds_dir: must not be empty");
  }
  if (a.voicemailDir.empty()) {
    throw config::ConfigError("app.voicemail_dir: must not be empty");
  }
  a.rtpAddress = doc.getString("app.rtp_address", "127.0.0.1");
  {
    boost::system::error_code ec;
    auto ip = boost::asio::ip::make_address(a.rtpAddress, ec);
    if (ec || ip.is_unspecified()) {
      throw config::ConfigError(fmt::format(
          "app.rtp_address: '{}' is not an IP address the app can bind and advertise in SDP",
          a.rtpAddress));
    }
    a.rtpAddress = ip.to_string();
  }
  c.rtpPortMin = static_cast<uint16_t>(doc.getInt("app.rtp_port_min", 40000, 1024, 65535));
  c.rtpPortMax = static_cast<uint16_t>(doc.getInt("app.rtp_port_max", 49999, 1024, 65535));
  if (c.rtpPortMin > c.rtpPortMax) {
    throw config::ConfigError(fmt::format("app.rtp_port_max: {} is below app.rtp_port_min {}",
                                          c.rtpPortMax, c.rtpPortMin));
  }
  if (auto split = rtp::splitPortRange(c.rtpPortMin, c.rtpPortMax, c.common.workers); !split) {
    throw config::ConfigError("app.rtp_port_min/app.rtp_port_max: " + split.error().message);
  }
  a.rtpTimeout = std::chrono::seconds(doc.getInt("app.rtp_timeout_s", 30, 0, 3600));
  a.rtpPeerTimeout = std::chrono::seconds(doc.getInt("app.rtp_peer_timeout_s", 5, 0, 3600));
  a.maxCall = std::chrono::seconds(doc.getInt("app.max_call_s", 3600, 1, 86400));
  a.voicemailMax = std::chrono::seconds(doc.getInt("app.voicemail_max_s", 120, 1, 3600));
  a.voicemailSilence = std::chrono::seconds(doc.getInt("app.voicemail_silence_s", 5, 0, 3600));
  a.voicemailQuota = readVoicemailQuota(doc);
  c.routers = readRouters(doc);
  c.realtimePriority = static_cast<int>(doc.getInt("app.realtime_priority", 10, 0, 99));
  a.realtimePriority = c.realtimePriority;
  a.ioUring = doc.getBool("app.io_uring", true);
  c.state = readStateSettings(doc);
  doc.checkUnknownKeys();

  const auto& first = c.common.listen.front();
  a.viaHost = c.common.advertiseHost.empty() ? first.endpoint.hostForUri() : c.common.advertiseHost;
  a.viaPort = c.common.advertisePort != 0 ? c.common.advertisePort : first.endpoint.port;
  return c;
}

struct AppService::Impl {
  explicit Impl(AppConfig c)
      : config(std::move(c)),
        host("app", config.common, config.common.workers),
        pool(host.pool()),
        logger(host.logger()),
        metrics(host.metrics()),
        rpc(host.rpc()) {}

  AppConfig config;
  role::Host host;
  runtime::WorkerPool& pool;
  std::shared_ptr<spdlog::logger> logger;
  metrics::Registry& metrics;
  control::RpcRegistry& rpc;
  AppShared shared;
  std::unique_ptr<PromptCache> prompts;
  std::vector<std::unique_ptr<AppCore>> cores;
  std::unique_ptr<transport::SipTransport> transport;
  std::unique_ptr<StoredCalls> state;  // app.state.enabled
  std::atomic<uint64_t> parseDrops{0};
  std::atomic<uint64_t> forbidden{0};

  // A request from a source app.routers does not name: 403, stateless (no transaction, no
  // call); anything else from there (responses, ACKs, garbage) is dropped.
  void refuse(const transport::Packet& packet) {
    forbidden.fetch_add(1, std::memory_order_relaxed);
    auto msg = sip::Message::parse(packet.data);
    if (!msg || !msg->isRequest() || msg->method() == sip::Method::kAck) {
      return;
    }
    std::string reply;
    if (sip::buildResponse(*msg, 403, "Forbidden", {}, {}, reply)) {
      transport->send(transport::responseDestination(packet.source), reply);
    }
  }

  void onPacket(runtime::Worker& worker, const transport::Packet& packet) {
    if (!config.routers.allows(packet.source.remote.ip)) {
      refuse(packet);
      return;
    }
    auto msg = sip::Message::parse(packet.data);
    if (!msg) {
      parseDrops.fetch_add(1, std::memory_order_relaxed);
      std::string reply = sip::buildUnframedResponse(packet.data, 400);
      if (!reply.empty()) {
        transport->send(transport::responseDestination(packet.source), reply);
      }
      return;
    }
    const size_t owner = ownerOf(msg->callId());
    if (owner == worker.index()) {
      cores[owner]->onMessage(*msg, packet.source);
      return;
    }
    pool.post(owner, [this, owner, bytes = std::string(packet.data), src = packet.source] {
      if (auto m = sip::Message::parse(bytes)) {
        cores[owner]->onMessage(*m, src);
      }
    });
  }

  size_t ownerOf(std::string_view callId) const { return hash64(callId) % cores.size(); }
  void startState();
  void registerRpc();
  void registerMetrics();
  void registerPacingMetrics();
  void setWork();
};

// app.state: records go to the state thread; stored calls it adopts go to the worker of their
// Call-ID; a lost lease ends every call here without signalling.
void AppService::Impl::startState() {
  StoredCalls::Hooks hooks;
  hooks.adopt = [this](CallRecord record) {
    const size_t w = ownerOf(record.callId);
    pool.post(w, [this, w, record = std::move(record)] { cores[w]->resume(record); });
  };
  hooks.lost = [this] {
    for (size_t w = 0; w < cores.size(); ++w) {
      pool.post(w, [this, w] { cores[w]->dropAll(); });
    }
  };
  hooks.calls = [this] { return shared.calls.load(); };
  state = std::make_unique<StoredCalls>(config.state, std::move(hooks));
  shared.storeCall = [st = state.get()](const std::string& callId, std::string record) {
    st->write(callId, std::move(record));
  };
  state->start();
}

void AppService::Impl::registerRpc() {
  rpc.add("voicemail.list", [this](const json::value& params) -> control::RpcResult {
    const auto* o = params.if_object();
    const auto* box = o ? o->if_contains("mailbox") : nullptr;
    if (!box || !box->is_string() || !isValidMailbox(box->as_string())) {
      return control::invalidParams(
          "mailbox: a mailbox name ([A-Za-z0-9._+@-], 1..64) is required");
    }
    const std::string mailbox(box->as_string());
    // Directory reads run here, on the control thread: never on a worker's event loop.
    auto list = listMailbox(config.app.voicemailDir, mailbox);
    if (!list) {
      return tl::unexpected(
          control::RpcError{control::kInternalError, list.error().message, nullptr});
    }
    json::array messages;
    for (const auto& m : *list) {
      json::object j = toJson(m);
      j["path"] = (std::filesystem::path(config.app.voicemailDir) / mailbox / m.file).string();
      messages.push_back(std::move(j));
    }
    return json::value(json::object{{"mailbox", mailbox}, {"messages", std::move(messages)}});
  });
  rpc.add("sounds.flush", [this](const json::value&) -> control::RpcResult {
    const size_t n = prompts->size();
    prompts->flush();
    return json::value(json::object{{"flushed", n}});
  });
  rpc.add("app.calls", [this](const json::value&) -> control::RpcResult {
    json::array workers;
    for (const auto& c : cores) {
      workers.push_back(c->counters().active.load(std::memory_order_relaxed));
    }
    return json::value(json::object{{"active", shared.calls.load()},
                                    {"per_worker", std::move(workers)},
                                    {"draining", shared.draining.load()}});
  });
}

void AppService::Impl::setWork() {
  role::WorkHooks work;
  // New INVITEs get 503; calls up go on to their end.
  work.refuseNew = [this](bool draining) { shared.draining = draining; };
  work.inProgress = [this] { return static_cast<uint64_t>(std::max<int64_t>(0, shared.calls)); };
  work.describe = [this](json::object& o) { o["calls"] = shared.calls.load(); };
  host.setWork(std::move(work));
}

namespace {

std::string_view actionLabel(size_t i) {
  return actionName(static_cast<Action>(i));
}

}  // namespace

void AppService::Impl::registerMetrics() {
  metrics::exposeStats<AppCounters>(metrics, EVOSIP_STAT_TABLE(AppCounters, EVOSIP_APP_STATS),
                                    [this](const auto& visit) {
                                      for (const auto& c : cores) {
                                        visit(c->counters());
                                      }
                                    });
  auto& forbiddenSource =
      metrics.counterFamily("evosip_app_events_total", "").Add({{"event", "forbidden_source"}});
  auto& parse =
      metrics.counterFamily("evosip_app_parse_drops_total", "SIP messages that could not be parsed")
          .Add({});
  auto& prompt =
      metrics.gaugeFamily("evosip_app_prompts_cached", "Prompts loaded in memory").Add({});
  metrics.addCollectHook([this, forbiddenMirror = metrics::CounterMirror(forbiddenSource),
                          parseMirror = metrics::CounterMirror(parse), &prompt]() mutable {
    forbiddenMirror.set(static_cast<double>(forbidden.load(std::memory_order_relaxed)));
    parseMirror.set(static_cast<double>(parseDrops.load()));
    prompt.Set(static_cast<double>(prompts->size()));
  });
  registerPacingMetrics();
  metrics::exposeStats<StoredCallsCounters>(
      metrics, EVOSIP_STAT_TABLE(StoredCallsCounters, EVOSIP_APP_STATE_STATS),
      [this](const auto& visit) {
        if (state) {
          visit(state->counters());
        }
      });
}

// Packets sent and send errors count the workers' sends and the pacing threads'; the pacing
// jitter is per worker.
void AppService::Impl::registerPacingMetrics() {
  auto& sent =
      metrics.counterFamily("evosip_app_rtp_packets_total", "").Add({{"direction", "sent"}});
  auto& errors =
      metrics.counterFamily("evosip_app_rtp_send_errors_total", "RTP sends the kernel refused")
          .Add({});
  auto& jitter = metrics.gaugeFamily(
      "evosip_app_pacing_jitter_seconds",
      "Lateness of paced RTP packets behind their 20 ms schedule over the last 5 s, per worker");
  std::vector<std::array<prometheus::Gauge*, 3>> gauges;
  for (size_t w = 0; w < cores.size(); ++w) {
    const std::string ws = std::to_string(w);
    gauges.push_back({&jitter.Add({{"worker", ws}, {"quantile", "0.5"}}),
                      &jitter.Add({{"worker", ws}, {"quantile", "0.99"}}),
                      &jitter.Add({{"worker", ws}, {"quantile", "1"}})});
  }
  metrics.addCollectHook([this, sentMirror = metrics::CounterMirror(sent),
                          errorMirror = metrics::CounterMirror(errors),
                          gauges = std::move(gauges)]() mutable {
    double total = 0;
    double failed = 0;
    for (const auto& c : cores) {
      total +=
          metrics::statValue(c->counters().rtpSent) + metrics::statValue(c->pacingStats().sent);
      failed += metrics::statValue(c->counters().rtpSendErrors) +
                metrics::statValue(c->pacingStats().failed);
    }
    sentMirror.set(total);
    errorMirror.set(failed);
    for (size_t w = 0; w < cores.size(); ++w) {
      const auto& c = cores[w]->pacingStats();
      gauges[w][0]->Set(static_cast<double>(c.jitterP50Ns.load()) / 1e9);
      gauges[w][1]->Set(static_cast<double>(c.jitterP99Ns.load()) / 1e9);
      gauges[w][2]->Set(static_cast<double>(c.jitterMaxNs.load()) / 1e9);
    }
  });
}

namespace {

// One socket per call: lift the soft descriptor limit to the hard one.
void raiseFileLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

AppService::AppService(AppConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

AppService::~AppService() {
  stop();
}

void AppService::start() {
  Impl& d = *impl_;
  raiseFileLimit();
  auto ranges = rtp::splitPortRange(d.config.rtpPortMin, d.config.rtpPortMax, d.pool.size());
  if (!ranges) {
    throw config::ConfigError("app.rtp_port_min/app.rtp_port_max: " + ranges.error().message);
  }
  d.shared.settings = d.config.app;
  // What the voicemail store holds before the first call (worker 0 recounts every minute).
  if (auto u = voicemailUsage(d.config.app.voicemailDir)) {
    d.shared.voicemailMessages = u->messages;
    d.shared.voicemailBytes = u->bytes;
  }
  d.shared.runBlocking = [&d](std::function<void()> fn) { d.pool.postBlocking(std::move(fn)); };
  d.prompts = std::make_unique<PromptCache>(d.config.app.soundsDir, d.shared.runBlocking);
  d.shared.prompts = d.prompts.get();
  d.transport = std::make_unique<transport::SipTransport>(
      d.pool, role::transportSettings(d.config.common),
      [&d](runtime::Worker& w, const transport::Packet& p) { d.onPacket(w, p); });
  for (size_t w = 0; w < d.pool.size(); ++w) {
    d.cores.push_back(std::make_unique<AppCore>(
        d.shared, d.pool.at(w).io(), w, (*ranges)[w],
        [&d](const transport::Destination& to, std::string_view bytes) {
          return d.transport->send(to, bytes);
        },
        runtime::SteadyClock::instance()));
  }
  d.transport->start();
  if (d.config.state.enabled) {
    d.startState();
  }
  d.registerRpc();
  d.registerMetrics();
  d.setWork();
  role::exportTransportMetrics(d.metrics, *d.transport);
  d.host.tickEvery(std::chrono::milliseconds(10), [&d](size_t w) { d.cores[w]->onTick(); });
  d.host.start();
  d.host.markReady();
  std::string addrs;
  for (const auto& spec : d.transport->bound()) {
    addrs += (addrs.empty() ? "" : ", ") + spec.str();
  }
  for (const auto& spec : d.transport->bound()) {
    if (!spec.endpoint.ip.is_loopback() && d.config.routers.onlyLoopback()) {
      d.logger->warn(
          "sip.listen {} is reachable from other hosts but app.routers ({}) lets "
          "only this host call: list the routers' addresses",
          spec.str(), d.config.routers.str());
      break;
    }
  }
  d.logger->info(
      "app ready: sip {} (calls from {}) control {} rtp {} ports {}-{} sounds {} voicemail {} "
      "workers {} sends {}",
      addrs, d.config.routers.str(), d.config.common.control.listen, d.config.app.rtpAddress,
      d.config.rtpPortMin, d.config.rtpPortMax, d.config.app.soundsDir, d.config.app.voicemailDir,
      d.pool.size(), d.cores.front()->batchedSends() ? "io_uring" : "sendto");
}

void AppService::stop() {
  Impl& d = *impl_;
  if (!d.transport) {
    return;
  }
  d.host.stopServing();
  // First the state thread: with calls still up, it leaves them stored (and its heartbeat to
  // expire) for a peer to take over; with none, it writes "stopped".
  if (d.state) {
    d.state->stop();
  }
  // Calls end on their own worker (sockets are closed by their owner).
  for (size_t w = 0; d.pool.running() && w < d.cores.size(); ++w) {
    auto done = std::make_shared<std::promise<void>>();
    auto f = done->get_future();
    d.pool.post(w, [&d, w, done] {
      d.cores[w]->closeAll();
      done->set_value();
    });
    f.wait_for(std::chrono::seconds(2));
  }
  d.transport->stop();
  d.host.stopWorkers();
  d.cores.clear();
  d.transport.reset();
}

const std::vector<transport::ListenSpec>& AppService::sipAddresses() const {
  return impl_->transport->bound();
}

uint16_t AppService::controlPort() const {
  return impl_->host.controlPort();
}

role::Host& AppService::host() {
  return impl_->host;
}

int runApp(const std::string& configPath) {
  return role::run<AppService>(configPath, &readAppConfig);
}

}  // namespace evosip::app
