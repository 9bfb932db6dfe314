#include <gtest/gtest.h>

#include <evosip/edge/flow_token.hpp>

namespace evosip::edge {
namespace {

using transport::Destination;
using transport::Protocol;

TEST(FlowTokenTest, RoundTripsUdpTcpAndIpv6) {
  FlowTokenCodec codec("secret");
  std::vector<Destination> flows = {
      {Protocol::kUdp, {boost::asio::ip::make_address("203.0.113.7"), 40123}, {}},
      {Protocol::kTcp, {boost::asio::ip::make_address("198.51.100.1"), 5060}, {1, 77}},
      {Protocol::kTcp, {boost::asio::ip::make_address("2001:db8::42"), 5062}, {65535, 0xfffffff0}},
  };
  for (const auto& f : flows) {
    std::string token;
    codec.encode(f, token);
    // Only characters allowed unescaped in a SIP URI user part and a Via parameter.
    for (char c : token) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << token;
    }
    auto back = codec.decode(token);
    ASSERT_TRUE(back.has_value()) << token;
    EXPECT_EQ(back->protocol, f.protocol);
    EXPECT_EQ(back->remote, f.remote);
    EXPECT_EQ(back->connection, f.connection);
  }
}

TEST(FlowTokenTest, RejectsTamperedForeignAndGarbageTokens) {
  FlowTokenCodec codec("secret");
  FlowTokenCodec other("another secret");
  Destination f{Protocol::kUdp, {boost::asio::ip::make_address("203.0.113.7"), 40123}, {}};
  std::string token;
  codec.encode(f, token);
  std::string tampered = token;
  tampered[3] = tampered[3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(codec.decode(tampered).has_value());
  EXPECT_FALSE(other.decode(token).has_value());
  EXPECT_FALSE(codec.decode("").has_value());
  EXPECT_FALSE(codec.decode("alice").has_value());
  EXPECT_FALSE(codec.decode(std::string(200, 'A')).has_value());
  EXPECT_FALSE(codec.decode("%%%%").has_value());
}

TEST(FlowTokenTest, SameSecretAcrossInstancesAgrees) {
  FlowTokenCodec a("shared");
  FlowTokenCodec b("shared");
  Destination f{Protocol::kUdp, {boost::asio::ip::make_address("192.0.2.9"), 5060}, {}};
  std::string token;
  a.encode(f, token);
  EXPECT_TRUE(b.decode(token).has_value());
}

// Tokens a thread made or checked are remembered: a remembered token decodes to the same flow,
// appends to what the caller had, and is never taken by a codec with another secret, nor does a
// tampered copy pass because the original was remembered.
TEST(FlowTokenTest, RememberedTokensDecodeTheSameAndStayBoundToTheirSecret) {
  FlowTokenCodec codec("secret");
  FlowTokenCodec other("another secret");
  Destination f{Protocol::kTcp, {boost::asio::ip::make_address("2001:db8::7"), 5061}, {3, 99}};
  std::string first = "sip:";
  codec.encode(f, first);
  std::string second = "sip:";
  codec.encode(f, second);  // remembered
  EXPECT_EQ(first, second);
  const std::string token = first.substr(4);
  for (int i = 0; i < 3; ++i) {
    auto back = codec.decode(token);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->remote, f.remote);
    EXPECT_EQ(back->connection, f.connection);
    EXPECT_EQ(back->protocol, f.protocol);
    EXPECT_FALSE(other.decode(token).has_value());
    std::string tampered = token;
    tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
    EXPECT_FALSE(codec.decode(tampered).has_value());
  }
  // Many flows through one thread: each still decodes to its own.
  for (uint16_t port = 1; port < 3000; ++port) {
    Destination g{Protocol::kUdp, {boost::asio::ip::make_address("198.51.100.2"), port}, {}};
    std::string t;
    codec.encode(g, t);
    auto back = codec.decode(t);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->remote.port, port);
  }
}

}  // namespace
}  // namespace evosip::edge
