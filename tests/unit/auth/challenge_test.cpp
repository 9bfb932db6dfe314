#include <gtest/gtest.h>

#include <evosip/auth/challenge.hpp>
#include <evosip/sip/auth.hpp>

namespace evosip::auth {
namespace {

TEST(ChallengeTest, RegisterIsChallengedByTheRegistrarOthersByTheProxy) {
  const ChallengeKind reg = challengeKindFor(sip::Method::kRegister);
  EXPECT_EQ(challengeStatus(reg), 401);
  EXPECT_EQ(challengeReason(reg), "Unauthorized");
  EXPECT_EQ(challengeHeaderName(reg), "WWW-Authenticate");
  EXPECT_EQ(credentialsHeaderName(reg), "Authorization");
  for (auto m : {sip::Method::kInvite, sip::Method::kMessage, sip::Method::kSubscribe,
                 sip::Method::kOther}) {
    const ChallengeKind k = challengeKindFor(m);
    EXPECT_EQ(challengeStatus(k), 407);
    EXPECT_EQ(challengeReason(k), "Proxy Authentication Required");
    EXPECT_EQ(challengeHeaderName(k), "Proxy-Authenticate");
    EXPECT_EQ(credentialsHeaderName(k), "Proxy-Authorization");
  }
}

TEST(ChallengeTest, Sha256OfferedBeforeMd5) {
  const auto values = buildChallenges({.realm = "evosip.local", .nonce = "abc-_123"});
  EXPECT_EQ(values[0],
            "Digest realm=\"evosip.local\", nonce=\"abc-_123\", algorithm=SHA-256, qop=\"auth\"");
  EXPECT_EQ(values[1],
            "Digest realm=\"evosip.local\", nonce=\"abc-_123\", algorithm=MD5, qop=\"auth\"");
}

TEST(ChallengeTest, StaleAndOpaque) {
  const std::string v =
      buildChallenge(DigestAlgorithm::kMd5,
                     {.realm = "evosip.local", .nonce = "n", .stale = true, .opaque = "op"});
  EXPECT_EQ(v,
            "Digest realm=\"evosip.local\", nonce=\"n\", opaque=\"op\", algorithm=MD5, "
            "qop=\"auth\", stale=true");
}

TEST(ChallengeTest, ParsesBackWithTheSipDigestParser) {
  const std::string v = buildChallenge(DigestAlgorithm::kSha256,
                                       {.realm = "odd \"realm\\", .nonce = "n1", .stale = true});
  auto p = sip::parseDigest(v);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->scheme, "Digest");
  EXPECT_EQ(sip::unquote(p->realm), "odd \"realm\\");
  EXPECT_EQ(p->nonce, "n1");
  EXPECT_EQ(p->algorithm, "SHA-256");
  EXPECT_EQ(p->qop, "auth");
  EXPECT_EQ(p->stale, "true");
}

}  // namespace
}  // namespace evosip::auth
