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

TEST(AddressTest, NetworksMatchTheirPrefixOnly) {
  const auto ip = [](const char* text) { return boost::asio::ip::make_address(text); };
  auto loopback = parseNetwork("127.0.0.0/8");
  ASSERT_TRUE(loopback);
  EXPECT_TRUE(loopback->contains(ip("127.0.0.1")));
  EXPECT_TRUE(loopback->contains(ip("127.255.0.9")));
  EXPECT_FALSE(loopback->contains(ip("128.0.0.1")));
  EXPECT_FALSE(loopback->contains(ip("::1")));  // families never match each other
  EXPECT_EQ(loopback->str(), "127.0.0.0/8");
  auto odd = parseNetwork("192.0.2.64/27");
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->contains(ip("192.0.2.95")));
  EXPECT_FALSE(odd->contains(ip("192.0.2.96")));
  auto host = parseNetwork("2001:db8::7");
  ASSERT_TRUE(host);
  EXPECT_EQ(host->prefixLength, 128);
  EXPECT_TRUE(host->contains(ip("2001:db8::7")));
  EXPECT_FALSE(host->contains(ip("2001:db8::8")));
  EXPECT_TRUE(parseNetwork("0.0.0.0/0")->contains(ip("203.0.113.1")));
  EXPECT_TRUE(parseNetwork("2001:db8::/32")->contains(ip("2001:db8:ffff::1")));
  for (std::string_view bad :
       {"", "/8", "10.0.0.0/33", "10.0.0.1/8", "::1/129", "host/8", "10.0.0.0/x", "10.0.0.0/"}) {
    EXPECT_FALSE(parseNetwork(bad)) << bad;
  }
  auto list = NetworkList::parse({"10.0.0.0/8", "::1"});
  ASSERT_TRUE(list);
  EXPECT_TRUE(list->contains(ip("10.1.2.3")));
  EXPECT_TRUE(list->contains(ip("::1")));
  EXPECT_FALSE(list->contains(ip("127.0.0.1")));
  auto badList = NetworkList::parse({"10.0.0.0/8", "nonsense"});
  ASSERT_FALSE(badList);
  EXPECT_NE(badList.error().message.find("nonsense"), std::string::npos);
}

}  // namespace
}  // namespace evosip::transport
