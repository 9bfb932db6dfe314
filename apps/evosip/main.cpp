// The one binary: `evosip <role> --config FILE`, `evosip up`, `evosip ctl`.
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/api/api_service.hpp>
#include <evosip/config/config.hpp>
#include <evosip/control/client.hpp>
#include <evosip/edge/edge_service.hpp>
#include <evosip/log/log.hpp>
#include <evosip/router/router_service.hpp>
#include <evosip/runtime/signals.hpp>

namespace {

constexpr const char* kVersion = "0.1.0";

// `evosip up`: every role that exists, on loopback, with a demo configuration.
int runUp(int sipPort, int controlPort) {
  using namespace evosip;
  runtime::blockStopSignals();
  log::init({});
  auto doc = config::Document::fromString(
      fmt::format("sip:\n  listen: [\"udp:127.0.0.1:{0}\", \"tcp:127.0.0.1:{0}\"]\n"
                  "control: {{ listen: \"127.0.0.1:{1}\" }}\n"
                  "edge:\n  routers: [\"sip:127.0.0.1:{2}\"]\n",
                  sipPort, controlPort, sipPort + 10));
  auto config = edge::readEdgeConfig(doc);
  edge::EdgeService edgeService(std::move(config));
  edgeService.start();
  std::printf(
      "evosip up: running on loopback\n"
      "  edge    SIP udp+tcp 127.0.0.1:%d   control http://127.0.0.1:%u (/metrics /readyz /rpc)\n"
      "  routers sip:127.0.0.1:%d  (the router role is not part of this build yet: point a\n"
      "          SIP server there, e.g. `sipp -sn uas -i 127.0.0.1 -p %d`, to take calls)\n"
      "Try: sipp -sn uac -i 127.0.0.1 -m 10 127.0.0.1:%d -s 100\n"
      "Ctrl-C stops everything.\n",
      sipPort, edgeService.controlPort(), sipPort + 10, sipPort + 10, sipPort);
  std::fflush(stdout);
  runtime::waitForStopSignal();
  edgeService.stop();
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

  int sipPort = 5060;
  int controlPort = 8060;
  auto* up = app.add_subcommand("up", "run the whole platform on loopback (demo)");
  up->add_option("--sip-port", sipPort, "SIP port of the edge (UDP and TCP)")
      ->check(CLI::Range(1, 65000));
  up->add_option("--control-port", controlPort, "control HTTP port of the edge")
      ->check(CLI::Range(0, 65535));

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
    if (up->parsed()) {
      return runUp(sipPort, controlPort);
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
