#include <set>
#include <stdexcept>

#include <gtest/gtest.h>

#include <evosip/auth/nonce.hpp>

namespace evosip::auth {
namespace {

using std::chrono::seconds;

constexpr std::string_view kRealm = "evosip.local";
const WallTime kT0{seconds(1'700'000'000)};

NonceCodec::Settings settings(std::string secret = "0123456789abcdef-shared-secret") {
  NonceCodec::Settings s;
  s.secret = std::move(secret);
  s.lifetime = seconds(300);
  s.maxClockSkew = seconds(30);
  return s;
}

TEST(NonceTest, FormatIsBase64UrlOf32Bytes) {
  NonceCodec codec(settings());
  const std::string n = codec.issue(kRealm, kT0);
  ASSERT_EQ(n.size(), NonceCodec::kEncodedSize);
  for (char c : n) {
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << c;
  }
  // The first 8 bytes are the issue time in milliseconds, big-endian:
  // 1700000000000 = 0x0000018BCFE56800.
  EXPECT_EQ(n.substr(0, 10), "AAABi8_laA");
}

TEST(NonceTest, EveryNonceIsDifferent) {
  NonceCodec codec(settings());
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(seen.insert(codec.issue(kRealm, kT0)).second);
  }
}

TEST(NonceTest, IssuedByOneInstanceAcceptedByAnother) {
  NonceCodec routerA(settings());
  NonceCodec routerB(settings());
  const std::string n = routerA.issue(kRealm, kT0);
  const auto c = routerB.check(n, kRealm, kT0 + seconds(10));
  EXPECT_EQ(c.status, NonceCodec::Status::kValid);
  EXPECT_EQ(c.issuedAt, kT0);
  EXPECT_EQ(c.remaining, seconds(290));
}

TEST(NonceTest, OtherSecretOrRealmIsInvalid) {
  NonceCodec ours(settings());
  NonceCodec theirs(settings("another-cluster-secret-xyz"));
  const std::string n = theirs.issue(kRealm, kT0);
  EXPECT_EQ(ours.check(n, kRealm, kT0).status, NonceCodec::Status::kInvalid);
  const std::string m = ours.issue(kRealm, kT0);
  EXPECT_EQ(ours.check(m, "other.example", kT0).status, NonceCodec::Status::kInvalid);
}

TEST(NonceTest, AnyChangedCharacterIsInvalid) {
  NonceCodec codec(settings());
  const std::string n = codec.issue(kRealm, kT0);
  for (size_t i = 0; i < n.size(); ++i) {
    std::string t = n;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    EXPECT_EQ(codec.check(t, kRealm, kT0).status, NonceCodec::Status::kInvalid) << i;
  }
  EXPECT_EQ(codec.check(n.substr(1), kRealm, kT0).status, NonceCodec::Status::kInvalid);
  EXPECT_EQ(codec.check(n + "A", kRealm, kT0).status, NonceCodec::Status::kInvalid);
  EXPECT_EQ(codec.check("", kRealm, kT0).status, NonceCodec::Status::kInvalid);
  std::string bad = n;
  bad[5] = '=';
  EXPECT_EQ(codec.check(bad, kRealm, kT0).status, NonceCodec::Status::kInvalid);
}

TEST(NonceTest, ForgedTimestampBreaksTheSignature) {
  NonceCodec codec(settings());
  // An attacker re-dating an expired nonce: the first characters carry the time.
  const std::string old = codec.issue(kRealm, kT0);
  const std::string fresh = codec.issue(kRealm, kT0 + seconds(1000));
  const std::string forged = fresh.substr(0, 10) + old.substr(10);
  EXPECT_EQ(codec.check(old, kRealm, kT0 + seconds(1000)).status, NonceCodec::Status::kExpired);
  EXPECT_EQ(codec.check(forged, kRealm, kT0 + seconds(1000)).status, NonceCodec::Status::kInvalid);
}

TEST(NonceTest, ExpiresAfterLifetime) {
  NonceCodec codec(settings());
  const std::string n = codec.issue(kRealm, kT0);
  EXPECT_EQ(codec.check(n, kRealm, kT0 + seconds(300)).status, NonceCodec::Status::kValid);
  EXPECT_EQ(codec.check(n, kRealm, kT0 + seconds(300)).remaining, seconds(1));
  const auto late = codec.check(n, kRealm, kT0 + seconds(301));
  EXPECT_EQ(late.status, NonceCodec::Status::kExpired);
  EXPECT_EQ(late.issuedAt, kT0);
}

TEST(NonceTest, ClockSkewBetweenRoutersIsTolerated) {
  NonceCodec codec(settings());
  const std::string n = codec.issue(kRealm, kT0);
  // The verifying router's clock is behind the issuer's.
  const auto behind = codec.check(n, kRealm, kT0 - seconds(30));
  EXPECT_EQ(behind.status, NonceCodec::Status::kValid);
  EXPECT_EQ(behind.remaining, seconds(330));
  EXPECT_EQ(codec.check(n, kRealm, kT0 - seconds(31)).status, NonceCodec::Status::kExpired);
}

TEST(NonceTest, PreviousSecretStillAcceptedDuringRotation) {
  NonceCodec oldRouter(settings("the-old-secret-0123456789"));
  auto s = settings("the-new-secret-0123456789");
  s.previousSecrets = {"the-old-secret-0123456789"};
  NonceCodec newRouter(std::move(s));
  EXPECT_EQ(newRouter.check(oldRouter.issue(kRealm, kT0), kRealm, kT0).status,
            NonceCodec::Status::kValid);
  // Nonces are issued with the new secret only.
  EXPECT_EQ(oldRouter.check(newRouter.issue(kRealm, kT0), kRealm, kT0).status,
            NonceCodec::Status::kInvalid);
}

TEST(NonceTest, BadSettingsAreStartupErrorsThatDoNotShowTheSecret) {
  try {
    NonceCodec codec(settings("short-secret"));
    FAIL() << "a short secret was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("secret"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find("short-secret"), std::string::npos);
  }
  auto s = settings();
  s.lifetime = seconds(0);
  EXPECT_THROW(NonceCodec{std::move(s)}, std::invalid_argument);
  auto p = settings();
  p.previousSecrets = {"tiny"};
  EXPECT_THROW(NonceCodec{std::move(p)}, std::invalid_argument);
}

}  // namespace
}  // namespace evosip::auth
