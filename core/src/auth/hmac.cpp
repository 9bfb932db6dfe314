#include <cstring>
#include <memory>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <evosip/auth/hmac.hpp>

namespace evosip::auth {
namespace {

constexpr size_t kBlock = 64;  // SHA-256's block size

struct CtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// Each thread's scratch context, into which the keyed states are copied per MAC.
EVP_MD_CTX* scratch() {
  thread_local std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx) {
    throw std::runtime_error("HMAC-SHA256: out of memory");
  }
  return ctx.get();
}

EVP_MD_CTX* padded(const unsigned char* key, unsigned char pad) {
  unsigned char block[kBlock];
  std::memset(block, pad, kBlock);
  for (size_t i = 0; i < kBlock; ++i) {
    block[i] ^= key[i];
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, block, kBlock) == 1;
  OPENSSL_cleanse(block, kBlock);
  if (!ok) {
    EVP_MD_CTX_free(ctx);
    throw std::runtime_error("HMAC-SHA256: cannot set up SHA-256");
  }
  return ctx;
}

}  // namespace

HmacSha256::HmacSha256(std::string_view key) {
  unsigned char k[kBlock] = {};
  if (key.size() > kBlock) {
    unsigned int len = 0;
    if (EVP_Digest(key.data(), key.size(), k, &len, EVP_sha256(), nullptr) != 1) {
      throw std::runtime_error("HMAC-SHA256: cannot hash the key");
    }
  } else {
    std::memcpy(k, key.data(), key.size());
  }
  inner_ = padded(k, 0x36);
  try {
    outer_ = padded(k, 0x5c);
  } catch (...) {
    EVP_MD_CTX_free(inner_);
    OPENSSL_cleanse(k, kBlock);
    throw;
  }
  OPENSSL_cleanse(k, kBlock);
}

HmacSha256::~HmacSha256() {
  EVP_MD_CTX_free(inner_);
  EVP_MD_CTX_free(outer_);
}

HmacSha256::Mac HmacSha256::sign(std::initializer_list<std::string_view> parts) const {
  EVP_MD_CTX* c = scratch();
  Mac mac{};
  unsigned int len = 0;
  bool ok = EVP_MD_CTX_copy_ex(c, inner_) == 1;
  for (std::string_view p : parts) {
    ok = ok && EVP_DigestUpdate(c, p.data(), p.size()) == 1;
  }
  ok = ok && EVP_DigestFinal_ex(c, mac.data(), &len) == 1;
  ok = ok && EVP_MD_CTX_copy_ex(c, outer_) == 1 && EVP_DigestUpdate(c, mac.data(), kSize) == 1 &&
       EVP_DigestFinal_ex(c, mac.data(), &len) == 1;
  if (!ok) {
    throw std::runtime_error("HMAC-SHA256: digest failed");
  }
  return mac;
}

}  // namespace evosip::auth
