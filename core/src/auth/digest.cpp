#include <openssl/evp.h>

#include <evosip/auth/digest.hpp>
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
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string computeHa1(DigestAlgorithm a, std::string_view username, std::string_view realm,
                       std::string_view password) {
  std::string in;
  in.reserve(username.size() + realm.size() + password.size() + 2);
  in.append(username).append(":").append(realm).append(":").append(password);
  return hexDigest(a, in);
}

}  // namespace evosip::auth
