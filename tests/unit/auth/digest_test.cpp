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

}  // namespace
}  // namespace evosip::auth
