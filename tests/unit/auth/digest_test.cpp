#include <gtest/gtest.h>

#include <evosip/auth/digest.hpp>

namespace evosip::auth {
namespace {

TEST(DigestTest, KnownHashesAndRfc2617Ha1) {
  EXPECT_EQ(hexDigest(DigestAlgorithm::kMd5, ""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(hexDigest(DigestAlgorithm::kSha256, ""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // RFC 2617 3.5: HA1 of Mufasa:testrealm@host.com:Circle Of Life.
  EXPECT_EQ(computeHa1(DigestAlgorithm::kMd5, "Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9");
}

TEST(DigestTest, AlgorithmNames) {
  EXPECT_EQ(algorithmFromName("md5"), DigestAlgorithm::kMd5);
  EXPECT_EQ(algorithmFromName("SHA-256"), DigestAlgorithm::kSha256);
  EXPECT_FALSE(algorithmFromName("MD5-sess").has_value());
  EXPECT_EQ(algorithmName(DigestAlgorithm::kSha256), "SHA-256");
}

// RFC 2617 3.5.
TEST(DigestTest, Rfc2617Section35Response) {
  const std::string ha1 =
      computeHa1(DigestAlgorithm::kMd5, "Mufasa", "testrealm@host.com", "Circle Of Life");
  EXPECT_EQ(computeResponse({.algorithm = DigestAlgorithm::kMd5,
                             .ha1 = ha1,
                             .nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                             .method = "GET",
                             .uri = "/dir/index.html",
                             .qop = DigestQop::kAuth,
                             .qopText = "auth",
                             .nc = "00000001",
                             .cnonce = "0a4f113b"}),
            "6629fae49393a05397450978507c4ef1");
}

// RFC 7616 3.9.1: the same request answered with MD5 and with SHA-256.
TEST(DigestTest, Rfc7616Section391Responses) {
  constexpr std::string_view kNonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
  constexpr std::string_view kCnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
  const std::string md5Ha1 =
      computeHa1(DigestAlgorithm::kMd5, "Mufasa", "http-auth@example.org", "Circle of Life");
  const std::string shaHa1 =
      computeHa1(DigestAlgorithm::kSha256, "Mufasa", "http-auth@example.org", "Circle of Life");
  ResponseInput in{.algorithm = DigestAlgorithm::kMd5,
                   .ha1 = md5Ha1,
                   .nonce = kNonce,
                   .method = "GET",
                   .uri = "/dir/index.html",
                   .nc = "00000001",
                   .cnonce = kCnonce};
  EXPECT_EQ(computeResponse(in), "8ca523f5e9506fed4657c9700eebdbec");
  in.algorithm = DigestAlgorithm::kSha256;
  in.ha1 = shaHa1;
  EXPECT_EQ(computeResponse(in),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}

// A SIP REGISTER; expected values computed independently with Python's hashlib:
//   ha1 = H("alice:evosip.local:s3cret-Pw"), ha2 = H("REGISTER:sip:evosip.local"),
//   H(ha1:nonce:00000001:0a4f113b:auth:ha2).
TEST(DigestTest, SipRegisterResponses) {
  constexpr std::string_view kNonce = "NONCE";
  const std::string md5Ha1 =
      computeHa1(DigestAlgorithm::kMd5, "alice", "evosip.local", "s3cret-Pw");
  const std::string shaHa1 =
      computeHa1(DigestAlgorithm::kSha256, "alice", "evosip.local", "s3cret-Pw");
  EXPECT_EQ(md5Ha1, "9c0729870bb1a70028f8a870368b1ecf");
  EXPECT_EQ(shaHa1, "75cf356c5d0d24149b596e542d72d08e94e9db30e3849b280349b8cb2b3ff086");
  ResponseInput in{.algorithm = DigestAlgorithm::kMd5,
                   .ha1 = md5Ha1,
                   .nonce = kNonce,
                   .method = "REGISTER",
                   .uri = "sip:evosip.local",
                   .nc = "00000001",
                   .cnonce = "0a4f113b"};
  EXPECT_EQ(computeResponse(in), "9f715d82359db2bedc12180ce10cff63");
  in.algorithm = DigestAlgorithm::kSha256;
  in.ha1 = shaHa1;
  EXPECT_EQ(computeResponse(in),
            "c0b631c5c29b70c4de702092170d1ba80631faa059d3e97217457842033c7c81");
}

// RFC 2069 (no qop): H(HA1:nonce:H(A2)); value cross-checked with Python's hashlib.
TEST(DigestTest, Rfc2069ResponseWithoutQop) {
  const std::string ha1 =
      computeHa1(DigestAlgorithm::kMd5, "Mufasa", "testrealm@host.com", "CircleOfLife");
  EXPECT_EQ(ha1, "4945ecf42b1bb868634058a845bedde8");
  EXPECT_EQ(computeResponse({.algorithm = DigestAlgorithm::kMd5,
                             .ha1 = ha1,
                             .nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                             .method = "GET",
                             .uri = "/dir/index.html",
                             .qop = DigestQop::kNone,
                             .qopText = "",
                             .nc = "",
                             .cnonce = ""}),
            "1949323746fe6a43ef61f9606e7febea");
}

TEST(DigestTest, ConstantTimeEquals) {
  EXPECT_TRUE(constantTimeEquals("", ""));
  EXPECT_TRUE(constantTimeEquals("abc", "abc"));
  EXPECT_FALSE(constantTimeEquals("abc", "abd"));
  EXPECT_FALSE(constantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(constantTimeEquals("", "a"));
}

}  // namespace
}  // namespace evosip::auth
