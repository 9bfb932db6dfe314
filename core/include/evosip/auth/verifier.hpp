#pragma once
// Verification of Digest credentials (RFC 3261 22.4, RFC 2617 3.2.2, RFC 7616 3.4, RFC 8760)
// against a nonce from NonceCodec and the HA1 of the user.
//
// The router's steps, top to bottom (Authenticator runs them):
//   1. parse the Authorization / Proxy-Authorization value (sip::parseDigest) whose realm is
//      ours;
//   2. precheck(): everything that needs no HA1 - structure, qop, algorithm, the nonce's
//      signature and age - so that a forged, expired or misshapen answer costs no credential
//      lookup; gives the user and the algorithm whose HA1 must be fetched (CredentialCache);
//   3. verify() with the HA1 and the NonceCountStore; answer by the verdict:
//        kOk           -> proceed
//        kStale        -> challenge again with stale=true (the client retries without asking
//                         the user for a password)
//        kBadNonce,
//        kBadResponse,
//        kQopRefused,
//        kAlgorithmRefused -> challenge again (stale=false)
//        kReplay       -> challenge again with stale=true: a client that raced its own nonce
//                         counts recovers, an attacker learns nothing
//        kMalformed    -> 400 Bad Request
//        kUnavailable  -> 503 (the nonce-count store did not answer)
//
// Order of the checks: structure (qop and algorithm included), nonce signature, nonce age,
// response, nonce count. The age comes before the response because checking the response
// needs the HA1, i.e. a credential lookup, which a request with an old nonce must not cost:
// stale=true then goes to anyone who holds a nonce we issued and let expire, which tells them
// nothing they did not know (Kamailio's auth module answers stale nonces the same way, before
// its database query). The count comes last, so forged requests cannot advance the count of a
// legitimate client.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

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
  kMalformed,    // missing fields, bad syntax, uri differs from the Request-URI
  kUnavailable,  // the nonce-count store could not answer
  kQopRefused,   // no qop while qop is required (RFC 2069, replayable), or a qop other than auth
  kAlgorithmRefused,  // an algorithm that is not one of those offered (Settings::algorithms)
};
inline constexpr size_t kVerifyResultCount = 9;
// "ok", "stale", "bad-nonce", "bad-response", "replay", "malformed", "unavailable", "qop",
// "algorithm".
std::string_view verifyResultName(VerifyResult r);

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
  std::chrono::seconds nonceRemaining{0};  // precheck(): how long the nonce stays valid
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
    // Refuse RFC 2069 responses (no qop, so no cnonce, no nc and no replay protection
    // within the nonce lifetime) with kQopRefused. Off only for phones that cannot do qop.
    bool requireQop = true;
    // The algorithms offered in challenges, in this order, and the only ones accepted back.
    std::vector<DigestAlgorithm> algorithms{DigestAlgorithm::kMd5, DigestAlgorithm::kSha256};
    // When set: sent in every challenge and required back unchanged.
    std::string opaque;
  };
  static constexpr size_t kMaxFieldSize = 1024;  // username, uri, cnonce, realm

  explicit DigestVerifier(const NonceCodec& nonces) : DigestVerifier(nonces, Settings{}) {}
  DigestVerifier(const NonceCodec& nonces, Settings settings);

  // Structural checks that need no secret: scheme, required fields, realm, algorithm, qop,
  // nc/cnonce syntax, opaque, digest-uri against the Request-URI. Failure is kMalformed,
  // kQopRefused or kAlgorithmRefused.
  tl::expected<CredentialsInfo, Verdict> inspect(std::string_view method,
                                                 std::string_view requestUri,
                                                 const sip::DigestParams& credentials,
                                                 std::string_view realm) const;

  // inspect(), then the nonce: signature (kBadNonce) and age (kStale). Everything that can be
  // decided without the user's HA1: a request that fails here must cost no credential lookup.
  tl::expected<CredentialsInfo, Verdict> precheck(std::string_view method,
                                                  std::string_view requestUri,
                                                  const sip::DigestParams& credentials,
                                                  std::string_view realm, WallTime now) const;

  // Everything except the nonce count (no I/O): precheck(), then the response against the HA1
  // (compared in constant time): kOk, kStale, kBadNonce, kBadResponse, kQopRefused,
  // kAlgorithmRefused or kMalformed.
  Verdict verify(const VerifyInput& in) const;

  // verify(), then for kOk with qop=auth the check-and-set of the nonce count; `done` receives
  // kOk, kReplay or kUnavailable then, or the first verdict. `done` may run before this
  // returns (in-memory store) or later on the store's completion (see NonceCountStore). `in`
  // is not used after this returns.
  void verify(const VerifyInput& in, NonceCountStore& counts,
              std::function<void(Verdict)> done) const;

  // A fresh nonce and the challenge header values, one per algorithm of Settings::algorithms,
  // in that order.
  std::vector<std::string> challenge(std::string_view realm, bool stale, WallTime now) const;

  const Settings& settings() const { return settings_; }

 private:
  const NonceCodec& nonces_;
  Settings settings_;
};

// digest-uri vs Request-URI (RFC 3261 22.4 step 2): identical text, or both SIP/SIPS URIs with
// the same scheme, user, host (case-insensitive) and port (default ports filled in); URI
// parameters and headers are ignored, because phones differ in which ones they repeat.
bool digestUriMatches(std::string_view digestUri, std::string_view requestUri);

}  // namespace evosip::auth
