#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/transport/resolver.hpp>

namespace evosip::transport {
namespace {

// DNS messages written byte by byte as a name server sends them.
class Message {
 public:
  Message(uint16_t flags, uint16_t answers, uint16_t additional) {
    put16(0x1234);
    put16(flags);
    put16(1);
    put16(answers);
    put16(0);
    put16(additional);
  }
  Message& name(const std::string& n) {
    size_t at = 0;
    while (at < n.size()) {
      size_t dot = n.find('.', at);
      dot = dot == std::string::npos ? n.size() : dot;
      bytes_.push_back(static_cast<uint8_t>(dot - at));
      bytes_.insert(bytes_.end(), n.begin() + at, n.begin() + dot);
      at = dot + 1;
    }
    bytes_.push_back(0);
    return *this;
  }
  Message& question(const std::string& n, uint16_t type) {
    name(n);
    put16(type);
    put16(1);
    return *this;
  }
  Message& record(const std::string& owner, uint16_t type, uint32_t ttl,
                  const std::vector<uint8_t>& rdata) {
    name(owner);
    put16(type);
    put16(1);
    put16(static_cast<uint16_t>(ttl >> 16));
    put16(static_cast<uint16_t>(ttl));
    put16(static_cast<uint16_t>(rdata.size()));
    bytes_.insert(bytes_.end(), rdata.begin(), rdata.end());
    return *this;
  }
  Message& raw(const std::vector<uint8_t>& b) {
    bytes_.insert(bytes_.end(), b.begin(), b.end());
    return *this;
  }
  std::span<const uint8_t> bytes() const { return bytes_; }
  std::vector<uint8_t>& data() { return bytes_; }

 private:
  void put16(uint16_t v) {
    bytes_.push_back(static_cast<uint8_t>(v >> 8));
    bytes_.push_back(static_cast<uint8_t>(v));
  }
  std::vector<uint8_t> bytes_;
};

std::vector<uint8_t> srvData(uint16_t prio, uint16_t weight, uint16_t port,
                             const std::string& target) {
  std::vector<uint8_t> out{static_cast<uint8_t>(prio >> 8),   static_cast<uint8_t>(prio),
                           static_cast<uint8_t>(weight >> 8), static_cast<uint8_t>(weight),
                           static_cast<uint8_t>(port >> 8),   static_cast<uint8_t>(port)};
  Message m(0, 0, 0);
  m.data().clear();
  m.name(target);
  out.insert(out.end(), m.data().begin(), m.data().end());
  return out;
}

constexpr uint16_t kResponse = 0x8180;

TEST(DnsAnswerTest, SrvRecordsWithTheirTargetsAddresses) {
  Message m(kResponse, 2, 1);
  m.question("_sip._udp.routers.test", 33)
      .record("_sip._udp.routers.test", 33, 30, srvData(10, 60, 5070, "R1.routers.test"))
      .record("_sip._udp.routers.test", 33, 20, srvData(20, 0, 5072, "r2.routers.test"))
      .record("r1.routers.test", 1, 5, {10, 0, 0, 1});
  auto answer = parseDnsAnswer(m.bytes());
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->rcode, 0);
  ASSERT_EQ(answer->answers.size(), 2u);
  EXPECT_EQ(answer->answers[0].type, DnsRecord::Type::kSrv);
  EXPECT_EQ(answer->answers[0].priority, 10);
  EXPECT_EQ(answer->answers[0].weight, 60);
  EXPECT_EQ(answer->answers[0].port, 5070);
  EXPECT_EQ(answer->answers[0].target, "r1.routers.test");  // lower case
  EXPECT_EQ(answer->answers[1].ttl, 20u);
  uint32_t ttl = 3600;
  auto addresses = addressesOf(*answer, "r1.routers.test", ttl);
  ASSERT_EQ(addresses.size(), 1u);
  EXPECT_EQ(addresses[0].to_string(), "10.0.0.1");
  EXPECT_EQ(ttl, 5u);
}

TEST(DnsAnswerTest, FollowsCnamesToTheAddresses) {
  Message m(kResponse, 3, 0);
  std::vector<uint8_t> v6(16, 0);
  v6[0] = 0x20;
  v6[1] = 0x01;
  v6[15] = 7;
  Message target(0, 0, 0);
  target.data().clear();
  target.name("app-0.test");
  m.question("app.test", 28)
      .record("app.test", 5, 60, target.data())
      .record("app-0.test", 28, 9, v6)
      .record("elsewhere.test", 1, 1, {192, 0, 2, 1});
  auto answer = parseDnsAnswer(m.bytes());
  ASSERT_TRUE(answer);
  uint32_t ttl = 3600;
  auto addresses = addressesOf(*answer, "APP.test.", ttl);
  ASSERT_EQ(addresses.size(), 1u);
  EXPECT_EQ(addresses[0].to_string(), "2001::7");
  EXPECT_EQ(ttl, 9u);
}

TEST(DnsAnswerTest, CompressedNamesAndNxdomain) {
  Message m(kResponse, 1, 0);
  m.question("relay.test", 1).raw({0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 7});
  auto answer = parseDnsAnswer(m.bytes());
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->answers.size(), 1u);
  EXPECT_EQ(answer->answers[0].name, "relay.test");
  EXPECT_EQ(answer->answers[0].ttl, 300u);
  Message nx(kResponse | 3, 0, 0);
  nx.question("nothing.test", 1);
  auto none = parseDnsAnswer(nx.bytes());
  ASSERT_TRUE(none);
  EXPECT_EQ(none->rcode, 3);
  EXPECT_TRUE(none->answers.empty());
}

TEST(DnsAnswerTest, ATtlWithTheTopBitSetCountsAsZero) {
  Message m(kResponse, 1, 0);
  m.question("a.test", 1).record("a.test", 1, 0xffffffffu, {10, 0, 0, 9});
  auto answer = parseDnsAnswer(m.bytes());
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->answers[0].ttl, 0u);  // RFC 2181 8
}

TEST(DnsAnswerTest, RefusesWhatDoesNotHoldTogether) {
  Message query(0x0100, 0, 0);  // a query, not a response
  query.question("a.test", 1);
  EXPECT_FALSE(parseDnsAnswer(query.bytes()));
  Message shortA(kResponse, 1, 0);
  shortA.question("a.test", 1).record("a.test", 1, 1, {1, 2, 3});
  EXPECT_FALSE(parseDnsAnswer(shortA.bytes()));
  Message truncated(kResponse, 2, 0);  // claims two records, holds one
  truncated.question("a.test", 1).record("a.test", 1, 1, {1, 2, 3, 4});
  EXPECT_FALSE(parseDnsAnswer(truncated.bytes()));
  Message loop(kResponse, 1, 0);  // a CNAME whose target points at itself
  loop.question("a.test", 5).raw({0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 1, 0, 2, 0xc0, 0x24});
  EXPECT_FALSE(parseDnsAnswer(loop.bytes()));
  EXPECT_FALSE(parseDnsAnswer(std::span<const uint8_t>()));
}

}  // namespace
}  // namespace evosip::transport
