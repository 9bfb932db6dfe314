#include <gtest/gtest.h>

#include <evosip/sip/address.hpp>

namespace evosip::sip {
namespace {

TEST(NameAddr, DisplayNameUriAndHeaderParams) {
  auto a = parseNameAddr("\"Bob \\\"B\\\"\" <sip:bob@biloxi.com;transport=tcp>;tag=a6c85cf");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->displayName, "\"Bob \\\"B\\\"\"");
  EXPECT_EQ(a->uriText, "sip:bob@biloxi.com;transport=tcp");
  EXPECT_EQ(a->uri.params.get("transport"), "tcp");
  EXPECT_EQ(a->tag(), "a6c85cf");
  EXPECT_TRUE(a->angleBrackets);
  auto tokens = parseNameAddr("Bob  Smith <sip:bob@b.com>");
  ASSERT_TRUE(tokens);
  EXPECT_EQ(tokens->displayName, "Bob  Smith");
  auto noName = parseNameAddr("<sip:bob@b.com> ; expires = 60");
  ASSERT_TRUE(noName);
  EXPECT_EQ(noName->displayName, "");
  EXPECT_EQ(noName->params.get("expires"), "60");
}

TEST(NameAddr, AddrSpecParamsBelongToTheHeader) {
  auto a = parseNameAddr("sip:alice@atlanta.com;tag=88sja8x;lr");
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->angleBrackets);
  EXPECT_EQ(a->uriText, "sip:alice@atlanta.com");
  EXPECT_TRUE(a->uri.params.empty());
  EXPECT_EQ(a->tag(), "88sja8x");
  EXPECT_TRUE(a->params.has("lr"));
}

TEST(NameAddr, StarAndIpv6) {
  EXPECT_TRUE(parseNameAddr(" * ")->star);
  auto a = parseNameAddr("<sip:[2001:db8::10]:5060;lr>");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->uri.host, "2001:db8::10");
  EXPECT_TRUE(a->uri.looseRouting());
}

TEST(NameAddr, Rejects) {
  for (const char* bad :
       {"", "\"Mr J. User <sip:j.user@example.com>", "Bell, Alexander <sip:a@b.com>",
        "<sip:a@b.com", "sip:user@example.com?Route=%3Csip:sip.example.com%3E", "sip:a@b.com x",
        "<sip:a@b.com> x", "<sip:a@b.com>;tag=\"x", "<sip:a@b.com>;=1",
        "<sip:a@b.com>;tag=", "< sip:a@b.com >", "\"a\" junk <sip:a@b>", "<sip:a@b.com>;",
        "<sip:a@b.com>;;tag=1", "\"Joe\" <sip:joe@example.org>;;;;"}) {
    EXPECT_FALSE(parseNameAddr(bad)) << bad;
  }
}

TEST(HopUri, ABareUriKeepsItsParametersARouteKeepsWhatIsInsideItsBrackets) {
  auto bare = parseHopUri("sip:x@127.0.0.1:5070;transport=tcp;maddr=10.0.0.1", HopText::kUri);
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->port, 5070);
  EXPECT_EQ(bare->params.get("transport"), "tcp");
  EXPECT_EQ(bare->params.get("maddr"), "10.0.0.1");
  // The same text read as a name-addr is an addr-spec: its parameters are the header's.
  auto asAddrSpec = parseNameAddr("sip:x@127.0.0.1:5070;transport=tcp");
  ASSERT_TRUE(asAddrSpec);
  EXPECT_FALSE(asAddrSpec->uri.params.has("transport"));
  auto route = parseHopUri(" <sip:10.0.0.5;lr;transport=tcp>;x=y ", HopText::kRoute);
  ASSERT_TRUE(route);
  EXPECT_EQ(route->params.get("transport"), "tcp");
  EXPECT_FALSE(route->params.has("x"));
  auto after = parseHopUri("<sip:10.0.0.5;lr>;transport=tcp", HopText::kRoute);
  ASSERT_TRUE(after);
  EXPECT_FALSE(after->params.has("transport"));
  auto sips = parseHopUri("sips:x@example.com", HopText::kUri);
  ASSERT_TRUE(sips);
  EXPECT_EQ(sips->scheme, UriScheme::kSips);
  EXPECT_FALSE(parseHopUri("*", HopText::kRoute));
  EXPECT_FALSE(parseHopUri("<sip:a@b>", HopText::kUri));
  EXPECT_FALSE(parseHopUri("", HopText::kUri));
}

TEST(Via, FullValue) {
  auto v = parseVia(
      "SIP / 2.0 / UDP  pc33.atlanta.com : 5066 ;branch=z9hG4bK776asdhds ;received=192.0.2.1;"
      "rport;maddr=224.2.0.1;ttl=16");
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->protocolName, "SIP");
  EXPECT_EQ(v->protocolVersion, "2.0");
  EXPECT_EQ(v->transport, "UDP");
  EXPECT_EQ(v->host, "pc33.atlanta.com");
  EXPECT_EQ(v->hostType, HostType::kDomain);
  EXPECT_EQ(v->port, 5066);
  EXPECT_EQ(v->branch(), "z9hG4bK776asdhds");
  EXPECT_TRUE(v->rfc3261Branch());
  EXPECT_EQ(v->received(), "192.0.2.1");
  EXPECT_EQ(v->rport(), "");
  EXPECT_EQ(v->maddr(), "224.2.0.1");
  EXPECT_EQ(v->ttl(), "16");
}

TEST(Via, Ipv6SentByAndReceived) {
  auto v = parseVia("SIP/2.0/TCP [2001:db8::9:1]:5060;branch=z9hG4bKas3;received=2001:db8::9:255");
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->host, "2001:db8::9:1");
  EXPECT_EQ(v->hostText, "[2001:db8::9:1]");
  EXPECT_EQ(v->hostType, HostType::kIpv6);
  EXPECT_EQ(v->port, 5060);
  EXPECT_EQ(v->received(), "2001:db8::9:255");
  auto noPort = parseVia("SIP/2.0/UDP [2001:db8::9:1];rport=5061");
  ASSERT_TRUE(noPort);
  EXPECT_EQ(noPort->port, 0);
  EXPECT_EQ(noPort->rport(), "5061");
  EXPECT_FALSE(noPort->rfc3261Branch());
}

TEST(Via, Rejects) {
  for (const char* bad :
       {"", "SIP/2.0/UDP", "SIP/2.0 UDP h", "SIP/3.0/UDP h", "SIP/2.0/UDPh", "SIP/2.0/UDP h:x",
        "SIP/2.0/UDP [::1", "SIP/2.0/UDP 2001:db8::1", "SIP/2.0/UDP h;ttl=300",
        "SIP/2.0/UDP h;rport=70000", "SIP/2.0/UDP h;received=host.com", "SIP/2.0/UDP h;branch",
        "SIP/2.0/UDP h;branch=a b", "SIP/2.0/UDP 192.0.2.15;;", "SIP/2.0/UDP h;"}) {
    EXPECT_FALSE(parseVia(bad)) << bad;
  }
}

TEST(CSeq, ParsesAndRejects) {
  auto c = parseCSeq(" 4711  REGISTER ");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->number, 4711u);
  EXPECT_EQ(c->method, Method::kRegister);
  auto ext = parseCSeq("0 NEWMETHOD");
  ASSERT_TRUE(ext);
  EXPECT_EQ(ext->method, Method::kOther);
  EXPECT_EQ(ext->methodText, "NEWMETHOD");
  EXPECT_EQ(parseCSeq("4294967295 ACK")->number, 4294967295u);
  for (const char* bad : {"", "INVITE", "1", "1INVITE", "-1 INVITE", "4294967296 INVITE",
                          "36893488147419103232 INVITE", "1 INV<ITE", "1 INVITE x"}) {
    EXPECT_FALSE(parseCSeq(bad)) << bad;
  }
}

}  // namespace
}  // namespace evosip::sip
