// The one binary: `evosip <role> --config FILE`, `evosip up`, `evosip ctl`.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <malloc.h>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <openssl/rand.h>

#include <evosip/api/api_service.hpp>
#include <evosip/app/app_service.hpp>
#include <evosip/base/hex.hpp>
#include <evosip/config/config.hpp>
#include <evosip/control/client.hpp>
#include <evosip/controller/controller_service.hpp>
#include <evosip/edge/edge_service.hpp>
#include <evosip/log/log.hpp>
#include <evosip/media/media_service.hpp>
#include <evosip/router/router_service.hpp>
#include <evosip/runtime/signals.hpp>

namespace {

constexpr const char* kVersion = "0.1.0";

// A password for a demo subscriber: 12 characters from a readable alphabet.
std::string demoPassword() {
  static constexpr char kAlphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";
  unsigned char raw[12];
  RAND_bytes(raw, sizeof raw);
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kAlphabet[c % (sizeof kAlphabet - 1)]);
  }
  return out;
}

// A random bearer token: 32 hex digits (128 bits).
std::string randomToken() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    throw std::runtime_error("evosip up: no random bytes for the internal token");
  }
  return evosip::hexEncode(raw);
}

// Creates the demo domain and subscribers through the API (a second `up` resets passwords).
std::vector<std::pair<std::string, std::string>> createDemoSubscribers(const std::string& api) {
  using evosip::control::httpRequest;
  const auto timeout = std::chrono::seconds(5);
  auto domain = httpRequest(api, "POST", "/v1/domains", "", R"({"name":"evosip.local"})", timeout);
  if (!domain || (domain->status != 201 && domain->status != 200 && domain->status != 409)) {
    throw std::runtime_error("evosip up: cannot create the demo domain through the API: " +
                             (domain ? domain->body : domain.error()));
  }
  std::vector<std::pair<std::string, std::string>> users;
  for (const char* user : {"alice", "bob"}) {
    std::string password = demoPassword();
    auto created =
        httpRequest(api, "POST", "/v1/subscribers", "",
                    fmt::format(R"({{"domain":"evosip.local","username":"{}","password":"{}"}})",
                                user, password),
                    timeout);
    if (created && created->status == 409) {
      created = httpRequest(api, "PATCH", fmt::format("/v1/subscribers/evosip.local/{}", user), "",
                            fmt::format(R"({{"password":"{}"}})", password), timeout);
    }
    if (!created || created->status >= 300) {
      throw std::runtime_error(fmt::format("evosip up: cannot create {} through the API: {}", user,
                                           created ? created->body : created.error()));
    }
    users.emplace_back(user, password);
  }
  return users;
}

// `evosip up`'s addresses: the edge on the SIP port, the other roles above it.
struct UpPorts {
  explicit UpPorts(int sipPort, int apiPort)
      : sip(sipPort), router(sipPort + 10), app(sipPort + 20), ng(sipPort + 30), api(apiPort) {}
  int sip, router, app, ng, api;
};

// The media relay: the router, on this host, is its only ng client.
std::string upMediaYaml(const UpPorts& p) {
  return fmt::format(
      "media:\n  ng_listen: \"127.0.0.1:{0}\"\n  address: \"127.0.0.1\"\n"
      "  port_min: 30000\n  port_max: 34999\n"
      "  ng_allow: [\"127.0.0.0/8\", \"::1\"]\n"
      "control: {{ listen: \"127.0.0.1:0\" }}\n",
      p.ng);
}

std::string upAppYaml(const UpPorts& p, const std::string& voicemail) {
  return fmt::format(
      "sip: {{ listen: [\"udp:127.0.0.1:{0}\"] }}\n"
      "control: {{ listen: \"127.0.0.1:0\" }}\n"
      "app:\n  voicemail_dir: \"{1}\"\n"
      "  routers: [\"127.0.0.0/8\", \"::1\"]\n"
      "  rtp_port_min: 35000\n  rtp_port_max: 39999\n",
      p.app, voicemail);
}

// JSON is YAML: the dialplan keys ("*97") stay strings.
std::string upRouterYaml(const UpPorts& p, const std::string& internalToken) {
  return fmt::format(
      "sip: {{ listen: [\"udp:127.0.0.1:{0}\"] }}\n"
      "control: {{ listen: \"127.0.0.1:0\" }}\n"
      "router:\n  domain: evosip.local\n"
      "  aliases: [\"127.0.0.1:{2}\", \"127.0.0.1:{0}\"]\n"
      // MD5 only: baresip 1.0 (libre) refuses a 401 that offers any algorithm it
      // does not know instead of ignoring that challenge (RFC 8760 section 2.4).
      "  auth_algorithms: [MD5]\n"
      "  api: \"127.0.0.1:{1}\"\n"
      "  api_token: \"{5}\"\n"
      "  apps: [\"sip:127.0.0.1:{3}\"]\n"
      "  media: {{ relays: [\"udp:127.0.0.1:{4}\"], mode: always }}\n"
      "  dialplan:\n"
      "    \"100\": {{ action: Playback, sound: welcome, sound_locale: en }}\n"
      "    \"101\": {{ action: Echo }}\n"
      "    \"102\": {{ action: Menu, sound: menu, "
      "targets: \"1=sip:100@evosip.local,2=sip:101@evosip.local\" }}\n"
      "    \"*97\": {{ action: Voicemail, mailbox: from-user }}\n",
      p.router, p.api, p.sip, p.app, p.ng, internalToken);
}

std::string upApiYaml(const UpPorts& p, const std::string& data, uint16_t routerControl,
                      const std::string& internalToken) {
  return fmt::format(
      "api:\n  listen: \"127.0.0.1:{0}\"\n  database: \"sqlite://{1}/evosip.db\"\n"
      "  routers: [\"127.0.0.1:{2}\"]\n  internal_token: \"{3}\"\n"
      "control: {{ listen: \"127.0.0.1:0\" }}\n",
      p.api, data, routerControl, internalToken);
}

// Everything runs on loopback: softphones, tests and load generators on this host are
// trusted, so loopback is exempt from the per-source rate limit and the auth-failure ban.
std::string upEdgeYaml(const UpPorts& p) {
  return fmt::format(
      "sip:\n  listen: [\"udp:127.0.0.1:{0}\", \"tcp:127.0.0.1:{0}\"]\n"
      "control: {{ listen: \"127.0.0.1:0\" }}\n"
      "edge:\n  routers: [\"sip:127.0.0.1:{1}\"]\n"
      "  rate_limit: {{ exempt: [\"127.0.0.0/8\", \"::1/128\"] }}\n"
      "  auth_ban: {{ exempt: [\"127.0.0.0/8\", \"::1/128\"] }}\n",
      p.sip, p.router);
}

// The control ports of the running roles, for the banner.
struct UpControls {
  uint16_t edge, router, api, media, app;
};

void printUpBanner(const UpPorts& p, const UpControls& c, const std::string& data,
                   const std::string& voicemail,
                   const std::vector<std::pair<std::string, std::string>>& users) {
  std::printf(
      "evosip up: running on loopback (data in %s)\n"
      "  edge    SIP udp+tcp 127.0.0.1:%d     control http://127.0.0.1:%u\n"
      "  router  SIP udp 127.0.0.1:%d         control http://127.0.0.1:%u\n"
      "  api     http://127.0.0.1:%d/v1/      control http://127.0.0.1:%u\n"
      "  media   ng udp 127.0.0.1:%d          control http://127.0.0.1:%u  (RTP 30000-34999)\n"
      "  app     SIP udp 127.0.0.1:%d         control http://127.0.0.1:%u  (voicemail in %s)\n"
      "SIP domain evosip.local (127.0.0.1:%d counts as it). Demo subscribers:\n",
      data.c_str(), p.sip, c.edge, p.router, c.router, p.api, c.api, p.ng, c.media, p.app, c.app,
      voicemail.c_str(), p.sip);
  for (const auto& [user, password] : users) {
    std::printf("  %-6s password %s\n", user.c_str(), password.c_str());
  }
  std::printf(
      "Register a softphone as <user>@evosip.local with server/outbound proxy 127.0.0.1:%d\n"
      "(UDP or TCP), then dial the other user, or:\n"
      "  100  a welcome prompt (Playback)     101  your own voice back (Echo)\n"
      "  102  a menu: press 1 or 2 (Menu)     *97  leave yourself a voicemail\n"
      "All audio goes through the media relay. Ctrl-C stops everything; SIGTERM lets the\n"
      "calls in progress end first (new calls are refused meanwhile).\n",
      p.sip);
  std::fflush(stdout);
}

// `evosip up`: every role that exists, on loopback, with a demo configuration. The media relay
// and the app start first (the router's sets name them), the edge last.
int runUp(const std::string& dataDir, int sipPort, int apiPort) {
  using namespace evosip;
  runtime::blockStopSignals();
  log::init({});
  std::filesystem::create_directories(dataDir);
  const std::string data = std::filesystem::absolute(dataDir).string();
  const std::string voicemail = data + "/voicemail";
  std::filesystem::create_directories(voicemail);
  const UpPorts ports(sipPort, apiPort);
  // The credentials endpoint serves HA1 values only with a token: the api and the router share
  // one made for this run.
  const std::string internalToken = randomToken();

  auto mediaDoc = config::Document::fromString(upMediaYaml(ports));
  media::MediaService mediaService(media::readMediaConfig(mediaDoc));
  mediaService.start();
  auto appDoc = config::Document::fromString(upAppYaml(ports, voicemail));
  app::AppService appService(app::readAppConfig(appDoc));
  appService.start();
  auto routerDoc = config::Document::fromString(upRouterYaml(ports, internalToken));
  router::RouterService routerService(router::readRouterConfig(routerDoc));
  routerService.start();
  auto apiDoc = config::Document::fromString(
      upApiYaml(ports, data, routerService.controlPort(), internalToken));
  api::ApiService apiService(api::readApiConfig(apiDoc));
  apiService.start();
  auto edgeDoc = config::Document::fromString(upEdgeYaml(ports));
  edge::EdgeService edgeService(edge::readEdgeConfig(edgeDoc));
  edgeService.start();

  const auto users = createDemoSubscribers(fmt::format("127.0.0.1:{}", apiPort));
  printUpBanner(ports,
                {edgeService.controlPort(), routerService.controlPort(), apiService.controlPort(),
                 mediaService.controlPort(), appService.controlPort()},
                data, voicemail, users);
  role::serveUntilStopped({&edgeService.host(), &routerService.host(), &apiService.host(),
                           &mediaService.host(), &appService.host()});
  edgeService.stop();
  apiService.stop();
  routerService.stop();
  appService.stop();
  mediaService.stop();
  return 0;
}

int runCtl(const std::string& address, const std::string& token, const std::string& method,
           const std::string& params) {
  boost::json::value p;
  if (!params.empty()) {
    boost::system::error_code ec;
    p = boost::json::parse(params, ec);
    if (ec) {
      std::fprintf(stderr, "evosip ctl: params are not JSON: %s\n", ec.message().c_str());
      return 2;
    }
  }
  auto result = evosip::control::callRpc(address, token, method, p, std::chrono::seconds(10));
  if (!result) {
    std::fprintf(stderr, "evosip ctl: %s\n", result.error().c_str());
    return 1;
  }
  std::printf("%s\n", boost::json::serialize(*result).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // The heap keeps what it grew to: a router holds each transaction 32 s, so its heap grows
  // and shrinks with the load, and glibc's default (trim the top above ~128 KiB, grow by the
  // page) cost every worker an mprotect and a run of page faults per few messages (6 % of the
  // router's CPU in perf). Grow by 16 MiB, give back only above 256 MiB free at the top.
  mallopt(M_TOP_PAD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  CLI::App app{"evosip: a cloud-native VoIP platform in one binary"};
  app.require_subcommand(1);
  app.set_version_flag("--version", kVersion);

  std::string edgeConfig;
  auto* edge = app.add_subcommand("edge", "public SIP entry: stateless proxy in front of routers");
  edge->add_option("-c,--config", edgeConfig, "YAML configuration file (keys: services/edge)");

  std::string routerConfig;
  auto* router =
      app.add_subcommand("router", "registrar, digest auth and stateful routing behind the edges");
  router->add_option("-c,--config", routerConfig,
                     "YAML configuration file (keys: services/router)");

  std::string apiConfig;
  auto* api = app.add_subcommand(
      "api", "provisioning REST API (domains, subscribers) and credentials for routers");
  api->add_option("-c,--config", apiConfig, "YAML configuration file (keys: services/api)");

  std::string mediaConfig;
  auto* media = app.add_subcommand(
      "media", "RTP/RTCP relay driven by rtpengine's ng protocol (an rtpengine drop-in)");
  media->add_option("-c,--config", mediaConfig, "YAML configuration file (keys: services/media)");

  std::string appConfig;
  auto* appRole = app.add_subcommand(
      "app", "header-driven application server: Playback, Voicemail, Echo, Menu, Hangup");
  appRole->add_option("-c,--config", appConfig, "YAML configuration file (keys: services/app)");

  std::string controllerConfig;
  auto* controllerRole = app.add_subcommand(
      "controller", "pushes each role its peers from Kubernetes EndpointSlices or DNS");
  controllerRole->add_option("-c,--config", controllerConfig,
                             "YAML configuration file (keys: services/controller)");

  std::string upData = "./evosip-data";
  int sipPort = 5060;
  int apiPort = 8080;
  auto* up = app.add_subcommand("up", "run the whole platform on loopback (demo)");
  up->add_option("--data", upData, "data directory (SQLite database)");
  up->add_option("--sip-port", sipPort, "SIP port of the edge (UDP and TCP)")
      ->check(CLI::Range(1, 65000));
  up->add_option("--api-port", apiPort, "HTTP port of the provisioning API")
      ->check(CLI::Range(1, 65535));

  std::string ctlAddress = "127.0.0.1:8060";
  std::string ctlToken;
  std::string ctlMethod;
  std::string ctlParams;
  auto* ctl = app.add_subcommand("ctl", "call a control RPC method of a running instance");
  ctl->add_option("-a,--address", ctlAddress, "control address HOST:PORT");
  ctl->add_option("-t,--token", ctlToken, "bearer token (or env EVOSIP_CONTROL_TOKEN)")
      ->envname("EVOSIP_CONTROL_TOKEN");
  ctl->add_option("method", ctlMethod, "method, e.g. dispatcher.list")->required();
  ctl->add_option("params", ctlParams, "params as JSON, e.g. '{\"set\":\"routers\"}'");

  CLI11_PARSE(app, argc, argv);
  try {
    if (edge->parsed()) {
      return evosip::edge::runEdge(edgeConfig);
    }
    if (router->parsed()) {
      return evosip::router::runRouter(routerConfig);
    }
    if (api->parsed()) {
      return evosip::api::runApi(apiConfig);
    }
    if (media->parsed()) {
      return evosip::media::runMedia(mediaConfig);
    }
    if (appRole->parsed()) {
      return evosip::app::runApp(appConfig);
    }
    if (controllerRole->parsed()) {
      return evosip::controller::runController(controllerConfig);
    }
    if (up->parsed()) {
      return runUp(upData, sipPort, apiPort);
    }
    if (ctl->parsed()) {
      return runCtl(ctlAddress, ctlToken, ctlMethod, ctlParams);
    }
  } catch (const evosip::config::ConfigError& e) {
    std::fprintf(stderr, "evosip: configuration error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evosip: %s\n", e.what());
    return 1;
  }
  return 0;
}
