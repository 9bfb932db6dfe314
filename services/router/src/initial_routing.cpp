// Step 6 of the request path, initial requests: who must prove what (authentication.cpp),
// then the dialplan: the callee's bindings, a service number (its mailbox check, then an app of
// the app set), or the answer for a user without bindings.
#include <evosip/base/strings.hpp>
#include <evosip/router/router.hpp>

namespace evosip::router {

using transaction::TransactionId;

namespace {

std::string userOf(const Result<sip::NameAddr>& na) {
  return na ? std::string(na->uri.user) : std::string();
}

}  // namespace

void Router::handleInitial(TransactionId id, const sip::Message& req) {
  auto ruri = sip::parseUri(req.requestUri());
  auto from = req.from();
  if (!ruri || !from) {
    refuse(id, 400, "Bad Request-URI or From");
    return;
  }
  if (!ruri->isSip()) {
    refuse(id, 416, "Unsupported URI Scheme");
    return;
  }
  switch (initialAccess(req, *ruri, from->uri)) {
    case InitialAccess::kRelayDenied:
      refuse(id, 403, "Relaying Denied");
      return;
    case InitialAccess::kServiceDenied:
      RouterCounters::bump(counters_.serviceUnauthenticated);
      refuse(id, 403, "Service For Subscribers Only");
      return;
    case InitialAccess::kAuthenticate:
      authenticate(id, req, std::string(from->uri.user), [this, id] { routeInitial(id); });
      return;
    case InitialAccess::kOpen:
      break;
  }
  routeInitial(id);
}

void Router::routeInitial(TransactionId id) {
  std::string user;
  bool local = false;
  withRequest(id, [&](const sip::Message& m) {
    auto ruri = sip::parseUri(m.requestUri());
    local = ruri && shared_.isLocal(*ruri);
    user = ruri ? std::string(ruri->user) : std::string();
  });
  const transaction::ForwardOptions options = forwardOptions();
  if (!local) {
    // An authenticated subscriber calling out: the core routes by the Request-URI.
    forwardWithMedia(id, {transaction::Target{}}, options, shared_.settings().mediaMode);
    return;
  }
  const std::string aor = user + "@" + shared_.settings().domain;
  store_->getBindings(aor, [this, id, user, options](Result<std::vector<store::Binding>> r) {
    if (!r) {
      storeFailed(id);
      return;
    }
    if (!r->empty()) {
      std::vector<transaction::Target> targets;
      for (const auto& b : *r) {
        transaction::Target t;
        t.uri = b.contact;
        t.routeSet = b.path;
        t.q = b.q;
        targets.push_back(std::move(t));
      }
      forwardWithMedia(id, std::move(targets), options, shared_.settings().mediaMode);
      return;
    }
    if (const auto* number = shared_.dialplan().find(user)) {
      routeToService(id, *number);
      return;
    }
    answerUnreachable(id, user);
  });
}

void Router::routeToApp(TransactionId id, const ServiceNumber& number, const sip::Message& req) {
  auto apps = shared_.apps();
  const size_t pick = apps->pick(req.callId(), nowNs());
  if (pick == SIZE_MAX) {
    proxy_.respond(id, 503, "No Application Server", "Retry-After: 5\r\n");
    return;
  }
  auto from = req.from();
  auto to = req.to();
  const std::string headers = Dialplan::headerLines(
      number, from ? from->uri.user : std::string_view(), to ? to->uri.user : std::string_view());
  transaction::ForwardOptions options = forwardOptions();
  options.editBranch = [headers](size_t, const transaction::Target&, sip::MessageEditor& edit) {
    // One edit of the whole block: the lines go in just before the blank line.
    std::string_view rest = headers;
    while (!rest.empty()) {
      auto eol = rest.find("\r\n");
      auto line = rest.substr(0, eol);
      auto colon = line.find(':');
      edit.appendHeader(line.substr(0, colon), trim(line.substr(colon + 1)));
      rest.remove_prefix(eol + 2);
    }
  };
  appRequests_[id.value] = AppRequest{std::string(req.callId()), pick, apps->at(pick).uri, nowNs()};
  forwardWithMedia(id, {appTarget(apps->at(pick), apps->size() > 1)}, std::move(options),
                   number.media.value_or(shared_.settings().mediaMode));
}

void Router::routeToService(TransactionId id, const ServiceNumber& number) {
  std::string fromUser;
  std::string toUser;
  withRequest(id, [&](const sip::Message& m) {
    fromUser = userOf(m.from());
    toUser = userOf(m.to());
  });
  const auto mailbox = Dialplan::mailboxOf(number, fromUser, toUser);
  if (!mailbox) {
    withRequest(id, [&](const sip::Message& m) { routeToApp(id, number, m); });
    return;
  }
  if (!isSafeMailbox(*mailbox)) {
    RouterCounters::bump(counters_.serviceNoMailbox);
    refuse(id, 404, "No Such Mailbox");
    return;
  }
  // A mailbox is a subscriber's: the credential lookup says whether it exists (for a caller
  // depositing into its own mailbox, a hit of the cache its authentication filled).
  credentials_.get(shared_.settings().domain, *mailbox,
                   [this, id, number = &number,
                    alive = std::weak_ptr<char>(alive_)](const auth::CredentialLookup& lookup) {
                     if (alive.expired()) {
                       return;
                     }
                     switch (lookup.status) {
                       case auth::CredentialStatus::kFound:
                         withRequest(id,
                                     [&](const sip::Message& m) { routeToApp(id, *number, m); });
                         return;
                       case auth::CredentialStatus::kUnknownUser:
                         RouterCounters::bump(counters_.serviceNoMailbox);
                         refuse(id, 404, "No Such Mailbox");
                         return;
                       case auth::CredentialStatus::kUnavailable:
                         refuse(id, 503, "Credentials Unavailable", "Retry-After: 5\r\n");
                         return;
                     }
                   });
}

void Router::answerUnreachable(TransactionId id, const std::string& user) {
  // Authenticated: a local From on anything but OPTIONS (initialAccess). Anyone else learns
  // nothing about who is a subscriber, and costs no credential lookup.
  bool authenticated = false;
  withRequest(id, [&](const sip::Message& m) {
    auto from = m.from();
    authenticated = m.method() != sip::Method::kOptions && from && from->uri.isSip() &&
                    shared_.isLocal(from->uri);
  });
  if (!authenticated) {
    refuse(id, 480, "Temporarily Unavailable");
    return;
  }
  credentials_.get(
      shared_.settings().domain, user,
      [this, id, alive = std::weak_ptr<char>(alive_)](const auth::CredentialLookup& lookup) {
        if (alive.expired()) {
          return;
        }
        if (lookup.status == auth::CredentialStatus::kUnknownUser) {
          refuse(id, 404, "Not Found");
        } else {
          refuse(id, 480, "Temporarily Unavailable");
        }
      });
}

}  // namespace evosip::router
