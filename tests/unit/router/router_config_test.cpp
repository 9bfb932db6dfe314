#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/config/config.hpp>
#include <evosip/router/router_service.hpp>

#include "config_error.hpp"

namespace evosip::router {
namespace {

using ::testing::HasSubstr;

RouterConfig read(const std::string& yaml) {
  auto doc = config::Document::fromString(yaml);
  return readRouterConfig(doc);
}

std::string errorOf(const std::string& yaml) {
  return test::configErrorOf([](const std::string& y) { read(y); }, yaml, "");
}

TEST(RouterConfigTest, EgressSocketsAndBatchSchedulingByDefault) {
  auto c = read("router: {}\n");
  EXPECT_TRUE(c.egressSockets);
  EXPECT_TRUE(c.common.batchScheduling);
  c = read("worker_scheduling: normal\nrouter: {egress_sockets: false}\n");
  EXPECT_FALSE(c.egressSockets);
  EXPECT_FALSE(c.common.batchScheduling);
  EXPECT_THAT(errorOf("worker_scheduling: fifo\n"),
              HasSubstr("worker_scheduling: 'fifo' is not batch or normal"));
}

TEST(RouterConfigTest, HardeningKeysAndTheirSafeDefaults) {
  auto c = read("router: {}\n");
  EXPECT_EQ(c.router.proxy.maxForwards, 20u);
  EXPECT_EQ(c.router.registrar.maxContacts, 10u);
  EXPECT_EQ(c.router.registrar.maxBindingBytes, 16384u);
  EXPECT_EQ(c.router.layer.maxTransactionBytes, size_t{128} << 20);
  c = read(
      "router: {max_forwards: 70, max_contacts: 3, max_binding_bytes: 4096, "
      "max_transaction_bytes: 1048576}\n");
  EXPECT_EQ(c.router.proxy.maxForwards, 70u);
  EXPECT_EQ(c.router.registrar.maxContacts, 3u);
  EXPECT_EQ(c.router.registrar.maxBindingBytes, 4096u);
  EXPECT_EQ(c.router.layer.maxTransactionBytes, size_t{1} << 20);
  EXPECT_THAT(errorOf("router: {max_forwards: 0}\n"), HasSubstr("router.max_forwards"));
  EXPECT_THAT(errorOf("router: {max_contacts: 0}\n"), HasSubstr("router.max_contacts"));
}

TEST(RouterConfigTest, MediaKeysAndTheirDefaults) {
  auto c = read("router: {}\n");
  EXPECT_EQ(c.router.mediaMode, MediaMode::kNat);
  EXPECT_TRUE(c.mediaRelays.empty());
  EXPECT_EQ(c.router.ng.timeout.count(), 1000);
  EXPECT_EQ(c.router.ng.retries, 2);

  c = read(
      "router:\n"
      "  media: {relays: [\"udp:127.0.0.1:2223\", \"10.0.0.7\"], mode: always, timeout_ms: 300,"
      " retries: 4}\n"
      "  dialplan:\n"
      "    \"*97\": {action: Voicemail, mailbox: from-user, media: never}\n"
      "    \"100\": {action: Playback, sound: welcome}\n");
  EXPECT_EQ(c.router.mediaMode, MediaMode::kAlways);
  EXPECT_EQ(c.mediaRelays, (std::vector<std::string>{"udp:127.0.0.1:2223", "10.0.0.7"}));
  EXPECT_EQ(c.router.ng.timeout.count(), 300);
  EXPECT_EQ(c.router.ng.retries, 4);
  const auto* vm = c.dialplan.find("*97");
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(vm->media, MediaMode::kNever);
  for (const auto& [suffix, value] : vm->params) {
    EXPECT_NE(suffix, "Media") << "the media key is the router's, not a header for the app";
  }
  EXPECT_FALSE(c.dialplan.find("100")->media.has_value());
}

TEST(RouterConfigTest, AuthKeysAndTheirSafeDefaults) {
  auto c = read("router: {}\n");
  EXPECT_TRUE(c.router.requireQop);
  EXPECT_EQ(c.router.challengeAlgorithms,
            (std::vector<auth::DigestAlgorithm>{auth::DigestAlgorithm::kMd5,
                                                auth::DigestAlgorithm::kSha256}));
  c = read("router: {auth_require_qop: false, auth_algorithms: [SHA-256]}\n");
  EXPECT_FALSE(c.router.requireQop);
  EXPECT_EQ(c.router.challengeAlgorithms,
            (std::vector<auth::DigestAlgorithm>{auth::DigestAlgorithm::kSha256}));
  EXPECT_THAT(errorOf("router: {auth_algorithms: [MD5-sess]}\n"),
              HasSubstr("router.auth_algorithms"));
}

TEST(RouterConfigTest, BadMediaValuesNameTheKey) {
  EXPECT_THAT(errorOf("router: {media: {mode: sometimes}}\n"), HasSubstr("router.media.mode"));
  EXPECT_THAT(errorOf("router: {media: {relays: [\"relay..example.com:2223\"]}}\n"),
              HasSubstr("router.media.relays"));
  EXPECT_THAT(errorOf("router: {dialplan: {\"100\": {action: Echo, media: maybe}}}\n"),
              HasSubstr("router.dialplan.100.media"));
  EXPECT_THAT(errorOf("router: {media: {timeout_ms: 5}}\n"), HasSubstr("router.media.timeout_ms"));
}

}  // namespace
}  // namespace evosip::router
