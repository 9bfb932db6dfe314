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
  EXPECT_FALSE(c.state.enabled);  // calls only in memory unless a store is configured
  EXPECT_TRUE(c.state.takeoverPeers.empty());
  EXPECT_FALSE(c.state.instanceId.empty());  // the host name
}

TEST(AppConfigTest, StateAndTakeover) {
  const AppConfig c = read(
      "workers: 1\napp:\n  instance_id: app-a\n  state:\n    enabled: true\n"
      "    heartbeat_ms: 100\n    heartbeat_ttl_ms: 500\n  takeover:\n    peers: [app-b]\n"
      "store:\n  backend: redis\n");
  EXPECT_TRUE(c.state.enabled);
  EXPECT_EQ(c.state.instanceId, "app-a");
  EXPECT_EQ(c.state.keyPrefix, "app:");
  EXPECT_EQ(c.state.heartbeat.count(), 100);
  EXPECT_EQ(c.state.heartbeatTtl.count(), 500);
  EXPECT_EQ(c.state.recordTtl, std::chrono::seconds(60));
  EXPECT_EQ(c.state.takeoverPeers, std::vector<std::string>{"app-b"});
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
           {"app:\n  rtp_peer_timeout_s: -1\n", "rtp_peer_timeout_s"},
           {"app:\n  instance_id: \"a:b\"\n", "app.instance_id"},
           {"app:\n  takeover:\n    peers: [b]\n", "app.takeover.peers"},
           {"app:\n  instance_id: a\n  state:\n    enabled: true\n  takeover:\n    peers: [a]\n",
            "app.takeover.peers"},
           {"app:\n  state:\n    enabled: true\n  takeover:\n    peers: [b]\n",
            "app.takeover.peers"},
           {"app:\n  state:\n    heartbeat_ms: 500\n    heartbeat_ttl_ms: 400\n",
            "app.state.heartbeat_ttl_ms"}}) {
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
