// Authentication before resources: who must prove what before a request is routed, digest
// authentication of requests (auth::Authenticator: nonce and shape before any credential
// lookup), challenges and refusals sent once.
#include <evosip/auth/challenge.hpp>
#include <evosip/router/router.hpp>
#include <evosip/sip/auth.hpp>

#include "store_nonce_counts.hpp"

namespace evosip::router {

using transaction::TransactionId;

namespace {

// The value of the first credentials header of `kind` whose realm is ours (a request may carry
// others for other proxies); empty when there is none.
std::string credentialsFor(const sip::Message& m, auth::ChallengeKind kind,
                           std::string_view realm) {
  const auto wanted = kind == auth::ChallengeKind::kWww ? sip::HeaderId::kAuthorization
                                                        : sip::HeaderId::kProxyAuthorization;
  for (const auto& h : m.headers()) {
    if (h.id != wanted) {
      continue;
    }
    auto p = sip::parseDigest(h.value);
    if (p && p->hasRealm && sip::unquote(p->realm) == realm) {
      return std::string(h.value);
    }
  }
  return {};
}

}  // namespace

Router::InitialAccess Router::initialAccess(const sip::Message& req, const sip::Uri& ruri,
                                            const sip::Uri& from) const {
  const bool calleeLocal = shared_.isLocal(ruri);
  const bool callerLocal = from.isSip() && shared_.isLocal(from);
  if (!callerLocal && !calleeLocal) {
    return InitialAccess::kRelayDenied;  // no open relay
  }
  const sip::Method m = req.method();
  if (m == sip::Method::kAck || m == sip::Method::kCancel) {
    return InitialAccess::kOpen;  // never answered: nothing to challenge
  }
  const ServiceNumber* service = calleeLocal ? shared_.dialplan().find(ruri.user) : nullptr;
  if (service != nullptr) {
    if (service->isPublic) {
      return InitialAccess::kOpen;
    }
    // Services cost media, app and disk: only for subscribers who authenticate. A caller of
    // another domain cannot authenticate with our realm: refused, as Kamailio refuses what is
    // neither from nor to its domain.
    return callerLocal ? InitialAccess::kAuthenticate : InitialAccess::kServiceDenied;
  }
  // Inbound calls from other domains to our subscribers stay open.
  return callerLocal && m != sip::Method::kOptions ? InitialAccess::kAuthenticate
                                                   : InitialAccess::kOpen;
}

void Router::refuse(TransactionId id, int code, std::string_view reason,
                    std::string_view extraHeaders) {
  proxy_.layer().respondOnce(id, code, reason, extraHeaders);
}

void Router::challenge(TransactionId id, sip::Method method, bool stale) {
  const auto kind = auth::challengeKindFor(method);
  std::string lines;
  for (const auto& value :
       shared_.verifier().challenge(shared_.settings().domain, stale, clock_.wallNow())) {
    lines.append(auth::challengeHeaderName(kind)).append(": ").append(value).append("\r\n");
  }
  RouterCounters::bump(counters_.challenges);
  refuse(id, auth::challengeStatus(kind), auth::challengeReason(kind), lines);
}

void Router::authenticate(TransactionId id, const sip::Message& req, std::string user,
                          std::function<void()> onOk) {
  const auto method = req.method();
  auth::AuthAttempt attempt{
      .method = std::string(req.methodText()),
      .requestUri = std::string(req.requestUri()),
      .credentials = credentialsFor(req, auth::challengeKindFor(method), shared_.settings().domain),
      .identity = std::move(user),
  };
  authenticator_.authenticate(std::move(attempt), clock_.wallNow(),
                              [this, id, method, onOk = std::move(onOk),
                               alive = std::weak_ptr<char>(alive_)](const auth::AuthOutcome& o) {
                                if (!alive.expired()) {
                                  applyAuthOutcome(id, method, o, onOk);
                                }
                              });
}

void Router::applyAuthOutcome(TransactionId id, sip::Method method, const auth::AuthOutcome& o,
                              const std::function<void()>& onOk) {
  if (const auto* st = proxy_.layer().server(id); st == nullptr || st->lastStatus() >= 200) {
    return;  // answered (CANCEL) or gone during the credential lookup
  }
  if (o.failure) {
    RouterCounters::bump(counters_.authFailures[static_cast<size_t>(*o.failure)]);
  }
  switch (o.decision) {
    case auth::AuthDecision::kProceed:
      onOk();
      return;
    case auth::AuthDecision::kChallenge:
      challenge(id, method, o.stale);
      return;
    case auth::AuthDecision::kBadRequest:
      refuse(id, 400, o.reason);
      return;
    case auth::AuthDecision::kForbidden:
      refuse(id, 403, "Identity Mismatch");
      return;
    case auth::AuthDecision::kCredentialsUnavailable:
      refuse(id, 503, "Credentials Unavailable", "Retry-After: 5\r\n");
      return;
    case auth::AuthDecision::kStoreUnavailable:
      storeFailed(id);
      return;
  }
}

}  // namespace evosip::router
