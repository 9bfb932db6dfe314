// Where responses go on the wire: a server answering a request, a proxy forwarding a response
// to the next Via (RFC 3261 18.2.2, RFC 3581 section 4).
#include <gtest/gtest.h>

#include <evosip/transport/response_destination.hpp>

namespace evosip::transport {
namespace {

sip::Via via(std::string_view text) {
  auto v = sip::parseVia(text);
  EXPECT_TRUE(v) << text;
  return v ? *v : sip::Via{};
}

Endpoint ep(const char* ip, uint16_t port) {
  return Endpoint{boost::asio::ip::make_address(ip), port};
}

Source udpFrom(const char* ip, uint16_t port) {
  Source s;
  s.protocol = Protocol::kUdp;
  s.remote = ep(ip, port);
  return s;
}

TEST(ResponseDestinationTest, UdpWithoutRportGoesToTheSourceIpAndTheSentByPort) {
  const Source src = udpFrom("192.0.2.10", 40000);
  const Destination to = responseDestination(src, via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1"));
  EXPECT_EQ(to.protocol, Protocol::kUdp);
  EXPECT_EQ(to.remote, ep("192.0.2.10", 5062));  // received: the host of the Via is not used
  EXPECT_EQ(responseDestination(src, via("SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK1")).remote,
            ep("192.0.2.10", 5060));
  // Over UDP the UDP default applies whatever transport the Via names.
  EXPECT_EQ(responseDestination(src, via("SIP/2.0/TLS 10.1.1.1;branch=z9hG4bK1")).remote,
            ep("192.0.2.10", 5060));
}

TEST(ResponseDestinationTest, UdpWithRportGoesBackToTheSourcePort) {
  const Source src = udpFrom("192.0.2.10", 40000);
  EXPECT_EQ(responseDestination(src, via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;rport")).remote,
            ep("192.0.2.10", 40000));
  EXPECT_EQ(
      responseDestination(src, via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;rport=5")).remote,
      ep("192.0.2.10", 40000));
}

TEST(ResponseDestinationTest, StreamsUseTheirConnection) {
  Source src;
  src.protocol = Protocol::kTcp;
  src.remote = ep("192.0.2.10", 40000);
  src.connection = ConnectionId{1, 7};
  const Destination to = responseDestination(src, via("SIP/2.0/TCP 10.1.1.1:5062;branch=z9hG4bK1"));
  EXPECT_EQ(to.protocol, Protocol::kTcp);
  EXPECT_EQ(to.remote, ep("192.0.2.10", 40000));
  EXPECT_EQ(to.connection, (ConnectionId{1, 7}));
  EXPECT_EQ(responseDestination(src).connection, (ConnectionId{1, 7}));
}

TEST(ResponseDestinationTest, MaddrDoesNotRedirectAServersResponse) {
  const Destination to = responseDestination(
      udpFrom("192.0.2.10", 40000), via("SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK1;maddr=224.2.0.1"));
  EXPECT_EQ(to.remote, ep("192.0.2.10", 5060));
}

TEST(NextViaDestinationTest, ReceivedRportAndSentBy) {
  auto to = nextViaDestination(
      via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;received=192.0.2.1;rport=9988"));
  ASSERT_TRUE(to);
  EXPECT_EQ(to->protocol, Protocol::kUdp);
  EXPECT_EQ(to->remote, ep("192.0.2.1", 9988));
  EXPECT_FALSE(to->connection.valid());
  EXPECT_EQ(nextViaDestination(via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1"))->remote,
            ep("10.1.1.1", 5062));
  EXPECT_EQ(nextViaDestination(via("SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK1;rport"))->remote,
            ep("10.1.1.1", 5060));
  EXPECT_EQ(nextViaDestination(via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;rport=0"))->remote,
            ep("10.1.1.1", 5062));
}

TEST(NextViaDestinationTest, TransportAndItsDefaultPort) {
  auto tcp = nextViaDestination(via("SIP/2.0/TCP 10.1.1.1;branch=z9hG4bK1"));
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->protocol, Protocol::kTcp);
  EXPECT_EQ(tcp->remote.port, 5060);
  auto tls = nextViaDestination(via("SIP/2.0/TLS 10.1.1.1;branch=z9hG4bK1"));
  ASSERT_TRUE(tls);
  EXPECT_EQ(tls->protocol, Protocol::kTls);
  EXPECT_EQ(tls->remote.port, 5061);
  EXPECT_FALSE(nextViaDestination(via("SIP/2.0/SCTP 10.1.1.1;branch=z9hG4bK1")));
}

TEST(NextViaDestinationTest, Ipv6InBrackets) {
  auto to = nextViaDestination(via("SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bK1"));
  ASSERT_TRUE(to);
  EXPECT_EQ(to->remote, ep("2001:db8::10", 5062));
  auto received = nextViaDestination(
      via("SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bK1;received=[2001:db8::99];rport=7000"));
  ASSERT_TRUE(received);
  EXPECT_EQ(received->remote, ep("2001:db8::99", 7000));
}

TEST(NextViaDestinationTest, NamesAreRefused) {
  EXPECT_FALSE(nextViaDestination(via("SIP/2.0/UDP pc33.atlanta.com:5062;branch=z9hG4bK1")));
  auto received = nextViaDestination(
      via("SIP/2.0/UDP pc33.atlanta.com:5062;branch=z9hG4bK1;received=192.0.2.4"));
  ASSERT_TRUE(received);
  EXPECT_EQ(received->remote, ep("192.0.2.4", 5062));
}

// The text of `request` after stampReceived for a request from `from`.
std::string stamped(const std::string& request, const Endpoint& from) {
  auto msg = sip::Message::parse(request);
  EXPECT_TRUE(msg) << request;
  auto top = msg->topVia();
  EXPECT_TRUE(top);
  sip::MessageEditor edit(*msg);
  std::string scratch;
  stampReceived(edit, *msg, *top, from, scratch);
  return edit.str();
}

std::string withVia(std::string_view via) {
  return "OPTIONS sip:a@example.com SIP/2.0\r\nVia: " + std::string(via) +
         "\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
}

TEST(StampReceivedTest, ReceivedWhenTheSourceIsNotTheSentByHostAndRportFilledIn) {
  // The sent-by names another address (an anycast address, a NAT): received says where from.
  EXPECT_NE(stamped(withVia("SIP/2.0/UDP 10.99.0.1:40369;branch=z9hG4bK1"), ep("10.77.1.11", 40369))
                .find("Via: SIP/2.0/UDP 10.99.0.1:40369;branch=z9hG4bK1;received=10.77.1.11\r\n"),
            std::string::npos);
  // The source is the sent-by host: nothing to add.
  const std::string same = withVia("SIP/2.0/UDP 10.77.1.11:40369;branch=z9hG4bK1");
  EXPECT_EQ(stamped(same, ep("10.77.1.11", 40369)), same);
  // rport asked for: its value and received, whatever the host.
  EXPECT_NE(stamped(withVia("SIP/2.0/UDP 10.0.0.5;rport;branch=z9hG4bK1"), ep("10.0.0.5", 5071))
                .find("Via: SIP/2.0/UDP 10.0.0.5;rport=5071;branch=z9hG4bK1;received=10.0.0.5\r\n"),
            std::string::npos);
  // A received= the sender wrote itself is replaced, never trusted.
  EXPECT_NE(stamped(withVia("SIP/2.0/UDP host.example;received=6.6.6.6;branch=z9hG4bK1"),
                    ep("192.0.2.9", 5060))
                .find("received=192.0.2.9;branch"),
            std::string::npos);
}

TEST(NumericHostTest, Ipv4AndIpv6WithOrWithoutBrackets) {
  EXPECT_EQ(parseNumericHost("192.0.2.1")->to_string(), "192.0.2.1");
  EXPECT_EQ(parseNumericHost("2001:db8::1")->to_string(), "2001:db8::1");
  EXPECT_EQ(parseNumericHost("[2001:db8::1]")->to_string(), "2001:db8::1");
  EXPECT_EQ(parseNumericHost("::ffff:10.0.0.1")->to_string(), "::ffff:10.0.0.1");
  for (const char* bad :
       {"",         "[]",           "example.com", "192.0.2.1:5060", "[192.0.2.1]", "[::1",
        "::1]",     "fe80::1%eth0", "256.1.1.1",   "0001.2.3.4",     "[[::1]]",     " 1.2.3.4",
        "01.2.3.4", "1.2.3.04",     "1.2.3",       "1.2.3.4.",       "1.2.3.4.5",   "1..2.3",
        "1.2.3.4 ", "1.2.3.-4",     "1.2.3.2555"}) {
    EXPECT_FALSE(parseNumericHost(bad)) << bad;
  }
  EXPECT_EQ(parseNumericHost("0.0.0.0")->to_string(), "0.0.0.0");
  EXPECT_EQ(parseNumericHost("255.255.255.255")->to_string(), "255.255.255.255");
  EXPECT_EQ(parseNumericHost("10.0.100.9")->to_string(), "10.0.100.9");
}

TEST(NumericHostTest, AppendIpWritesWhatToStringWrites) {
  for (const char* text : {"0.0.0.0", "1.20.100.255", "192.0.2.9", "255.255.255.255", "::1",
                           "2001:db8::42", "::ffff:10.0.0.1"}) {
    const auto ip = boost::asio::ip::make_address(text);
    std::string out = "x=";
    appendIp(out, ip);
    EXPECT_EQ(out, "x=" + ip.to_string());
  }
}

}  // namespace
}  // namespace evosip::transport
