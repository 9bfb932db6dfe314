#include <evosip/auth/authenticator.hpp>
#include <evosip/sip/auth.hpp>

namespace evosip::auth {

AuthOutcome Authenticator::outcomeOf(const Verdict& v) {
  switch (v.result) {
    case VerifyResult::kOk:
      return {AuthDecision::kProceed, false, std::nullopt, v.reason};
    case VerifyResult::kStale:
    case VerifyResult::kReplay:
      return {AuthDecision::kChallenge, true, v.result, v.reason};
    case VerifyResult::kMalformed:
      return {AuthDecision::kBadRequest, false, v.result, v.reason};
    case VerifyResult::kUnavailable:
      return {AuthDecision::kStoreUnavailable, false, v.result, v.reason};
    case VerifyResult::kBadNonce:
    case VerifyResult::kBadResponse:
    case VerifyResult::kQopRefused:
    case VerifyResult::kAlgorithmRefused:
      break;
  }
  return {AuthDecision::kChallenge, false, v.result, v.reason};
}

void Authenticator::authenticate(AuthAttempt attempt, WallTime now, Done done) const {
  if (attempt.credentials.empty()) {
    done({AuthDecision::kChallenge, false, std::nullopt, "no credentials"});
    return;
  }
  auto params = sip::parseDigest(attempt.credentials);
  if (!params) {
    done({AuthDecision::kBadRequest, false, VerifyResult::kMalformed, "unreadable credentials"});
    return;
  }
  auto info = verifier_.precheck(attempt.method, attempt.requestUri, *params, realm_, now);
  if (!info) {
    done(outcomeOf(info.error()));
    return;
  }
  if (info->username != attempt.identity) {
    done({AuthDecision::kForbidden, false, VerifyResult::kBadResponse, "identity mismatch"});
    return;
  }
  const DigestAlgorithm algorithm = info->algorithm;
  credentials_.get(
      realm_, info->username,
      [this, attempt = std::move(attempt), algorithm, now, done = std::move(done)](
          const CredentialLookup& lookup) { verifyWith(attempt, lookup, algorithm, now, done); });
}

void Authenticator::verifyWith(const AuthAttempt& attempt, const CredentialLookup& lookup,
                               DigestAlgorithm algorithm, WallTime now, const Done& done) const {
  if (lookup.status == CredentialStatus::kUnavailable) {
    done({AuthDecision::kCredentialsUnavailable, false, std::nullopt, "credentials unavailable"});
    return;
  }
  if (lookup.status == CredentialStatus::kUnknownUser) {
    // The same answer as a wrong password: no user enumeration.
    done({AuthDecision::kChallenge, false, VerifyResult::kBadResponse, "unknown user"});
    return;
  }
  // Parsed again: the views of the first parse pointed into the caller's frame.
  auto params = sip::parseDigest(attempt.credentials);
  if (!params) {
    done({AuthDecision::kBadRequest, false, VerifyResult::kMalformed, "unreadable credentials"});
    return;
  }
  const VerifyInput in{.method = attempt.method,
                       .requestUri = attempt.requestUri,
                       .credentials = *params,
                       .realm = realm_,
                       .ha1 = lookup.credentials.ha1(algorithm),
                       .now = now};
  verifier_.verify(in, counts_, [done](Verdict v) { done(outcomeOf(v)); });
}

}  // namespace evosip::auth
