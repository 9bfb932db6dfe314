// The router role's configuration: every key, read in named steps, each throwing
// config::ConfigError that names its key.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <fmt/format.h>
#include <openssl/rand.h>

#include <evosip/role/set_resolver.hpp>
#include <evosip/router/router_service.hpp>
#include <evosip/store/config.hpp>

namespace evosip::router {
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

// router.domain, aliases, the api it fetches credentials from, the challenge it sends.
void readAuth(config::Document& doc, RouterSettings& r) {
  r.domain = doc.getString("router.domain", "evosip.local");
  if (r.domain.empty()) {
    throw config::ConfigError("router.domain: must not be empty");
  }
  r.aliases = doc.getList("router.aliases", {"127.0.0.1"});
  r.api = doc.getString("router.api", "127.0.0.1:8080");
  r.apiToken = config::readSecret(doc.getString("router.api_token", ""));
  r.apiTimeout = std::chrono::milliseconds(doc.getInt("router.api_timeout_ms", 2000, 100, 60000));
  r.credentials.ttl = std::chrono::seconds(doc.getInt("router.credential_ttl_s", 300, 0, 86400));
  r.credentials.staleIfError =
      std::chrono::seconds(doc.getInt("router.credential_stale_s", 3600, 0, 7 * 86400));
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
}

// Registration lifetimes, dialog duration, and what a worker holds before it answers 503.
void readLimits(config::Document& doc, RouterSettings& r) {
  r.registrar.defaultExpires =
      static_cast<uint32_t>(doc.getInt("router.expires.default", 3600, 1, 604800));
  r.registrar.minExpires = static_cast<uint32_t>(doc.getInt("router.expires.min", 60, 1, 604800));
  r.registrar.maxExpires = static_cast<uint32_t>(doc.getInt("router.expires.max", 7200, 1, 604800));
  if (r.registrar.minExpires > r.registrar.maxExpires) {
    throw config::ConfigError("router.expires.min: larger than router.expires.max");
  }
  r.dialogMaxDuration =
      std::chrono::seconds(doc.getInt("router.dialog_max_duration_s", 43200, 60, 604800));
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
}

// router.nonce_secret (random when absent: nonces then hold for this process only).
auth::NonceCodec::Settings readNonces(config::Document& doc) {
  std::string secret = config::readSecret(doc.getString("router.nonce_secret", ""));
  if (secret.empty()) {
    unsigned char raw[32];
    RAND_bytes(raw, sizeof raw);
    secret.assign(reinterpret_cast<const char*>(raw), sizeof raw);
  } else if (secret.size() < auth::NonceCodec::kMinSecretSize) {
    throw config::ConfigError(fmt::format("router.nonce_secret: at least {} characters",
                                          auth::NonceCodec::kMinSecretSize));
  }
  auth::NonceCodec::Settings nonces;
  nonces.secret = secret;
  nonces.lifetime = std::chrono::seconds(doc.getInt("router.nonce_lifetime_s", 300, 1, 86400));
  return nonces;
}

// The apps and media relays the router hands calls to, and how it anchors media.
void readTargets(config::Document& doc, RouterConfig& c) {
  auto& r = c.router;
  c.apps = doc.getList("router.apps", {});
  c.mediaRelays = doc.getList("router.media.relays", {});
  c.dns = role::readResolverSettings(doc);
  // Next hops by host name (a Request-URI or Route naming a host): bounded lookups and waits.
  c.dns.maxLookups = static_cast<size_t>(doc.getInt("dns.max_lookups", 64, 1, 4096));
  c.dns.maxCached = static_cast<size_t>(doc.getInt("dns.max_cached", 1024, 0, 1000000));
  c.dns.lookupThreads = static_cast<int>(doc.getInt("dns.lookup_threads", 2, 1, 16));
  r.dnsMaxParked = static_cast<size_t>(doc.getInt("dns.max_parked", 256, 0, 100000));
  r.dnsTimeout = std::chrono::milliseconds(
      doc.getInt("dns.wait_ms", int64_t{1000} * c.dns.timeoutS * c.dns.attempts, 100, 600000));
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
  r.mediaDeleteRetry =
      std::chrono::seconds(doc.getInt("router.media.delete_retry_s", 60, 0, 86400));
  r.appTimeout = std::chrono::milliseconds(doc.getInt("router.app_timeout_ms", 2000, 0, 60000));
  r.appHoldDown = std::chrono::seconds(doc.getInt("router.app_hold_down_s", 10, 0, 3600));
}

// router.dialplan.<number>: action, public, media, and the parameters passed to the app.
ServiceNumber readServiceNumber(config::Document& doc, const std::string& number) {
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
  return n;
}

void checkTargets(const RouterConfig& c) {
  if (auto set = role::SetResolver::check({"apps", c.apps, {}}, role::TargetForm::kSipUri, 5060);
      !set) {
    throw config::ConfigError("router.apps: " + set.error().message);
  }
  if (auto set = role::SetResolver::check({"media", c.mediaRelays, {}}, role::TargetForm::kAddress,
                                          kNgPort);
      !set) {
    throw config::ConfigError("router.media.relays: " + set.error().message);
  }
}

// Our address for Via, Record-Route and the Route entries that name us; the instance id.
void setSelf(RouterConfig& c, bool recordRoute) {
  auto& r = c.router;
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
    for (const auto& spec : c.common.listen) {
      if (spec.protocol == transport::Protocol::kTcp) {
        const uint16_t tcpPort = c.common.advertisePort != 0 ? port : spec.endpoint.port;
        r.recordRouteTcp = fmt::format("sip:{}:{};transport=tcp;lr", host, tcpPort);
        break;
      }
    }
  }
  if (r.instanceId.empty()) {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    r.instanceId = fmt::format("{}:{}", name, port);
  }
}

}  // namespace

RouterConfig readRouterConfig(config::Document& doc) {
  RouterConfig c;
  c.common = role::readCommon(doc, {"udp:127.0.0.1:5070"}, "127.0.0.1:8070", "batch", kDrainIdleS);
  readAuth(doc, c.router);
  readLimits(doc, c.router);
  const bool recordRoute = doc.getBool("router.record_route", false);
  c.egressSockets = doc.getBool("router.egress_sockets", true);
  c.router.instanceId = doc.getString("router.instance_id", "");
  c.nonces = readNonces(doc);
  readTargets(doc, c);
  for (const auto& number : doc.childKeys("router.dialplan")) {
    c.dialplan.add(readServiceNumber(doc, number));
  }
  c.store = store::readSettings(doc);
  doc.checkUnknownKeys();
  checkTargets(c);
  setSelf(c, recordRoute);
  return c;
}

}  // namespace evosip::router
