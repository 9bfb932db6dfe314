#pragma once
// Digest authentication of one request, in the order that keeps an outsider from costing the
// platform more than a challenge (the router's authentication step):
//
//   1. no credentials for our realm                  -> challenge
//   2. DigestVerifier::precheck(): structure, qop, algorithm, nonce signature, nonce age
//        malformed                                  -> 400
//        qop missing / algorithm not offered,
//        nonce forged or for another realm          -> challenge
//        nonce expired                              -> challenge with stale=true
//   3. the credentials name another user than the request's identity -> 403
//   4. the credential lookup (CredentialCache: the api, behind the caches)
//        unavailable                                -> 503
//        unknown user                               -> challenge (as a wrong password)
//   5. DigestVerifier::verify() with the HA1, then the nonce count
//
// Steps 1-3 need no secret but the nonce key: a request with a forged, expired or misshapen
// answer never reaches the credential lookup.
//
// Threading: one per worker (it uses the worker's CredentialCache); `done` runs on that worker,
// possibly before authenticate() returns.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <evosip/auth/credential_cache.hpp>
#include <evosip/auth/nonce_count_store.hpp>
#include <evosip/auth/verifier.hpp>

namespace evosip::auth {

enum class AuthDecision {
  kProceed,                 // verified: route the request
  kChallenge,               // 401/407 with a fresh nonce (AuthOutcome::stale)
  kBadRequest,              // 400: credentials that cannot be read
  kForbidden,               // 403: credentials of another user than the request's identity
  kCredentialsUnavailable,  // 503: the credential source could not answer
  kStoreUnavailable,        // 503: the nonce-count store could not answer
};

struct AuthOutcome {
  AuthDecision decision = AuthDecision::kChallenge;
  bool stale = false;  // kChallenge: the nonce was ours but old (or its count was used)
  // Why the credentials were refused, for the failure counters; nullopt when the request
  // carried none (the first request of every client) and for kProceed.
  std::optional<VerifyResult> failure;
  std::string_view reason;  // a fixed text for logs: never client data
};

// What one request brings. Owned: the credential lookup may answer after the request's buffer
// is gone.
struct AuthAttempt {
  std::string method;       // as written, e.g. "REGISTER"
  std::string requestUri;   // the request's Request-URI
  std::string credentials;  // the Authorization / Proxy-Authorization value; empty: none
  std::string identity;     // the user the credentials must name (AOR user or From user)
};

class Authenticator {
 public:
  using Done = std::function<void(const AuthOutcome&)>;

  // realm: the one we challenge with; also the domain whose credentials are looked up.
  Authenticator(const DigestVerifier& verifier, CredentialCache& credentials,
                NonceCountStore& counts, std::string realm)
      : verifier_(verifier), credentials_(credentials), counts_(counts), realm_(std::move(realm)) {}

  // Calls `done` exactly once (unless the credential cache is destroyed first).
  void authenticate(AuthAttempt attempt, WallTime now, Done done) const;

  // The outcome of a verdict of DigestVerifier (precheck or verify).
  static AuthOutcome outcomeOf(const Verdict& v);

 private:
  void verifyWith(const AuthAttempt& attempt, const CredentialLookup& lookup,
                  DigestAlgorithm algorithm, WallTime now, const Done& done) const;

  const DigestVerifier& verifier_;
  CredentialCache& credentials_;
  NonceCountStore& counts_;
  std::string realm_;
};

}  // namespace evosip::auth
