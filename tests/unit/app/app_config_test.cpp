// The app's configuration keys that decide who may call and what voicemail may hold.
#include <gtest/gtest.h>

#include <evosip/app/app_service.hpp>

namespace evosip::app {
namespace {

AppConfig read(const std::string& yaml) {
  auto doc = config::Document::fromString(yaml);
  doc.setEnvironment([](const std::string&) { return std::nullopt; });
  return readAppConfig(doc);
}

bool allows(const AppConfig& c, const char* ip) {
  return c.routers.allows(boost::asio::ip::make_address(ip));
}

TEST(AppConfigTest, SafeDefaults) {
  const AppConfig c = read("workers: 1\n");
  EXPECT_TRUE(allows(c, "127.0.0.1"));
  EXPECT_TRUE(allows(c, "::1"));
  EXPECT_FALSE(allows(c, "10.0.0.1"));
  EXPECT_EQ(c.app.rtpPeerTimeout, std::chrono::seconds(5));
  EXPECT_EQ(c.app.voicemailQuota.maxMessages, 100u);
  EXPECT_EQ(c.app.voicemailQuota.maxBytes, 20'000'000u);
  EXPECT_EQ(c.app.voicemailQuota.maxTotalMessages, 10'000u);
  EXPECT_EQ(c.app.voicemailQuota.maxTotalBytes, 1'000'000'000u);
}

TEST(AppConfigTest, RoutersAndQuotas) {
  const AppConfig c = read(
      "workers: 1\napp:\n  routers: [10.42.0.0/16, \"fd00::/8\"]\n  rtp_peer_timeout_s: 0\n"
      "  voicemail_max_messages: 5\n  voicemail_max_bytes: 1000000\n");
  EXPECT_TRUE(allows(c, "10.42.7.1"));
  EXPECT_TRUE(allows(c, "fd00::5"));
  EXPECT_FALSE(allows(c, "127.0.0.1"));
  EXPECT_EQ(c.app.rtpPeerTimeout.count(), 0);
  EXPECT_EQ(c.app.voicemailQuota.maxMessages, 5u);
  EXPECT_EQ(c.app.voicemailQuota.maxBytes, 1'000'000u);
}

TEST(AppConfigTest, BadValuesNameTheKey) {
  for (const auto& [yaml, key] : std::vector<std::pair<std::string, std::string>>{
           {"app:\n  routers: []\n", "app.routers"},
           {"app:\n  routers: [\"10.0.0.1/8\"]\n", "app.routers"},
           {"app:\n  routers: [\"router.example\"]\n", "app.routers"},
           {"app:\n  voicemail_max_messages: 0\n", "voicemail_max_messages"},
           {"app:\n  voicemail_max_total_bytes: 10\n", "voicemail_max_total_bytes"},
           {"app:\n  rtp_peer_timeout_s: -1\n", "rtp_peer_timeout_s"}}) {
    try {
      read("workers: 1\n" + yaml);
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const config::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace evosip::app
