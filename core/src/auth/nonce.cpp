#include <array>
#include <cstdint>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <evosip/auth/nonce.hpp>
#include <evosip/base/assert.hpp>
#include <evosip/base/base64url.hpp>

namespace evosip::auth {
namespace {

constexpr size_t kTimeSize = 8;
constexpr size_t kRandomSize = 8;
constexpr size_t kMacSize = 16;  // HMAC-SHA256 truncated to 128 bits (RFC 2104 section 5)
constexpr size_t kRawSize = kTimeSize + kRandomSize + kMacSize;
static_assert((kRawSize * 8 + 5) / 6 == NonceCodec::kEncodedSize);

using Raw = std::array<unsigned char, kRawSize>;

std::string encode(const Raw& raw) {
  std::string out;
  out.reserve(NonceCodec::kEncodedSize);
  base64urlEncode(raw.data(), raw.size(), out);
  return out;
}

// Strict: exactly kEncodedSize characters of the alphabet and zero padding bits, so that one
// nonce has exactly one spelling.
bool decode(std::string_view text, Raw& raw) {
  return text.size() == NonceCodec::kEncodedSize &&
         base64urlDecode(text, raw.data(), raw.size()) == static_cast<int>(kRawSize);
}

// HMAC(secret, ts || rand || realm), truncated.
void mac(const HmacSha256& key, const unsigned char* data, size_t size, std::string_view realm,
         unsigned char* out) {
  const auto full = key.sign({std::string_view(reinterpret_cast<const char*>(data), size), realm});
  std::copy(full.begin(), full.begin() + kMacSize, out);
}

}  // namespace

NonceCodec::NonceCodec(Settings settings) : settings_(std::move(settings)) {
  if (settings_.secret.size() < kMinSecretSize) {
    throw std::invalid_argument("auth nonce secret: at least 16 bytes required");
  }
  for (const auto& s : settings_.previousSecrets) {
    if (s.size() < kMinSecretSize) {
      throw std::invalid_argument("auth previous nonce secret: at least 16 bytes required");
    }
  }
  if (settings_.lifetime.count() <= 0) {
    throw std::invalid_argument("auth nonce lifetime: must be positive");
  }
  if (settings_.maxClockSkew.count() < 0) {
    throw std::invalid_argument("auth nonce max clock skew: must not be negative");
  }
  keys_.push_back(std::make_shared<const HmacSha256>(settings_.secret));
  for (const auto& s : settings_.previousSecrets) {
    keys_.push_back(std::make_shared<const HmacSha256>(s));
  }
}

NonceCodec::~NonceCodec() {
  OPENSSL_cleanse(settings_.secret.data(), settings_.secret.size());
  for (auto& s : settings_.previousSecrets) {
    OPENSSL_cleanse(s.data(), s.size());
  }
}

std::string NonceCodec::issue(std::string_view realm, WallTime now) const {
  Raw raw{};
  // Milliseconds: a lifetime of a few seconds must not be cut by a whole-second rounding.
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const auto ts = static_cast<uint64_t>(ms.count());
  for (size_t i = 0; i < kTimeSize; ++i) {
    raw[i] = static_cast<unsigned char>(ts >> (8 * (kTimeSize - 1 - i)));
  }
  EVOSIP_RELEASE_ASSERT(RAND_bytes(raw.data() + kTimeSize, kRandomSize) == 1,
                        "CSPRNG failure while issuing a nonce");
  mac(*keys_.front(), raw.data(), kTimeSize + kRandomSize, realm,
      raw.data() + kTimeSize + kRandomSize);
  return encode(raw);
}

NonceCodec::Check NonceCodec::check(std::string_view nonce, std::string_view realm,
                                    WallTime now) const {
  Check result;
  Raw raw{};
  if (!decode(nonce, raw)) {
    return result;
  }
  const unsigned char* got = raw.data() + kTimeSize + kRandomSize;
  unsigned char want[kMacSize];
  bool signedByUs = false;
  for (size_t i = 0; !signedByUs && i < keys_.size(); ++i) {
    mac(*keys_[i], raw.data(), kTimeSize + kRandomSize, realm, want);
    signedByUs = CRYPTO_memcmp(want, got, kMacSize) == 0;
  }
  if (!signedByUs) {
    return result;
  }

  uint64_t ts = 0;
  for (size_t i = 0; i < kTimeSize; ++i) {
    ts = (ts << 8) | raw[i];
  }
  // Issue times beyond what a clock can represent come only from a misbehaving signer.
  if (ts > static_cast<uint64_t>(INT64_MAX / 1'000'000)) {
    result.status = Status::kExpired;
    return result;
  }
  const auto issued = std::chrono::milliseconds(static_cast<int64_t>(ts));
  result.issuedAt = WallTime(std::chrono::duration_cast<WallTime::duration>(issued));
  const auto nowMs = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const auto age = nowMs - issued;
  if (age > settings_.lifetime || age < -settings_.maxClockSkew) {
    result.status = Status::kExpired;
    return result;
  }
  result.status = Status::kValid;
  result.remaining =
      std::max(std::chrono::duration_cast<std::chrono::seconds>(settings_.lifetime - age),
               std::chrono::seconds(1));
  return result;
}

}  // namespace evosip::auth
