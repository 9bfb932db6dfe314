#include <cstring>
#include <filesystem>
#include <future>
#include <sys/resource.h>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/app/app_service.hpp>
#include <evosip/app/voicemail.hpp>
#include <evosip/base/hash.hpp>
#include <evosip/role/worker_ticks.hpp>
#include <evosip/runtime/worker_pool.hpp>
#include <evosip/sip/response.hpp>

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
  doc.checkUnknownKeys();

  const auto& first = c.common.listen.front();
  a.viaHost = c.common.advertiseHost.empty() ? first.endpoint.hostForUri() : c.common.advertiseHost;
  a.viaPort = c.common.advertisePort != 0 ? c.common.advertisePort : first.endpoint.port;
  return c;
}

struct AppService::Impl {
  explicit Impl(AppConfig c)
      : config(std::move(c)), pool(config.common.workers), logger(log::get("app")) {}

  AppConfig config;
  runtime::WorkerPool pool;
  std::shared_ptr<spdlog::logger> logger;
  AppShared shared;
  std::unique_ptr<PromptCache> prompts;
  std::vector<std::unique_ptr<AppCore>> cores;
  std::unique_ptr<transport::SipTransport> transport;
  metrics::Registry metrics;
  control::RpcRegistry rpc;
  std::unique_ptr<control::ControlServer> control;
  std::unique_ptr<role::WorkerTicks> ticks;
  std::atomic<bool> ready{false};
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
      transport->send(replyTo(packet.source), reply);
    }
  }

  // Where a stateless reply to a packet goes: back over the packet's own transport and
  // connection (a TCP or TLS peer does not read UDP).
  static transport::Destination replyTo(const transport::Source& source) {
    return {source.protocol, source.remote, source.connection};
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
        transport->send(replyTo(packet.source), reply);
      }
      return;
    }
    const size_t owner = hash64(msg->callId()) % cores.size();
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

  void registerRpc();
  void registerMetrics();
};

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
  rpc.add("instance.drain", [this](const json::value&) -> control::RpcResult {
    shared.draining = true;
    ready = false;
    const int64_t calls = shared.calls.load();
    logger->info("draining: new calls get 503, {} calls go on", calls);
    return json::value(json::object{{"draining", true}, {"calls", calls}});
  });
  rpc.add("instance.undrain", [this](const json::value&) -> control::RpcResult {
    shared.draining = false;
    ready = true;
    logger->info("undrained: new calls accepted again");
    return json::value(json::object{{"draining", false}, {"calls", shared.calls.load()}});
  });
}

void AppService::Impl::registerMetrics() {
  auto& calls = metrics.counterFamily("evosip_app_calls_total",
                                      "INVITEs that started an application, by action");
  auto& active = metrics.gaugeFamily("evosip_app_calls_active", "Calls in progress");
  auto& rtp = metrics.counterFamily("evosip_app_rtp_packets_total",
                                    "RTP packets sent and received (RTCP counted apart)");
  auto& rtpErrors =
      metrics.counterFamily("evosip_app_rtp_send_errors_total", "RTP sends the kernel refused");
  auto& recordings = metrics.counterFamily("evosip_app_recordings_total",
                                           "Voicemail recordings stored (or failed)");
  auto& events = metrics.counterFamily(
      "evosip_app_events_total",
      "Call events: rejected INVITEs, BYEs, CANCELs, DTMF digits, redirects, timeouts");
  auto& jitter = metrics.gaugeFamily(
      "evosip_app_pacing_jitter_seconds",
      "Lateness of paced RTP packets behind their 20 ms schedule over the last 5 s, per worker");
  auto& paced = metrics.counterFamily("evosip_app_paced_packets_total",
                                      "RTP packets prepared for the pacing threads");
  auto& skipped =
      metrics.counterFamily("evosip_app_pacing_skipped_ticks_total",
                            "Pacing ticks dropped after a stall of more than two frame periods");
  auto& txns = metrics.gaugeFamily("evosip_app_transactions", "RFC 3261 transactions alive");
  auto& parse = metrics.counterFamily("evosip_app_parse_drops_total",
                                      "SIP messages that could not be parsed");
  auto& prompt = metrics.gaugeFamily("evosip_app_prompts_cached", "Prompts loaded in memory");

  struct State {
    std::vector<std::unique_ptr<role::CounterMirror>> calls;
    std::unique_ptr<role::CounterMirror> sent, received, rtcp, sendErrors, written, failed, parse,
        paced, skipped, overQuota, forbidden;
    std::vector<
        std::pair<std::unique_ptr<role::CounterMirror>, std::atomic<uint64_t> AppCounters::*>>
        events;
    prometheus::Gauge* active = nullptr;
    prometheus::Gauge* server = nullptr;
    prometheus::Gauge* client = nullptr;
    prometheus::Gauge* prompts = nullptr;
    std::vector<std::array<prometheus::Gauge*, 3>> jitter;
  };
  auto st = std::make_shared<State>();
  auto mirror = [](prometheus::Counter& c) { return std::make_unique<role::CounterMirror>(c); };
  for (size_t a = 0; a < kActionCount; ++a) {
    st->calls.push_back(
        mirror(calls.Add({{"action", std::string(actionName(static_cast<Action>(a)))}})));
  }
  st->sent = mirror(rtp.Add({{"direction", "sent"}}));
  st->received = mirror(rtp.Add({{"direction", "received"}}));
  st->rtcp = mirror(rtp.Add({{"direction", "received_rtcp"}}));
  st->sendErrors = mirror(rtpErrors.Add({}));
  st->written = mirror(recordings.Add({{"result", "written"}}));
  st->failed = mirror(recordings.Add({{"result", "failed"}}));
  st->overQuota = mirror(recordings.Add({{"result", "over_quota"}}));
  st->forbidden = mirror(events.Add({{"event", "forbidden_source"}}));
  st->parse = mirror(parse.Add({}));
  st->paced = mirror(paced.Add({}));
  st->skipped = mirror(skipped.Add({}));
  const std::pair<const char*, std::atomic<uint64_t> AppCounters::*> eventList[] = {
      {"rejected", &AppCounters::rejected},         {"bye_sent", &AppCounters::byesSent},
      {"bye_received", &AppCounters::byesReceived}, {"cancelled", &AppCounters::cancelled},
      {"dtmf_digit", &AppCounters::dtmfDigits},     {"redirect", &AppCounters::redirects},
      {"rtp_timeout", &AppCounters::rtpTimeouts},   {"max_duration", &AppCounters::maxDurationEnds},
      {"mailbox_full", &AppCounters::mailboxFull},
  };
  for (const auto& [name, member] : eventList) {
    st->events.emplace_back(mirror(events.Add({{"event", name}})), member);
  }
  st->active = &active.Add({});
  st->server = &txns.Add({{"kind", "server"}});
  st->client = &txns.Add({{"kind", "client"}});
  st->prompts = &prompt.Add({});
  for (size_t w = 0; w < cores.size(); ++w) {
    const std::string ws = std::to_string(w);
    st->jitter.push_back({&jitter.Add({{"worker", ws}, {"quantile", "0.5"}}),
                          &jitter.Add({{"worker", ws}, {"quantile", "0.99"}}),
                          &jitter.Add({{"worker", ws}, {"quantile", "1"}})});
  }
  metrics.addCollectHook([this, st] {
    auto sum = [&](std::atomic<uint64_t> AppCounters::*m) {
      double total = 0;
      for (const auto& c : cores) {
        total += static_cast<double>((c->counters().*m).load(std::memory_order_relaxed));
      }
      return total;
    };
    for (size_t a = 0; a < kActionCount; ++a) {
      double total = 0;
      for (const auto& c : cores) {
        total += static_cast<double>(c->counters().calls[a].load(std::memory_order_relaxed));
      }
      st->calls[a]->set(total);
    }
    double act = 0;
    for (const auto& c : cores) {
      act += static_cast<double>(c->counters().active.load(std::memory_order_relaxed));
    }
    st->active->Set(act);
    double pacedSent = 0;
    double pacedFailed = 0;
    for (const auto& c : cores) {
      pacedSent += static_cast<double>(c->pacingStats().sent.load(std::memory_order_relaxed));
      pacedFailed += static_cast<double>(c->pacingStats().failed.load(std::memory_order_relaxed));
    }
    st->sent->set(sum(&AppCounters::rtpSent) + pacedSent);
    st->received->set(sum(&AppCounters::rtpReceived));
    st->rtcp->set(sum(&AppCounters::rtcpReceived));
    st->sendErrors->set(sum(&AppCounters::rtpSendErrors) + pacedFailed);
    st->written->set(sum(&AppCounters::recordingsWritten));
    st->failed->set(sum(&AppCounters::recordingsFailed));
    st->overQuota->set(sum(&AppCounters::recordingsOverQuota));
    st->forbidden->set(static_cast<double>(forbidden.load(std::memory_order_relaxed)));
    st->paced->set(sum(&AppCounters::pacedPackets));
    st->skipped->set(sum(&AppCounters::skippedTicks));
    st->parse->set(static_cast<double>(parseDrops.load()));
    for (auto& [m, member] : st->events) {
      m->set(sum(member));
    }
    st->server->Set(sum(&AppCounters::serverTransactions));
    st->client->Set(sum(&AppCounters::clientTransactions));
    st->prompts->Set(static_cast<double>(prompts->size()));
    for (size_t w = 0; w < cores.size(); ++w) {
      const auto& c = cores[w]->pacingStats();
      st->jitter[w][0]->Set(static_cast<double>(c.jitterP50Ns.load()) / 1e9);
      st->jitter[w][1]->Set(static_cast<double>(c.jitterP99Ns.load()) / 1e9);
      st->jitter[w][2]->Set(static_cast<double>(c.jitterMaxNs.load()) / 1e9);
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
  d.registerRpc();
  d.registerMetrics();
  role::exportTransportMetrics(d.metrics, *d.transport);
  d.control = std::make_unique<control::ControlServer>(d.config.common.control, d.rpc, d.metrics,
                                                       [&d] { return d.ready.load(); });
  d.control->start();
  d.ticks = std::make_unique<role::WorkerTicks>(d.pool, std::chrono::milliseconds(10),
                                                [&d](size_t w) { d.cores[w]->onTick(); });
  d.pool.start();
  d.ticks->start();
  d.ready = true;
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
  d.ready = false;
  if (d.control) {
    d.control->stop();
  }
  if (d.ticks) {
    d.ticks->stop();
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
  d.pool.stop();
  d.cores.clear();
  d.ticks.reset();
  d.transport.reset();
}

const std::vector<transport::ListenSpec>& AppService::sipAddresses() const {
  return impl_->transport->bound();
}

uint16_t AppService::controlPort() const {
  return impl_->control->port();
}

int runApp(const std::string& configPath) {
  return role::runUntilStopped<AppService>("app", configPath, &readAppConfig);
}

}  // namespace evosip::app
