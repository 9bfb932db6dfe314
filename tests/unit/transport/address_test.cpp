#include <gtest/gtest.h>

#include <evosip/transport/address.hpp>

namespace evosip::transport {
namespace {

TEST(AddressTest, ProtocolNames) {
  EXPECT_EQ(protocolName(Protocol::kUdp), "udp");
  EXPECT_EQ(protocolName(Protocol::kWss), "wss");
  EXPECT_EQ(viaTransportName(Protocol::kTcp), "TCP");
  EXPECT_EQ(viaTransportName(Protocol::kTls), "TLS");
  EXPECT_EQ(protocolFromName("TCP"), Protocol::kTcp);
  EXPECT_EQ(protocolFromName("Ws"), Protocol::kWs);
  EXPECT_FALSE(protocolFromName("sctp"));
  EXPECT_FALSE(protocolFromName(""));
}

TEST(AddressTest, Ipv4Endpoints) {
  auto ep = parseEndpoint("192.0.2.1:5070");
  ASSERT_TRUE(ep);
  EXPECT_TRUE(ep->ip.is_v4());
  EXPECT_EQ(ep->ip.to_string(), "192.0.2.1");
  EXPECT_EQ(ep->port, 5070);
  EXPECT_EQ(ep->str(), "192.0.2.1:5070");
  EXPECT_EQ(ep->hostForUri(), "192.0.2.1");

  auto noPort = parseEndpoint("10.1.2.3", 5080);
  ASSERT_TRUE(noPort);
  EXPECT_EQ(noPort->port, 5080);
  EXPECT_EQ(parseEndpoint(" 10.1.2.3:0 ")->port, 0);
  EXPECT_EQ(parseEndpoint("10.1.2.3:65535")->port, 65535);
}

TEST(AddressTest, Ipv6Endpoints) {
  auto ep = parseEndpoint("[2001:db8::1]:5060");
  ASSERT_TRUE(ep);
  EXPECT_TRUE(ep->ip.is_v6());
  EXPECT_EQ(ep->port, 5060);
  EXPECT_EQ(ep->str(), "[2001:db8::1]:5060");
  EXPECT_EQ(ep->hostForUri(), "[2001:db8::1]");

  auto noPort = parseEndpoint("[::1]", 5090);
  ASSERT_TRUE(noPort);
  EXPECT_EQ(noPort->ip.to_string(), "::1");
  EXPECT_EQ(noPort->port, 5090);

  auto bare = parseEndpoint("::1");
  ASSERT_TRUE(bare);
  EXPECT_TRUE(bare->ip.is_v6());
  EXPECT_EQ(bare->port, 5060);
}

TEST(AddressTest, EndpointErrors) {
  for (std::string_view bad : {"", "   ", "example.com:5060", "1.2.3:5060", "1.2.3.4:",
                               "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:50x", "[::1", "[::1]5060",
                               "[::1]:", "[1.2.3.4]:5060", "[zz::1]:5060", "256.1.1.1"}) {
    auto ep = parseEndpoint(bad);
    EXPECT_FALSE(ep) << bad;
    if (!ep) {
      EXPECT_EQ(ep.error().code, Errc::kParse) << bad;
      EXPECT_FALSE(ep.error().message.empty());
    }
  }
}

TEST(AddressTest, ListenSpecs) {
  auto udp = parseListenSpec("udp:127.0.0.1:5060");
  ASSERT_TRUE(udp);
  EXPECT_EQ(udp->protocol, Protocol::kUdp);
  EXPECT_EQ(udp->endpoint.str(), "127.0.0.1:5060");
  EXPECT_EQ(udp->str(), "udp:127.0.0.1:5060");

  auto tcp6 = parseListenSpec("TCP:[::1]:5070");
  ASSERT_TRUE(tcp6);
  EXPECT_EQ(tcp6->protocol, Protocol::kTcp);
  EXPECT_TRUE(tcp6->endpoint.ip.is_v6());
  EXPECT_EQ(tcp6->str(), "tcp:[::1]:5070");

  auto tlsDefault = parseListenSpec("tls:10.0.0.1");
  ASSERT_TRUE(tlsDefault);
  EXPECT_EQ(tlsDefault->endpoint.port, 5061);
  EXPECT_EQ(parseListenSpec("udp:0.0.0.0")->endpoint.port, 5060);
}

TEST(AddressTest, ListenSpecErrors) {
  for (std::string_view bad : {"127.0.0.1:5060", "[::1]:5060", "sctp:127.0.0.1:5060",
                               "udp:", "udp:localhost:5060", "tcp:1.2.3.4:99999", ":1.2.3.4"}) {
    auto spec = parseListenSpec(bad);
    EXPECT_FALSE(spec) << bad;
  }
  auto spec = parseListenSpec("sctp:127.0.0.1:5060");
  ASSERT_FALSE(spec);
  EXPECT_NE(spec.error().message.find("sctp"), std::string::npos);
}

}  // namespace
}  // namespace evosip::transport
