#include <array>
#include <unistd.h>

#include <fmt/format.h>

#include <evosip/control/client.hpp>
#include <evosip/role/settings.hpp>
#include <evosip/runtime/worker_pool.hpp>

namespace evosip::role {

namespace {

void readControlWorkersLog(config::Document& doc, const std::string& defaultControl,
                           int defaultDrainIdleS, CommonSettings& s) {
  s.control.listen = doc.getString("control.listen", defaultControl);
  s.control.token = config::readSecret(doc.getString("control.token", ""));
  if (s.control.token.empty() && !control::isLoopbackListen(s.control.listen)) {
    throw config::ConfigError(fmt::format(
        "control.token is required when control.listen is not loopback ('{}')", s.control.listen));
  }
  s.workers = static_cast<size_t>(doc.getInt("workers", 0, 0, 256));
  if (s.workers == 0) {
    s.workers = runtime::defaultWorkerCount();
  }
  s.log.level = doc.getString("log.level", "info");
  s.log.format = doc.getString("log.format", "text");
  s.drainTimeout = std::chrono::seconds(doc.getInt("drain_timeout_s", 30, 1, 86400));
  s.drainIdle = std::chrono::seconds(doc.getInt("drain_idle_s", defaultDrainIdleS, 0, 3600));
}

}  // namespace

CommonSettings readCommon(config::Document& doc, const std::vector<std::string>& defaultListen,
                          const std::string& defaultControl, const std::string& defaultScheduling,
                          int defaultDrainIdleS) {
  CommonSettings s;
  for (const auto& text : doc.getList("sip.listen", defaultListen)) {
    auto spec = transport::parseListenSpec(text);
    if (!spec) {
      throw config::ConfigError(fmt::format("sip.listen: '{}' is not PROTO:ADDRESS:PORT ({})", text,
                                            spec.error().message));
    }
    if (spec->protocol != transport::Protocol::kUdp &&
        spec->protocol != transport::Protocol::kTcp) {
      throw config::ConfigError(
          fmt::format("sip.listen: '{}': only udp and tcp are supported", text));
    }
    s.listen.push_back(*spec);
  }
  if (s.listen.empty()) {
    throw config::ConfigError("sip.listen: at least one address is required");
  }
  std::string advertise = doc.getString("sip.advertise", "");
  if (!advertise.empty()) {
    // "host" or "host:port" or "[v6]" or "[v6]:port"
    std::string host = advertise;
    uint16_t port = 0;
    auto colon = advertise.rfind(':');
    const bool bracketed = advertise.front() == '[';
    if (colon != std::string::npos && (!bracketed || advertise[colon - 1] == ']') &&
        (bracketed || advertise.find(':') == colon)) {
      auto p = advertise.substr(colon + 1);
      char* end = nullptr;
      long v = std::strtol(p.c_str(), &end, 10);
      if (p.empty() || *end != '\0' || v <= 0 || v > 65535) {
        throw config::ConfigError(
            fmt::format("sip.advertise: '{}' has an invalid port", advertise));
      }
      port = static_cast<uint16_t>(v);
      host = advertise.substr(0, colon);
    }
    s.advertiseHost = host;
    s.advertisePort = port;
  } else {
    for (const auto& spec : s.listen) {
      if (spec.endpoint.ip.is_unspecified()) {
        throw config::ConfigError(fmt::format(
            "sip.advertise: required when sip.listen binds the wildcard address ({})", spec.str()));
      }
    }
  }
  readControlWorkersLog(doc, defaultControl, defaultDrainIdleS, s);
  s.maxMessageSize = static_cast<size_t>(doc.getInt("sip.max_message_size", 65535, 1024, 65535));
  s.maxConnections = static_cast<size_t>(doc.getInt("sip.tcp.max_connections", 10000, 1, 1000000));
  s.maxConnectionsPerIp =
      static_cast<size_t>(doc.getInt("sip.tcp.max_connections_per_ip", 32, 0, 1000000));
  s.tcpIdleTimeoutS = static_cast<int>(doc.getInt("sip.tcp.idle_timeout_s", 300, 1, 86400));
  s.tcpMessageTimeoutS = static_cast<int>(doc.getInt("sip.tcp.message_timeout_s", 10, 1, 3600));
  s.tcpConnectTimeoutMs =
      static_cast<int>(doc.getInt("sip.tcp.connect_timeout_ms", 3000, 100, 60000));
  s.maxOutboundPerWorker =
      static_cast<size_t>(doc.getInt("sip.tcp.max_outbound_connections", 256, 0, 100000));
  s.maxOutboundPerRemote =
      static_cast<size_t>(doc.getInt("sip.tcp.max_outbound_per_remote", 64, 0, 100000));
  s.tcpConnectQueue =
      static_cast<size_t>(doc.getInt("sip.tcp.connect_queue_bytes", 65536, 1024, 16 << 20));
  s.freeBind = doc.getBool("sip.free_bind", false);
  const std::string scheduling = doc.getString("worker_scheduling", defaultScheduling);
  if (scheduling != "batch" && scheduling != "normal") {
    throw config::ConfigError(
        fmt::format("worker_scheduling: '{}' is not batch or normal", scheduling));
  }
  s.batchScheduling = scheduling == "batch";
  const std::string io = doc.getString("sip.io", "auto");
  if (!runtime::parseIoMode(io, s.ioMode)) {
    throw config::ConfigError(fmt::format("sip.io: '{}' is not auto, io_uring or epoll", io));
  }
  return s;
}

CommonSettings readCommonWithoutSip(config::Document& doc, const std::string& defaultControl,
                                    int defaultDrainIdleS) {
  CommonSettings s;
  readControlWorkersLog(doc, defaultControl, defaultDrainIdleS, s);
  return s;
}

transport::TransportSettings transportSettings(const CommonSettings& s) {
  transport::TransportSettings t;
  t.listen = s.listen;
  t.maxMessageSize = s.maxMessageSize;
  t.maxConnections = s.maxConnections;
  t.maxConnectionsPerIp = s.maxConnectionsPerIp;
  t.tcpIdleTimeout = std::chrono::seconds(s.tcpIdleTimeoutS);
  t.tcpMessageTimeout = std::chrono::seconds(s.tcpMessageTimeoutS);
  t.freeBind = s.freeBind;
  t.tcpConnectTimeout = std::chrono::milliseconds(s.tcpConnectTimeoutMs);
  t.maxOutboundPerWorker = s.maxOutboundPerWorker;
  t.maxOutboundPerRemote = s.maxOutboundPerRemote;
  t.tcpConnectQueue = s.tcpConnectQueue;
  return t;
}

bool validInstanceId(std::string_view name) {
  return !name.empty() && name.size() <= 128 && name.find_first_of(":*?[] ") == std::string::npos;
}

std::string readInstanceId(config::Document& doc, const std::string& key) {
  std::string id = doc.getString(key, "");
  if (id.empty()) {
    std::array<char, 256> name{};
    ::gethostname(name.data(), name.size() - 1);
    id = name.data();
  }
  if (!validInstanceId(id)) {
    throw config::ConfigError(
        fmt::format("{}: '{}' must be 1-128 characters without ':', spaces or wildcards", key, id));
  }
  return id;
}

}  // namespace evosip::role
