#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <evosip/auth/digest.hpp>
#include <evosip/base/hex.hpp>
#include <evosip/base/strings.hpp>

namespace evosip::auth {

std::optional<DigestAlgorithm> algorithmFromName(std::string_view name) {
  if (iequals(name, "MD5")) {
    return DigestAlgorithm::kMd5;
  }
  if (iequals(name, "SHA-256")) {
    return DigestAlgorithm::kSha256;
  }
  return std::nullopt;
}

std::string_view algorithmName(DigestAlgorithm a) {
  return a == DigestAlgorithm::kMd5 ? "MD5" : "SHA-256";
}

std::string hexDigest(DigestAlgorithm a, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len,
             a == DigestAlgorithm::kMd5 ? EVP_md5() : EVP_sha256(), nullptr);
  std::string out = hexEncode(std::span(md, len));
  OPENSSL_cleanse(md, sizeof(md));
  return out;
}

std::string computeHa1(DigestAlgorithm a, std::string_view username, std::string_view realm,
                       std::string_view password) {
  std::string in;
  in.reserve(username.size() + realm.size() + password.size() + 2);
  in.append(username).append(":").append(realm).append(":").append(password);
  std::string ha1 = hexDigest(a, in);
  OPENSSL_cleanse(in.data(), in.size());  // the buffer held the password
  return ha1;
}

std::string computeResponse(const ResponseInput& in) {
  std::string a2;
  a2.reserve(in.method.size() + in.uri.size() + 1);
  a2.append(in.method).append(":").append(in.uri);
  const std::string ha2 = hexDigest(in.algorithm, a2);

  std::string kd;
  kd.reserve(in.ha1.size() + in.nonce.size() + in.nc.size() + in.cnonce.size() + in.qopText.size() +
             ha2.size() + 5);
  kd.append(in.ha1).append(":").append(in.nonce).append(":");
  if (in.qop == DigestQop::kAuth) {
    kd.append(in.nc).append(":").append(in.cnonce).append(":").append(in.qopText).append(":");
  }
  kd.append(ha2);
  std::string response = hexDigest(in.algorithm, kd);
  OPENSSL_cleanse(kd.data(), kd.size());  // the buffer held the HA1
  return response;
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace evosip::auth
