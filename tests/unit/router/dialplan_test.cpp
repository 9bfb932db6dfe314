#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/config/config.hpp>
#include <evosip/router/dialplan.hpp>
#include <evosip/router/router_service.hpp>

#include "config_error.hpp"

namespace evosip::router {
namespace {

using ::testing::HasSubstr;

ServiceNumber voicemail(std::string mailbox) {
  ServiceNumber n;
  n.number = "*97";
  n.action = "Voicemail";
  n.params.emplace_back("Mailbox", std::move(mailbox));
  return n;
}

TEST(DialplanTest, HeadersFromConfigKeys) {
  EXPECT_EQ(headerSuffix("sound_locale"), "SoundLocale");
  EXPECT_EQ(headerSuffix("mailbox"), "Mailbox");
  Dialplan plan;
  plan.add({"*97", "Voicemail", {{"Mailbox", "from-user"}}});
  plan.add({"100", "Playback", {{"Sound", "welcome"}, {"SoundLocale", "en"}}});
  ASSERT_NE(plan.find("*97"), nullptr);
  EXPECT_EQ(plan.find("101"), nullptr);
  EXPECT_EQ(Dialplan::headerLines(*plan.find("*97"), "alice"),
            "X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: alice\r\n");
  EXPECT_EQ(Dialplan::headerLines(*plan.find("100"), "bob"),
            "X-Evosip-Action: Playback\r\nX-Evosip-Sound: welcome\r\nX-Evosip-SoundLocale: en\r\n");
}

TEST(DialplanTest, MailboxResolvesFromUserToUserOrFixed) {
  EXPECT_EQ(Dialplan::mailboxOf(voicemail("from-user"), "alice", "*97"), "alice");
  EXPECT_EQ(Dialplan::mailboxOf(voicemail("to-user"), "alice", "bob"), "bob");
  EXPECT_EQ(Dialplan::mailboxOf(voicemail("sales"), "alice", "bob"), "sales");
  ServiceNumber playback;
  playback.number = "100";
  playback.action = "Playback";
  playback.params.emplace_back("Sound", "welcome");
  EXPECT_EQ(Dialplan::mailboxOf(playback, "alice", "100"), std::nullopt);
}

TEST(DialplanTest, HeaderLinesCarryTheResolvedMailbox) {
  EXPECT_EQ(Dialplan::headerLines(voicemail("from-user"), "alice", "*97"),
            "X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: alice\r\n");
  EXPECT_EQ(Dialplan::headerLines(voicemail("to-user"), "alice", "bob"),
            "X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: bob\r\n");
}

TEST(DialplanTest, SafeMailboxNames) {
  for (const char* ok : {"alice", "bob.smith", "a_b-c+d", "1001", "x@evosip.local"}) {
    EXPECT_TRUE(isSafeMailbox(ok)) << ok;
  }
  const std::string longest(64, 'a');
  EXPECT_TRUE(isSafeMailbox(longest));
  for (const std::string& bad :
       {std::string(), std::string(65, 'a'), std::string("../etc"), std::string("a/b"),
        std::string(".hidden"), std::string("a..b"), std::string("a\x01"), std::string("a\0b", 3),
        std::string("a b"), std::string("a\\b"), std::string("%2e%2e")}) {
    EXPECT_FALSE(isSafeMailbox(bad)) << bad;
  }
}

RouterConfig read(const std::string& yaml) {
  auto doc = config::Document::fromString(yaml);
  return readRouterConfig(doc);
}

std::string errorOf(const std::string& yaml) {
  return test::configErrorOf([](const std::string& y) { read(y); }, yaml, "");
}

TEST(DialplanTest, PublicKeyIsTheRoutersNotAHeader) {
  auto c = read(
      "router:\n"
      "  dialplan:\n"
      "    \"100\": {action: Playback, sound: welcome}\n"
      "    \"200\": {action: Playback, sound: sales, public: true}\n");
  ASSERT_NE(c.dialplan.find("100"), nullptr);
  EXPECT_FALSE(c.dialplan.find("100")->isPublic) << "services need authentication by default";
  const auto* open = c.dialplan.find("200");
  ASSERT_NE(open, nullptr);
  EXPECT_TRUE(open->isPublic);
  EXPECT_EQ(Dialplan::headerLines(*open, "x"),
            "X-Evosip-Action: Playback\r\nX-Evosip-Sound: sales\r\n");
  EXPECT_THAT(errorOf("router: {dialplan: {\"1\": {action: Echo, public: maybe}}}\n"),
              HasSubstr("router.dialplan.1.public"));
}

TEST(DialplanTest, VoicemailNeedsAMailbox) {
  EXPECT_THAT(errorOf("router: {dialplan: {\"*97\": {action: Voicemail}}}\n"),
              HasSubstr("router.dialplan.*97.mailbox"));
}

}  // namespace
}  // namespace evosip::router
