#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/role/set_resolver.hpp>

namespace evosip::role {
namespace {

transport::Endpoint ep(const std::string& text) {
  return *transport::parseEndpoint(text);
}

TEST(SetResolverTest, EntriesAreNumericOrHostNames) {
  auto numeric = parseTargetEntry("sip:10.0.0.1:5070", TargetForm::kSipUri, 5060);
  ASSERT_TRUE(numeric);
  EXPECT_EQ(numeric->numeric->str(), "10.0.0.1:5070");
  auto withPort = parseTargetEntry("sip:Router-0.Evosip-Router:5070", TargetForm::kSipUri, 5060);
  ASSERT_TRUE(withPort) << withPort.error().message;
  EXPECT_FALSE(withPort->numeric);
  EXPECT_EQ(withPort->query, (transport::DnsQuery{"router-0.evosip-router", 5070, ""}));
  auto service = parseTargetEntry("sip:evosip-router", TargetForm::kSipUri, 5060);
  ASSERT_TRUE(service);
  EXPECT_EQ(service->query, (transport::DnsQuery{"evosip-router", 5060, "_sip._udp"}));
  auto relay = parseTargetEntry("udp:relay-0.evosip-media", TargetForm::kAddress, 2223);
  ASSERT_TRUE(relay);
  EXPECT_EQ(relay->query, (transport::DnsQuery{"relay-0.evosip-media", 2223, ""}));
  auto relayPort = parseTargetEntry("relay-1.evosip-media:2300", TargetForm::kAddress, 2223);
  ASSERT_TRUE(relayPort);
  EXPECT_EQ(relayPort->query.port, 2300);
  for (const char* bad : {"sip:-bad.example", "sip:a..b", "http://router", "sip:", "relay:0",
                          "relay.test:99999", "1.2.3:5060", "sip:a b"}) {
    const auto form = std::string(bad).starts_with("sip") || std::string(bad).starts_with("http")
                          ? TargetForm::kSipUri
                          : TargetForm::kAddress;
    EXPECT_FALSE(parseTargetEntry(bad, form, 5060)) << bad;
  }
}

TEST(SetResolverTest, CheckRefusesTwiceListedAndUnknownDraining) {
  EXPECT_FALSE(
      SetResolver::check({"routers", {"sip:r.test", "sip:R.test"}, {}}, TargetForm::kSipUri, 5060));
  EXPECT_FALSE(SetResolver::check({"routers", {"sip:10.0.0.1", "sip:10.0.0.1:5060"}, {}},
                                  TargetForm::kSipUri, 5060));
  EXPECT_FALSE(
      SetResolver::check({"routers", {"sip:r.test"}, {"sip:s.test"}}, TargetForm::kSipUri, 5060));
  EXPECT_TRUE(SetResolver::check({"routers", {"sip:r.test", "sip:r.test:5060"}, {"sip:r.test"}},
                                 TargetForm::kSipUri, 5060));
}

TEST(SetResolverTest, NumericSetsArePublishedAtOnceWithoutLookups) {
  SetResolver sets(transport::ResolverSettings{});
  std::shared_ptr<TargetSet> published;
  auto ok = sets.assign({"routers", {"sip:10.0.0.1", "sip:10.0.0.2:5070"}, {"sip:10.0.0.1"}},
                        TargetForm::kSipUri, 5060,
                        [&](std::shared_ptr<TargetSet> s) { published = std::move(s); });
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_TRUE(published);
  ASSERT_EQ(published->size(), 2u);
  EXPECT_TRUE(published->at(0).drainingBySet);
  EXPECT_FALSE(published->at(1).drainingBySet);
  EXPECT_EQ(published->at(1).uri, "sip:10.0.0.2:5070");
  EXPECT_TRUE(sets.names("routers").empty());
}

TEST(SetResolverTest, LowerRankFirstThenWeights) {
  auto set = TargetSet::fromAddresses({
      {"sip:10.0.0.1:5060", ep("10.0.0.1:5060"), "sip:r.test", 0, 90, false},
      {"sip:10.0.0.2:5060", ep("10.0.0.2:5060"), "sip:r.test", 0, 10, false},
      {"sip:10.0.0.3:5060", ep("10.0.0.3:5060"), "sip:r.test", 1, 100, false},
      {"sip:10.0.0.1:5060", ep("10.0.0.1:5060"), "sip:other.test", 0, 0, false},  // kept once
  });
  ASSERT_EQ(set->size(), 3u);
  std::vector<int> counts(3);
  for (int i = 0; i < 20000; ++i) {
    const size_t pick = set->pick("call-" + std::to_string(i), 0);
    ASSERT_LT(pick, 3u);
    ++counts[pick];
  }
  EXPECT_EQ(counts[2], 0);  // the second priority only stands by
  EXPECT_NEAR(counts[0] / 20000.0, 0.9, 0.02);
  EXPECT_NEAR(counts[1] / 20000.0, 0.1, 0.02);
  set->at(0).downUntilNs = 1000;
  set->at(1).downUntilNs = 1000;
  EXPECT_EQ(set->pick("call-1", 500), 2u);  // both first-priority targets down
}

TEST(SetResolverTest, ADrainingNameDrainsEveryAddress) {
  auto set = TargetSet::fromAddresses({
      {"sip:10.0.0.1:5060", ep("10.0.0.1:5060"), "sip:r.test", 0, 0, false},
      {"sip:10.0.0.2:5060", ep("10.0.0.2:5060"), "sip:r.test", 0, 0, false},
      {"sip:10.0.0.3:5060", ep("10.0.0.3:5060"), "", 0, 0, false},
  });
  ASSERT_TRUE(set->markDrainingBySet({"sip:r.test"}));
  EXPECT_TRUE(set->at(0).drainingBySet);
  EXPECT_TRUE(set->at(1).drainingBySet);
  EXPECT_FALSE(set->at(2).drainingBySet);
  EXPECT_FALSE(set->markDrainingBySet({"sip:s.test"}));
}

}  // namespace
}  // namespace evosip::role

namespace evosip::role {
namespace {

std::vector<transport::Endpoint> nameServers(const std::string& yaml) {
  auto doc = config::Document::fromString(yaml);
  doc.setEnvironment([](const std::string&) { return std::optional<std::string>(); });
  return readNameServers(doc, "dns.servers");
}

TEST(NameServersTest, TakesIpv4AndIpv6Servers) {
  auto servers =
      nameServers("dns:\n  servers: [\"10.0.0.53\", \"[2001:db8::53]:5353\", \"::1\"]\n");
  ASSERT_EQ(servers.size(), 3u);
  EXPECT_EQ(servers[0].str(), "10.0.0.53:53");
  EXPECT_TRUE(servers[1].ip.is_v6());
  EXPECT_EQ(servers[1].port, 5353);
  EXPECT_EQ(servers[2].ip, boost::asio::ip::make_address("::1"));
  EXPECT_EQ(servers[2].port, 53);
}

TEST(NameServersTest, RefusesNamesAndMoreThanThree) {
  EXPECT_THROW(nameServers("dns:\n  servers: [\"ns.example.net\"]\n"), config::ConfigError);
  EXPECT_THROW(nameServers("dns:\n  servers: [\"1.1.1.1\", \"1.1.1.2\", \"1.1.1.3\", \"::1\"]\n"),
               config::ConfigError);
}

}  // namespace
}  // namespace evosip::role
