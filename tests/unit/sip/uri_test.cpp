#include <gtest/gtest.h>

#include <evosip/sip/uri.hpp>

namespace evosip::sip {
namespace {

TEST(Uri, SipFull) {
  auto u = parseUri("sip:alice:secret@atlanta.com:5070;transport=tcp;lr?subject=project&x=y");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, UriScheme::kSip);
  EXPECT_EQ(u->user, "alice");
  EXPECT_EQ(u->password, "secret");
  EXPECT_EQ(u->host, "atlanta.com");
  EXPECT_EQ(u->hostType, HostType::kDomain);
  EXPECT_EQ(u->port, 5070);
  EXPECT_EQ(u->params.get("transport"), "tcp");
  EXPECT_TRUE(u->looseRouting());
  EXPECT_EQ(u->headers, "subject=project&x=y");
  EXPECT_TRUE(u->isSip());
}

TEST(Uri, HostOnlyAndDefaults) {
  auto u = parseUri("SIPS:192.0.2.4");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, UriScheme::kSips);
  EXPECT_EQ(u->schemeText, "SIPS");
  EXPECT_EQ(u->hostType, HostType::kIpv4);
  EXPECT_EQ(u->user, "");
  EXPECT_EQ(u->portOrDefault(), 5061);
  EXPECT_EQ(parseUri("sip:h")->portOrDefault(), 5060);
}

TEST(Uri, UserWithEscapesAndUnreservedSeparators) {
  auto u = parseUri("sip:sips%3Auser%40example.com@example.net");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->user, "sips%3Auser%40example.com");
  auto tel = parseUri("sip:+1-212-555-1212;phone-context=x@gw.example.com;user=phone");
  ASSERT_TRUE(tel);
  EXPECT_EQ(tel->user, "+1-212-555-1212;phone-context=x");
  EXPECT_EQ(tel->params.get("user"), "phone");
  EXPECT_TRUE(parseUri("sip:null-%00-null@example.com"));
}

TEST(Uri, Ipv6References) {
  auto u = parseUri("sip:[2001:db8::10]:5070;transport=udp");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "2001:db8::10");
  EXPECT_EQ(u->hostText, "[2001:db8::10]");
  EXPECT_EQ(u->hostType, HostType::kIpv6);
  EXPECT_EQ(u->port, 5070);
  auto v4mapped = parseUri("sip:user@[::ffff:192.0.2.1]");
  ASSERT_TRUE(v4mapped);
  EXPECT_EQ(v4mapped->host, "::ffff:192.0.2.1");
  EXPECT_FALSE(parseUri("sip:[2001:db8::10"));
  EXPECT_FALSE(parseUri("sip:2001:db8::10"));
  EXPECT_FALSE(parseUri("sip:[2001:db8:::10]"));
  EXPECT_FALSE(parseUri("sip:[2001:db8::10]x"));
}

TEST(Uri, Tel) {
  auto u = parseUri("tel:+1-201-555-0123;phone-context=example.com");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, UriScheme::kTel);
  EXPECT_EQ(u->user, "+1-201-555-0123");
  EXPECT_EQ(u->params.get("phone-context"), "example.com");
  EXPECT_FALSE(u->isSip());
  EXPECT_FALSE(parseUri("tel:"));
  EXPECT_FALSE(parseUri("tel:abc@x"));
}

TEST(Uri, OtherSchemeIsOpaque) {
  auto u = parseUri("nobodyKnowsThisScheme:totallyopaquecontent");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, UriScheme::kOther);
  EXPECT_EQ(u->schemeText, "nobodyKnowsThisScheme");
  EXPECT_EQ(u->host, "");
}

TEST(Uri, Rejects) {
  for (const char* bad : {"",
                          ":",
                          "sip",
                          "sip:",
                          "<sip:a@b>",
                          "sip:a@",
                          "sip:@b",
                          "sip:a b@c",
                          "sip:a@b:",
                          "sip:a@b:65536",
                          "sip:a@b:12x",
                          "sip:a@-b.com",
                          "sip:a@b.123",
                          "sip:a@b;;lr",
                          "sip:a@b;=x",
                          "sip:a@b?",
                          "sip:a@b%zz",
                          "sip:a%4@b",
                          "1sip:x",
                          "sip:a@b@c",
                          "sip:a@b..com",
                          "sip:a@b<c"}) {
    EXPECT_FALSE(parseUri(bad)) << bad;
  }
}

TEST(Ip, Literals) {
  EXPECT_TRUE(isIpv4("192.0.2.1"));
  EXPECT_TRUE(isIpv4("0.0.0.0"));
  EXPECT_FALSE(isIpv4("256.0.0.1"));
  EXPECT_FALSE(isIpv4("1.2.3"));
  EXPECT_FALSE(isIpv4("1.2.3.4.5"));
  EXPECT_FALSE(isIpv4("1..2.3"));
  EXPECT_FALSE(isIpv4("0001.2.3.4"));
  EXPECT_TRUE(isIpv6("::"));
  EXPECT_TRUE(isIpv6("::1"));
  EXPECT_TRUE(isIpv6("1::"));
  EXPECT_TRUE(isIpv6("2001:db8:0:0:0:0:0:1"));
  EXPECT_TRUE(isIpv6("2001:db8::9:1"));
  EXPECT_TRUE(isIpv6("::ffff:10.0.0.1"));
  EXPECT_TRUE(isIpv6("2001:db8::10:5070"));  // ambiguous without brackets, valid address
  EXPECT_FALSE(isIpv6("2001:db8::1::2"));
  EXPECT_FALSE(isIpv6("1:2:3:4:5:6:7:8:9"));
  EXPECT_FALSE(isIpv6("1:2:3:4:5:6:7"));
  EXPECT_FALSE(isIpv6("12345::"));
  EXPECT_FALSE(isIpv6(":1"));
  EXPECT_FALSE(isIpv6("1:"));
  EXPECT_FALSE(isIpv6("[::1]"));
  EXPECT_FALSE(isIpv6("::1.2.3"));
  EXPECT_FALSE(isIpv6("1:2:3:4:5:6:7:1.2.3.4"));
}

}  // namespace
}  // namespace evosip::sip
