#include <memory>

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
  // On the heap: the parse's views into the credentials stay valid until the lookup answers.
  auto checked = std::make_shared<Checked>();
  checked->attempt = std::move(attempt);
  const AuthAttempt& a = checked->attempt;
  auto params = sip::parseDigest(a.credentials);
  if (!params) {
    done({AuthDecision::kBadRequest, false, VerifyResult::kMalformed, "unreadable credentials"});
    return;
  }
  auto info = verifier_.precheck(a.method, a.requestUri, *params, realm_, now);
  if (!info) {
    done(outcomeOf(info.error()));
    return;
  }
  if (info->username != a.identity) {
    done({AuthDecision::kForbidden, false, VerifyResult::kBadResponse, "identity mismatch"});
    return;
  }
  checked->params = *params;
  checked->info = std::move(*info);
  credentials_.get(realm_, checked->info.username,
                   [this, checked, now, done = std::move(done)](const CredentialLookup& lookup) {
                     verifyWith(*checked, lookup, now, done);
                   });
}

void Authenticator::verifyWith(const Checked& checked, const CredentialLookup& lookup, WallTime now,
                               const Done& done) const {
  if (lookup.status == CredentialStatus::kUnavailable) {
    done({AuthDecision::kCredentialsUnavailable, false, std::nullopt, "credentials unavailable"});
    return;
  }
  if (lookup.status == CredentialStatus::kUnknownUser) {
    // The same answer as a wrong password: no user enumeration.
    done({AuthDecision::kChallenge, false, VerifyResult::kBadResponse, "unknown user"});
    return;
  }
  const VerifyInput in{.method = checked.attempt.method,
                       .requestUri = checked.attempt.requestUri,
                       .credentials = checked.params,
                       .realm = realm_,
                       .ha1 = lookup.credentials.ha1(checked.info.algorithm),
                       .now = now};
  verifier_.verify(in, checked.info, counts_, [done](Verdict v) { done(outcomeOf(v)); });
}

}  // namespace evosip::auth
