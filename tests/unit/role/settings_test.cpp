#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/control/client.hpp>
#include <evosip/role/settings.hpp>

#include "config_error.hpp"

namespace evosip::role {
namespace {

using ::testing::HasSubstr;

CommonSettings read(const std::string& yaml, config::Document::Getenv env = nullptr) {
  auto doc = config::Document::fromString(yaml);
  doc.setEnvironment(env ? env : [](const std::string&) { return std::nullopt; });
  return readCommon(doc, {"udp:127.0.0.1:5060"}, "127.0.0.1:8060");
}

std::string error(const std::string& yaml) {
  return test::configErrorOf([](const std::string& y) { read(y); }, yaml, "accepted");
}

TEST(CommonSettingsTest, AControlListenerBeyondLoopbackNeedsAToken) {
  EXPECT_EQ(error("control: {listen: \"0.0.0.0:8060\"}\n"),
            "control.token is required when control.listen is not loopback ('0.0.0.0:8060')");
  EXPECT_THAT(error("control: {listen: \"[::]:8060\", token: \"\"}\n"),
              HasSubstr("control.token is required"));
  EXPECT_THAT(error("control: {listen: \"10.1.2.3:8060\"}\n"), HasSubstr("control.token"));
  EXPECT_THAT(error("control: {listen: \"ctl.internal:8060\"}\n"), HasSubstr("control.token"));
  EXPECT_EQ(error("control: {listen: \"0.0.0.0:8060\", token: s3cret}\n"), "accepted");
  // Loopback may stay open.
  EXPECT_EQ(error(""), "accepted");
  EXPECT_EQ(error("control: {listen: \"127.0.0.1:8060\"}\n"), "accepted");
  EXPECT_EQ(error("control: {listen: \"[::1]:8060\"}\n"), "accepted");
  EXPECT_EQ(error("control: {listen: \"localhost:8060\"}\n"), "accepted");
}

TEST(CommonSettingsTest, TheTokenComesFromTheEnvironmentOrAFile) {
  auto fromEnv = read("control: {listen: \"0.0.0.0:8060\"}\n",
                      [](const std::string& name) -> std::optional<std::string> {
                        if (name == "EVOSIP_CONTROL_TOKEN") {
                          return "env-token";
                        }
                        return std::nullopt;
                      });
  EXPECT_EQ(fromEnv.control.token, "env-token");
  const auto path = std::filesystem::temp_directory_path() /
                    ("evosip-control-token-" + std::to_string(::getpid()));
  std::ofstream(path) << "file-token\n";
  auto fromFile =
      read("control: {listen: \"0.0.0.0:8060\", token: \"file:" + path.string() + "\"}\n");
  std::filesystem::remove(path);
  EXPECT_EQ(fromFile.control.token, "file-token");
  // A token file that holds nothing is no token.
  std::ofstream(path) << "\n";
  EXPECT_THAT(error("control: {listen: \"0.0.0.0:8060\", token: \"file:" + path.string() + "\"}\n"),
              HasSubstr("control.token is required"));
  std::filesystem::remove(path);
}

TEST(LoopbackTest, OnlyLoopbackAddressesCount) {
  for (const char* yes : {"127.0.0.1:1", "127.255.0.9:1", "[::1]:1", "localhost:1", "LOCALHOST:1",
                          "[::ffff:127.0.0.1]:1"}) {
    EXPECT_TRUE(control::isLoopbackListen(yes)) << yes;
  }
  for (const char* no :
       {"0.0.0.0:1", "[::]:1", "10.0.0.1:1", "128.0.0.1:1", "[::2]:1", "[::ffff:10.0.0.1]:1",
        "example.com:1", "127.0.0.1", "", "127.0.0.1.x:1", "localhost.evil.example:1"}) {
    EXPECT_FALSE(control::isLoopbackListen(no)) << no;
  }
}

}  // namespace
}  // namespace evosip::role
