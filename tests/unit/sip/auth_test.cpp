#include <gtest/gtest.h>

#include <evosip/sip/auth.hpp>

namespace evosip::sip {
namespace {

TEST(Digest, Credentials) {
  auto d = parseDigest(
      "Digest username=\"bob\", realm=\"biloxi.com\",\r\n nonce=\"dcd98b\", "
      "uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", "
      "response=\"6629fae4\", opaque=\"5ccc\", algorithm=MD5, foo=\"ignored, really\"");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->scheme, "Digest");
  EXPECT_EQ(d->username, "bob");
  EXPECT_EQ(d->realm, "biloxi.com");
  EXPECT_EQ(d->nonce, "dcd98b");
  EXPECT_EQ(d->uri, "sip:bob@biloxi.com");
  EXPECT_EQ(d->qop, "auth");
  EXPECT_EQ(d->nc, "00000001");
  EXPECT_EQ(d->cnonce, "0a4f113b");
  EXPECT_EQ(d->response, "6629fae4");
  EXPECT_EQ(d->opaque, "5ccc");
  EXPECT_EQ(d->algorithm, "MD5");
  EXPECT_TRUE(d->hasUsername && d->hasRealm && d->hasNonce && d->hasUri && d->hasResponse);
}

TEST(Digest, Challenge) {
  auto d = parseDigest(
      "DIGEST realm=\"atlanta.com\", domain=\"sip:ss1.carrier.com\", qop=\"auth,auth-int\", "
      "nonce=\"f84f1cec41e6cbe5aea9c8e88d359\", opaque=\"\", stale=FALSE, algorithm=SHA-256");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->qop, "auth,auth-int");
  EXPECT_EQ(d->opaque, "");
  EXPECT_EQ(d->stale, "FALSE");
  EXPECT_EQ(d->algorithm, "SHA-256");
  EXPECT_FALSE(d->hasUsername);
  EXPECT_TRUE(d->hasRealm);
}

TEST(Digest, OtherSchemeParsesParams) {
  auto d = parseDigest("NewAuth realm=\"x\"");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->scheme, "NewAuth");
  EXPECT_EQ(d->realm, "x");
}

TEST(Digest, Rejects) {
  for (const char* bad : {"", "\"Digest\" realm=x", "Digest realm=\"x", "Digest realm=x realm2=y",
                          "Digest realm=\"a\", realm=\"b\"", "Digest realm", "Digest realm=",
                          "Digest ,realm=x", "Digest realm=x,", "Digest, realm=x", "Digest =x"}) {
    EXPECT_FALSE(parseDigest(bad)) << bad;
  }
}

TEST(Digest, EscapesAreKeptAndUnquoteResolvesThem) {
  auto d = parseDigest(R"(Digest username="a\"b\\c", realm="r")");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->username, R"(a\"b\\c)");
  EXPECT_EQ(unquote(d->username), R"(a"b\c)");
  EXPECT_EQ(unquote("x\\"), "x\\");
}

}  // namespace
}  // namespace evosip::sip
