#include <unistd.h>

#include <evosip/controller/controller_service.hpp>
#include <evosip/role/set_resolver.hpp>

namespace evosip::controller {

namespace {

std::string defaultIdentity() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) {
    name[0] = '\0';
  }
  return std::string(name[0] != '\0' ? name : "controller") + "-" + std::to_string(getpid());
}

void readServices(config::Document& doc, ControllerSettings& c) {
  static const char* const kDefaults[kLayers] = {"evosip-edge", "evosip-router", "evosip-app",
                                                 "evosip-media", "evosip-api"};
  for (size_t i = 0; i < kLayers; ++i) {
    const std::string key = std::string("controller.services.") + layerName(Layer(i));
    c.services[i] = doc.getString(key, kDefaults[i]);
  }
}

uint16_t port(config::Document& doc, const std::string& key, int64_t def) {
  return static_cast<uint16_t>(doc.getInt(key, def, 1, 65535));
}

void readDns(config::Document& doc, DnsSettings& d) {
  auto& r = d.resolver;
  r.minTtl =
      std::chrono::milliseconds(doc.getInt("controller.dns.interval_ms", 5000, 100, 3600000));
  r.maxTtl = std::chrono::seconds(doc.getInt("controller.dns.max_ttl_s", 300, 1, 86400));
  if (r.maxTtl < r.minTtl) {
    throw config::ConfigError("controller.dns.max_ttl_s: must not be below interval_ms");
  }
  r.servers = role::readNameServers(doc, "controller.dns.servers");
  r.timeoutS = static_cast<int>(doc.getInt("controller.dns.timeout_s", 2, 1, 30));
  r.attempts = static_cast<int>(doc.getInt("controller.dns.attempts", 2, 1, 5));
  d.sipPort = port(doc, "controller.dns.sip_port", 5060);
  d.controlPort = port(doc, "controller.dns.control_port", 8060);
  d.ngPort = port(doc, "controller.dns.ng_port", 2223);
}

}  // namespace

ControllerConfig readControllerConfig(config::Document& doc) {
  ControllerConfig cfg;
  cfg.common = role::readCommonWithoutSip(doc, "127.0.0.1:8063");
  ControllerSettings& c = cfg.controller;
  const std::string mode = doc.getString("controller.mode", "kubernetes");
  if (mode != "kubernetes" && mode != "dns") {
    throw config::ConfigError("controller.mode: '" + mode + "' is not kubernetes or dns");
  }
  c.mode = mode == "dns" ? Mode::kDns : Mode::kKubernetes;
  c.api = doc.getString("controller.kubernetes.api", "");
  c.tokenFile = doc.getString("controller.kubernetes.token_file", c.tokenFile);
  c.caFile = doc.getString("controller.kubernetes.ca_file", c.caFile);
  c.ns = doc.getString("controller.kubernetes.namespace", "");
  readServices(doc, c);
  c.ports.control = doc.getString("controller.control_port_name", "control");
  c.ports.sip = doc.getString("controller.sip_port_name", "sip");
  c.ports.ng = doc.getString("controller.ng_port_name", "ng");
  const std::string tokenFile = doc.getString("controller.control_token_file", "");
  if (!tokenFile.empty()) {
    c.controlToken = config::readSecret("file:" + tokenFile);
  }
  c.resync = std::chrono::seconds(doc.getInt("controller.resync_s", 300, 10, 86400));
  c.check = std::chrono::milliseconds(doc.getInt("controller.check_ms", 10000, 100, 3600000));
  c.pushTimeout =
      std::chrono::milliseconds(doc.getInt("controller.push_timeout_ms", 2000, 100, 60000));
  c.leaseName = doc.getString("controller.lease.name", c.leaseName);
  c.leaseDuration = std::chrono::seconds(doc.getInt("controller.lease.duration_s", 15, 1, 3600));
  c.identity = doc.getString("controller.lease.identity", "");
  if (c.identity.empty()) {
    c.identity = defaultIdentity();
  }
  readDns(doc, c.dns);
  doc.checkUnknownKeys();
  return cfg;
}

}  // namespace evosip::controller
