#pragma once
// HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once, at construction: a MAC
// then costs two short digests from copies of those states, several times cheaper than
// OpenSSL's one-shot HMAC(), which fetches the algorithm and schedules the key on every call.
// The MACs are the same as HMAC()'s, so values signed before and after agree.

#include <array>
#include <cstddef>
#include <initializer_list>
#include <string_view>

// The OpenSSL digest context, kept opaque here.
struct evp_md_ctx_st;

namespace evosip::auth {

class HmacSha256 {
 public:
  static constexpr size_t kSize = 32;
  using Mac = std::array<unsigned char, kSize>;

  // Any key length (a key longer than SHA-256's 64-byte block is hashed first, RFC 2104 2).
  // Throws std::runtime_error when OpenSSL cannot set up SHA-256.
  explicit HmacSha256(std::string_view key);
  ~HmacSha256();
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;

  // The MAC of the concatenation of `parts`. Safe from several threads at once.
  Mac sign(std::initializer_list<std::string_view> parts) const;

 private:
  evp_md_ctx_st* inner_ = nullptr;  // SHA-256 after (key ^ ipad)
  evp_md_ctx_st* outer_ = nullptr;  // SHA-256 after (key ^ opad)
};

}  // namespace evosip::auth
