#pragma once
// Verification of Digest credentials (RFC 3261 22.4, RFC 2617 3.2.2, RFC 7616 3.4, RFC 8760)
// against a nonce from NonceCodec and the HA1 of the user.
//
// The router's steps, top to bottom:
//   1. parse the Authorization / Proxy-Authorization value (sip::parseDigest) whose realm is
//      ours;
//   2. inspect(): structure only, no secret needed; gives the user and the algorithm whose HA1
//      must be fetched (CredentialCache);
//   3. verify() with the HA1 and the NonceCountStore; answer by the verdict:
//        kOk           -> proceed
//        kStale        -> challenge again with stale=true (the client retries without asking
//                         the user for a password)
//        kBadNonce,
//        kBadResponse  -> challenge again (stale=false)
//        kReplay       -> challenge again with stale=true: a client that raced its own nonce
//                         counts recovers, an attacker learns nothing
//        kMalformed    -> 400 Bad Request
//        kUnavailable  -> 503 (the nonce-count store did not answer)
//
// Order of the checks: structure, nonce signature, response, nonce age, nonce count. The
// response is checked before the age, so stale=true is only ever sent to a client that knows
// the password (RFC 7616 3.3), and before the count, so forged requests cannot advance the
// count of a legitimate client.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include <evosip/auth/challenge.hpp>
#include <evosip/auth/digest.hpp>
#include <evosip/auth/nonce.hpp>
#include <evosip/auth/nonce_count_store.hpp>
#include <evosip/sip/auth.hpp>

namespace evosip::auth {

enum class VerifyResult {
  kOk,
  kStale,        // right credentials, nonce expired (signature valid)
  kBadNonce,     // nonce not issued by a router sharing our secret, or for another realm
  kBadResponse,  // wrong password (or a stored HA1 unusable for the algorithm)
  kReplay,       // nonce count not greater than the last accepted one
  kMalformed,    // missing fields, unsupported algorithm/qop, uri differs from the Request-URI
  kUnavailable,  // the nonce-count store could not answer
};
std::string_view verifyResultName(VerifyResult r);  // "ok", "stale", "bad-nonce", ...

struct Verdict {
  VerifyResult result = VerifyResult::kMalformed;
  // Why, for logs and metrics: a fixed text that never contains client data, credentials or
  // secrets.
  std::string_view reason;
  // For kOk with qop=auth: the nonce count to record and how long to keep it. nc is 0 for an
  // RFC 2069 response (no qop), which has no count to check.
  uint32_t nc = 0;
  std::chrono::seconds nonceTtl{0};
};

// What must be fetched before verifying: the user (quotes and escapes removed) and the
// algorithm whose HA1 is needed.
struct CredentialsInfo {
  std::string username;
  DigestAlgorithm algorithm = DigestAlgorithm::kMd5;
};

struct VerifyInput {
  std::string_view method;      // request method as written, e.g. "REGISTER"
  std::string_view requestUri;  // the request's Request-URI
  const sip::DigestParams& credentials;
  std::string_view realm;  // our realm (the one we challenged with)
  std::string_view ha1;    // lower-case hex HA1 for CredentialsInfo::algorithm
  WallTime now;
};

class DigestVerifier {
 public:
  struct Settings {
    // Accept RFC 2069 responses (no qop, so no cnonce, no nc and no replay protection within
    // the nonce lifetime). On by default for old phones; off refuses them as malformed.
    bool acceptNoQop = true;
    // When set: sent in every challenge and required back unchanged.
    std::string opaque;
  };
  static constexpr size_t kMaxFieldSize = 1024;  // username, uri, cnonce, realm

  explicit DigestVerifier(const NonceCodec& nonces) : DigestVerifier(nonces, Settings{}) {}
  DigestVerifier(const NonceCodec& nonces, Settings settings);

  // Structural checks that need no secret: scheme, required fields, realm, algorithm, qop,
  // nc/cnonce syntax, opaque, digest-uri against the Request-URI. Failure is kMalformed.
  tl::expected<CredentialsInfo, Verdict> inspect(std::string_view method,
                                                 std::string_view requestUri,
                                                 const sip::DigestParams& credentials,
                                                 std::string_view realm) const;

  // Everything except the nonce count (no I/O): kOk, kStale, kBadNonce, kBadResponse or
  // kMalformed. The response is compared in constant time.
  Verdict verify(const VerifyInput& in) const;

  // verify(), then for kOk with qop=auth the check-and-set of the nonce count; `done` receives
  // kOk, kReplay or kUnavailable then, or the first verdict. `done` may run before this
  // returns (in-memory store) or later on the store's completion (see NonceCountStore). `in`
  // is not used after this returns.
  void verify(const VerifyInput& in, NonceCountStore& counts,
              std::function<void(Verdict)> done) const;

  // A fresh nonce and the challenge header values (SHA-256 first, then MD5).
  std::array<std::string, 2> challenge(std::string_view realm, bool stale, WallTime now) const;

 private:
  const NonceCodec& nonces_;
  Settings settings_;
};

// digest-uri vs Request-URI (RFC 3261 22.4 step 2): identical text, or both SIP/SIPS URIs with
// the same scheme, user, host (case-insensitive) and port (default ports filled in); URI
// parameters and headers are ignored, because phones differ in which ones they repeat.
bool digestUriMatches(std::string_view digestUri, std::string_view requestUri);

}  // namespace evosip::auth
