#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/api/api_service.hpp>

#include "config_error.hpp"

namespace evosip::api {
namespace {

using ::testing::HasSubstr;

ApiConfig read(const std::string& yaml) {
  auto doc = config::Document::fromString(yaml);
  doc.setEnvironment([](const std::string&) { return std::nullopt; });
  return readApiConfig(doc);
}

std::string error(const std::string& yaml) {
  return test::configErrorOf([](const std::string& y) { read(y); }, yaml, "accepted");
}

TEST(ApiConfigTest, DefaultsNeedNoSipKeys) {
  ApiConfig c = read("");
  EXPECT_EQ(c.api.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.api.database, "sqlite://evosip.db");
  EXPECT_EQ(c.common.control.listen, "127.0.0.1:8081");
  EXPECT_TRUE(c.common.listen.empty());
  EXPECT_TRUE(c.api.routers.empty());
  EXPECT_EQ(c.api.routerTimeout.count(), 2000);
}

TEST(ApiConfigTest, ReadsEveryKey) {
  ApiConfig c = read(
      "api:\n"
      "  listen: 127.0.0.1:9080\n"
      "  database: postgresql://evosip@127.0.0.1:5432/evosip\n"
      "  token: pub\n"
      "  internal_token: int\n"
      "  routers: [\"127.0.0.1:8070\", \"[::1]:8071\"]\n"
      "  router_token: rt\n"
      "  router_timeout_ms: 500\n"
      "  max_connections_per_source: 32\n"
      "control: {listen: 127.0.0.1:9081, token: ct}\n"
      "workers: 2\n"
      "log: {level: debug, format: json}\n");
  EXPECT_EQ(c.api.listen, "127.0.0.1:9080");
  EXPECT_EQ(c.api.database, "postgresql://evosip@127.0.0.1:5432/evosip");
  EXPECT_EQ(c.api.token, "pub");
  EXPECT_EQ(c.api.internalToken, "int");
  EXPECT_EQ(c.api.routers, (std::vector<std::string>{"127.0.0.1:8070", "[::1]:8071"}));
  EXPECT_EQ(c.api.routerToken, "rt");
  EXPECT_EQ(c.api.routerTimeout.count(), 500);
  EXPECT_EQ(c.api.maxConnectionsPerSource, 32u);
  EXPECT_EQ(c.common.control.token, "ct");
  EXPECT_EQ(c.common.log.format, "json");
}

TEST(ApiConfigTest, BadValuesNameTheKey) {
  EXPECT_THAT(error("api: {database: mysql://x/y}\n"), HasSubstr("api.database"));
  EXPECT_THAT(error("api: {database: \"sqlite://\"}\n"), HasSubstr("api.database"));
  EXPECT_THAT(error("api: {routers: [\"nohost\"]}\n"), HasSubstr("api.routers"));
  EXPECT_THAT(error("api: {routers: [\"127.0.0.1:0\"]}\n"), HasSubstr("api.routers"));
  EXPECT_THAT(error("api: {listen: \"::1:80\"}\n"), HasSubstr("api.listen"));
  EXPECT_THAT(error("api: {tokn: x}\n"), HasSubstr("api.tokn"));
  // The api speaks no SIP: sip keys are typos here.
  EXPECT_THAT(error("sip: {listen: [\"udp:127.0.0.1:5060\"]}\n"), HasSubstr("sip"));
}

TEST(ApiConfigTest, AListenerBeyondLoopbackNeedsItsToken) {
  EXPECT_EQ(error("api: {listen: \"0.0.0.0:8080\"}\n"),
            "api.token is required when api.listen is not loopback ('0.0.0.0:8080')");
  EXPECT_EQ(error("api: {listen: \"[::]:8080\", token: t}\n"), "accepted");
  EXPECT_EQ(error("api: {listen: \"localhost:8080\"}\n"), "accepted");
  EXPECT_EQ(error("api: {listen: \"127.0.0.2:8080\"}\n"), "accepted");
  EXPECT_EQ(error("api: {listen: \"api.internal:8080\"}\n"),
            "api.token is required when api.listen is not loopback ('api.internal:8080')");
  EXPECT_THAT(error("control: {listen: \"10.0.0.5:8081\"}\n"),
              HasSubstr("control.token is required when control.listen is not loopback"));
  EXPECT_EQ(error("control: {listen: \"10.0.0.5:8081\", token: t}\n"), "accepted");
}

TEST(ApiConfigTest, TheTokenMayComeFromTheEnvironmentOrAFile) {
  auto doc = config::Document::fromString("api: {listen: \"0.0.0.0:8080\"}\n");
  doc.setEnvironment([](const std::string& name) -> std::optional<std::string> {
    if (name == "EVOSIP_API_TOKEN") {
      return "from-env";
    }
    return std::nullopt;
  });
  EXPECT_EQ(readApiConfig(doc).api.token, "from-env");
}

}  // namespace
}  // namespace evosip::api
