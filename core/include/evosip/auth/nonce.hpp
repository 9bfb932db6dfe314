#pragma once
// Stateless digest nonces (DESIGN.md 3): every router signs the nonces it issues with a secret
// shared by all routers, so any router verifies a nonce another one issued and no nonce is
// stored anywhere.
//
//   nonce = base64url-nopad( ts[8] || rand[8] || HMAC-SHA256(secret, ts || rand || realm)[0..16) )
//
// ts is the issue time in Unix seconds (big-endian): routers on different hosts compare wall
// clocks, which NTP keeps within a few seconds; maxClockSkew absorbs the difference. The nonce
// is 32 bytes, 43 characters, only [A-Za-z0-9_-]: safe in a quoted-string without escapes.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/auth/hmac.hpp>

namespace evosip::auth {

using WallTime = std::chrono::system_clock::time_point;

class NonceCodec {
 public:
  struct Settings {
    std::string secret;  // at least kMinSecretSize bytes, shared by all routers
    // Secrets still accepted when verifying (not used to issue): a rotation first deploys the
    // new secret with the old one here, then drops the old one after `lifetime`.
    std::vector<std::string> previousSecrets;
    std::chrono::seconds lifetime{300};     // older nonces are stale
    std::chrono::seconds maxClockSkew{30};  // how far in the future an issue time may be
  };
  static constexpr size_t kMinSecretSize = 16;
  static constexpr size_t kEncodedSize = 43;

  // Throws std::invalid_argument (start-up error) when a secret is too short or the lifetime
  // is not positive. The message names the setting, never the secret.
  explicit NonceCodec(Settings settings);
  ~NonceCodec();
  NonceCodec(const NonceCodec&) = delete;
  NonceCodec& operator=(const NonceCodec&) = delete;

  // A fresh nonce for `realm` issued at `now` (8 random bytes from the OpenSSL CSPRNG).
  std::string issue(std::string_view realm, WallTime now) const;

  enum class Status {
    kValid,
    kExpired,  // signature good, but older than lifetime (or too far in the future): stale
    kInvalid,  // not a nonce we (or a router sharing our secret) issued for this realm
  };
  struct Check {
    Status status = Status::kInvalid;
    WallTime issuedAt{};
    // For kValid: how long the nonce stays valid from `now` (>= 1 s), for stores with a TTL.
    std::chrono::seconds remaining{0};
  };
  Check check(std::string_view nonce, std::string_view realm, WallTime now) const;

  const Settings& settings() const { return settings_; }

 private:
  Settings settings_;
  // The secret's MAC key first, then each previous secret's.
  std::vector<std::shared_ptr<const HmacSha256>> keys_;
};

}  // namespace evosip::auth
