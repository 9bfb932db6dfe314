// RFC 3261 18.2.2 and RFC 3581 section 4: the Via rules that say where a response goes.
#include <gtest/gtest.h>

#include <evosip/sip/message.hpp>
#include <evosip/sip/response_address.hpp>

namespace evosip::sip {
namespace {

Via via(std::string_view text) {
  auto v = parseVia(text);
  EXPECT_TRUE(v) << text;
  return v ? *v : Via{};
}

TEST(ResponseAddressTest, DefaultPortsByTransport) {
  EXPECT_EQ(defaultPort("UDP"), 5060);
  EXPECT_EQ(defaultPort("TCP"), 5060);
  EXPECT_EQ(defaultPort("tcp"), 5060);
  EXPECT_EQ(defaultPort("WS"), 5060);
  EXPECT_EQ(defaultPort("TLS"), 5061);
  EXPECT_EQ(defaultPort("tls"), 5061);
}

TEST(ResponseAddressTest, SentByPortFallsBackToTheTransportsDefault) {
  EXPECT_EQ(sentByPort(via("SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK1")), 5066);
  EXPECT_EQ(sentByPort(via("SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK1")), 5060);
  EXPECT_EQ(sentByPort(via("SIP/2.0/TCP pc33.atlanta.com;branch=z9hG4bK1")), 5060);
  EXPECT_EQ(sentByPort(via("SIP/2.0/TLS pc33.atlanta.com;branch=z9hG4bK1")), 5061);
  // A request that came over UDP is answered over UDP, whatever its Via claims.
  EXPECT_EQ(sentByPort(via("SIP/2.0/TLS pc33.atlanta.com;branch=z9hG4bK1"), "UDP"), 5060);
  EXPECT_EQ(sentByPort(via("SIP/2.0/TLS pc33.atlanta.com:5071;branch=z9hG4bK1"), "UDP"), 5071);
}

TEST(ResponseAddressTest, RportWithAndWithoutValue) {
  // RFC 3581 section 3: the client asks with an empty rport; the server fills in the port.
  EXPECT_EQ(rportValue(via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;rport")), std::nullopt);
  EXPECT_EQ(rportValue(via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;rport=40123")), 40123);
  EXPECT_EQ(rportValue(via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1")), std::nullopt);
  EXPECT_EQ(rportValue(via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;RPORT=7")), 7);
  // No UDP source port is 0: rport=0 names no port.
  EXPECT_EQ(rportValue(via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;rport=0")), std::nullopt);
}

TEST(ResponseAddressTest, SentByAloneWithoutReceivedOrRport) {
  const ViaAddress to = responseAddress(via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1"));
  EXPECT_EQ(to.host, "10.1.1.1");
  EXPECT_EQ(to.port, 5062);
  const ViaAddress name = responseAddress(via("SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK1"));
  EXPECT_EQ(name.host, "pc33.atlanta.com");
  EXPECT_EQ(name.port, 5060);
}

TEST(ResponseAddressTest, ReceivedReplacesTheHostAndKeepsTheSentByPort) {
  // RFC 3261 18.2.2: to the address in received, the port of sent-by (5060 when absent).
  const ViaAddress to =
      responseAddress(via("SIP/2.0/UDP bobspc.biloxi.com:5062;branch=z9hG4bK1;received=192.0.2.4"));
  EXPECT_EQ(to.host, "192.0.2.4");
  EXPECT_EQ(to.port, 5062);
  EXPECT_EQ(
      responseAddress(via("SIP/2.0/UDP bobspc.biloxi.com;branch=z9hG4bK1;received=192.0.2.4")).port,
      5060);
}

TEST(ResponseAddressTest, ReceivedAndRport) {
  // RFC 3581 section 4: to received and the port of rport.
  const ViaAddress to = responseAddress(
      via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;received=192.0.2.1;rport=9988"));
  EXPECT_EQ(to.host, "192.0.2.1");
  EXPECT_EQ(to.port, 9988);
  // rport without a value (never filled in) leaves the sent-by port.
  const ViaAddress asked =
      responseAddress(via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;received=192.0.2.1;rport"));
  EXPECT_EQ(asked.port, 5062);
}

TEST(ResponseAddressTest, Ipv6SentByInBracketsAndReceived) {
  const ViaAddress to = responseAddress(via("SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bK1"));
  EXPECT_EQ(to.host, "2001:db8::10");
  EXPECT_EQ(to.port, 5062);
  const ViaAddress noPort = responseAddress(via("SIP/2.0/UDP [2001:db8::10];branch=z9hG4bK1"));
  EXPECT_EQ(noPort.host, "2001:db8::10");
  EXPECT_EQ(noPort.port, 5060);
  // RFC 5118 4.5 writes received in brackets too: the host is the address inside.
  const ViaAddress bracketed = responseAddress(
      via("SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bK1;received=[2001:db8::99];rport=7000"));
  EXPECT_EQ(bracketed.host, "2001:db8::99");
  EXPECT_EQ(bracketed.port, 7000);
  EXPECT_EQ(
      responseAddress(via("SIP/2.0/UDP [2001:db8::10];branch=z9hG4bK1;received=2001:db8::9")).host,
      "2001:db8::9");
}

TEST(ResponseAddressTest, MaddrIsNotFollowed) {
  // The response never goes to an address the request names for itself.
  const ViaAddress to = responseAddress(
      via("SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1;maddr=224.2.0.1;ttl=16;received=192.0.2.1"));
  EXPECT_EQ(to.host, "192.0.2.1");
  EXPECT_EQ(to.port, 5062);
  EXPECT_EQ(responseAddress(via("SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK1;maddr=224.2.0.1")).host,
            "10.1.1.1");
}

TEST(TagOfTest, TagOfFromAndTo) {
  const std::string text =
      "INVITE sip:bob@biloxi.com SIP/2.0\r\n"
      "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
      "To: Bob <sip:bob@biloxi.com>\r\n"
      "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
      "Call-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n";
  auto msg = Message::parse(text);
  ASSERT_TRUE(msg);
  EXPECT_EQ(tagOf(msg->from()), "1928301774");
  EXPECT_EQ(tagOf(msg->to()), "");
  EXPECT_EQ(tagOf(parseNameAddr("<sip:bob@biloxi.com>;tag=a6c85cf")), "a6c85cf");
  EXPECT_EQ(tagOf(parseNameAddr("not an address <")), "");
}

}  // namespace
}  // namespace evosip::sip
