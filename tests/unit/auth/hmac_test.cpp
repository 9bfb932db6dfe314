// HMAC-SHA256 with precomputed pads gives exactly OpenSSL's HMAC(): flow tokens and nonces
// signed before keep verifying, and the RFC 4231 vectors hold.
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <evosip/auth/hmac.hpp>
#include <evosip/base/hex.hpp>

namespace evosip::auth {
namespace {

std::string hexOf(const HmacSha256::Mac& mac) {
  return hexEncode(mac);
}

HmacSha256::Mac oneShot(const std::string& key, const std::string& data) {
  HmacSha256::Mac mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len);
  return mac;
}

TEST(HmacSha256Test, Rfc4231Vectors) {
  // Test case 2: a short key.
  EXPECT_EQ(hexOf(HmacSha256("Jefe").sign({"what do ya want ", "for nothing?"})),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 6: a key longer than the block, hashed first.
  EXPECT_EQ(hexOf(HmacSha256(std::string(131, '\xaa'))
                      .sign({"Test Using Larger Than Block-Size Key - Hash Key First"})),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(HmacSha256Test, SameAsOpenSslForEveryKeyLengthAndSplit) {
  for (size_t keyLen : {0u, 1u, 16u, 32u, 63u, 64u, 65u, 200u}) {
    const std::string key(keyLen, static_cast<char>(0x5a + keyLen));
    const HmacSha256 h(key);
    for (size_t n : {0u, 1u, 20u, 55u, 64u, 100u}) {
      const std::string data(n, 'd');
      EXPECT_EQ(h.sign({data}), oneShot(key, data)) << keyLen << " " << n;
      EXPECT_EQ(h.sign({data.substr(0, n / 2), data.substr(n / 2)}), oneShot(key, data));
    }
  }
}

TEST(HmacSha256Test, OneKeyFromSeveralThreads) {
  const HmacSha256 h("a shared secret of some length");
  const auto want = oneShot("a shared secret of some length", "message");
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (size_t t = 0; t < wrong.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        wrong[t] += h.sign({"mess", "age"}) == want ? 0 : 1;
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(wrong, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace evosip::auth
