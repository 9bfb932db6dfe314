// Digest authentication of requests on the router: challenges, the nonce and response checks,
// and the credential fetch they need.
#include <evosip/auth/challenge.hpp>
#include <evosip/router/router.hpp>
#include <evosip/sip/auth.hpp>

#include "store_nonce_counts.hpp"

namespace evosip::router {

using transaction::TransactionId;

void Router::challenge(TransactionId id, sip::Method method, bool stale) {
  const auto kind = auth::challengeKindFor(method);
  const auto& realm = shared_.settings().domain;
  const std::string nonce = shared_.nonces().issue(realm, std::chrono::system_clock::now());
  std::string lines;
  for (auto algorithm : shared_.settings().challengeAlgorithms) {
    lines.append(auth::challengeHeaderName(kind)).append(": ");
    lines.append(auth::buildChallenge(algorithm, {.realm = realm, .nonce = nonce, .stale = stale}));
    lines.append("\r\n");
  }
  RouterCounters::bump(counters_.challenges);
  proxy_.respond(id, auth::challengeStatus(kind), auth::challengeReason(kind), lines);
}

void Router::authenticate(TransactionId id, const sip::Message& req, std::string user,
                          std::function<void()> onOk) {
  const auto kind = auth::challengeKindFor(req.method());
  const std::string realm = shared_.settings().domain;
  // The credentials for our realm (a request may carry others for other proxies).
  // Captures by value: it runs again after the credential fetch, when this frame is gone.
  auto findCredentials = [kind, realm](const sip::Message& m) -> std::optional<sip::DigestParams> {
    const auto wanted = kind == auth::ChallengeKind::kWww ? sip::HeaderId::kAuthorization
                                                          : sip::HeaderId::kProxyAuthorization;
    for (const auto& h : m.headers()) {
      if (h.id != wanted) {
        continue;
      }
      auto p = sip::parseDigest(h.value);
      if (p && p->hasRealm && sip::unquote(p->realm) == realm) {
        return *p;
      }
    }
    return std::nullopt;
  };
  auto params = findCredentials(req);
  if (!params) {
    challenge(id, req.method(), false);
    return;
  }
  auto info = shared_.verifier().inspect(req.methodText(), req.requestUri(), *params, realm);
  if (!info) {
    RouterCounters::bump(counters_.authFailures[static_cast<size_t>(info.error().result)]);
    if (info.error().result == auth::VerifyResult::kMalformed) {
      proxy_.respond(id, 400, info.error().reason);
    } else {
      challenge(id, req.method(), false);
    }
    return;
  }
  if (info->username != user) {
    RouterCounters::bump(
        counters_.authFailures[static_cast<size_t>(auth::VerifyResult::kBadResponse)]);
    proxy_.respond(id, 403, "Identity Mismatch");
    return;
  }
  const auto algorithm = info->algorithm;
  credentials_.get(
      shared_.settings().domain, info->username,
      [this, id, algorithm, findCredentials, onOk = std::move(onOk),
       alive = std::weak_ptr<char>(alive_)](const auth::CredentialLookup& lookup) {
        if (alive.expired()) {
          return;
        }
        withRequest(id, [&](const sip::Message& m) {
          if (lookup.status == auth::CredentialStatus::kUnavailable) {
            proxy_.respond(id, 503, "Credentials Unavailable", "Retry-After: 5\r\n");
            return;
          }
          if (lookup.status == auth::CredentialStatus::kUnknownUser) {
            RouterCounters::bump(
                counters_.authFailures[static_cast<size_t>(auth::VerifyResult::kBadResponse)]);
            challenge(id, m.method(), false);
            return;
          }
          auto p = findCredentials(m);
          if (!p) {
            challenge(id, m.method(), false);
            return;
          }
          const sip::DigestParams params = *p;
          auth::VerifyInput in{m.methodText(),
                               m.requestUri(),
                               params,
                               shared_.settings().domain,
                               lookup.credentials.ha1(algorithm),
                               std::chrono::system_clock::now()};
          const auto method = m.method();
          shared_.verifier().verify(
              in, *nonceCounts_,
              [this, id, method, onOk, alive = std::weak_ptr<char>(alive_)](auth::Verdict v) {
                if (alive.expired()) {
                  return;
                }
                switch (v.result) {
                  case auth::VerifyResult::kOk:
                    onOk();
                    return;
                  case auth::VerifyResult::kStale:
                    challenge(id, method, true);
                    return;
                  case auth::VerifyResult::kMalformed:
                    RouterCounters::bump(counters_.authFailures[static_cast<size_t>(v.result)]);
                    proxy_.respond(id, 400, v.reason);
                    return;
                  case auth::VerifyResult::kUnavailable:
                    storeFailed(id);
                    return;
                  default:
                    RouterCounters::bump(counters_.authFailures[static_cast<size_t>(v.result)]);
                    challenge(id, method, false);
                    return;
                }
              });
        });
      });
}

}  // namespace evosip::router
