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

void Router::handleInitial(TransactionId id, const sip::Message& req,
                           const transaction::PreprocessedRoute& route) {
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
  // What routing needs of the request, read now: after the authentication it goes on without a
  // second parse.
  const bool local = shared_.isLocal(*ruri);
  std::string user(ruri->user);
  switch (initialAccess(req, *ruri, from->uri)) {
    case InitialAccess::kRelayDenied:
      refuse(id, 403, "Relaying Denied");
      return;
    case InitialAccess::kServiceDenied:
      RouterCounters::bump(counters_.serviceUnauthenticated);
      refuse(id, 403, "Service For Subscribers Only");
      return;
    case InitialAccess::kAuthenticate:
      authenticate(id, req, std::string(from->uri.user),
                   [this, id, user = std::move(user), local, hops = RequestHops::of(route)] {
                     routeInitial(id, user, local, hops);
                   });
      return;
    case InitialAccess::kOpen:
      break;
  }
  routeInitial(id, user, local, RequestHops::of(route));
}

void Router::routeInitial(TransactionId id, const std::string& user, bool local,
                          const RequestHops& hops) {
  if (!local) {
    // An authenticated subscriber calling out: the core routes by the Request-URI.
    forwardWithMedia(id, PendingForward{{transaction::Target{}}, forwardOptions(), hops},
                     shared_.settings().mediaMode);
    return;
  }
  const std::string aor = user + "@" + shared_.settings().domain;
  store_->getBindings(aor, [this, id, user, hops](Result<std::vector<store::Binding>> r) {
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
      forwardWithMedia(id, PendingForward{std::move(targets), forwardOptions(), hops},
                       shared_.settings().mediaMode);
      return;
    }
    if (const auto* number = shared_.dialplan().find(user)) {
      routeToService(id, *number, hops);
      return;
    }
    answerUnreachable(id, user);
  });
}

void Router::routeToApp(TransactionId id, const ServiceNumber& number, const sip::Message& req,
                        const RequestHops& hops) {
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
  forwardWithMedia(
      id, PendingForward{{appTarget(apps->at(pick), apps->size() > 1)}, std::move(options), hops},
      number.media.value_or(shared_.settings().mediaMode));
}

void Router::routeToService(TransactionId id, const ServiceNumber& number,
                            const RequestHops& hops) {
  std::optional<std::string> mailbox;
  withRequest(id, [&](const sip::Message& m) {
    mailbox = Dialplan::mailboxOf(number, userOf(m.from()), userOf(m.to()));
    if (!mailbox) {
      routeToApp(id, number, m, hops);  // no mailbox to check: on with this parse
    }
  });
  if (!mailbox) {
    return;  // routed, or the request is gone
  }
  if (!isSafeMailbox(*mailbox)) {
    RouterCounters::bump(counters_.serviceNoMailbox);
    refuse(id, 404, "No Such Mailbox");
    return;
  }
  // A mailbox is a subscriber's: the credential lookup says whether it exists (for a caller
  // depositing into its own mailbox, a hit of the cache its authentication filled).
  credentials_.get(shared_.settings().domain, *mailbox,
                   [this, id, number = &number, hops,
                    alive = std::weak_ptr<char>(alive_)](const auth::CredentialLookup& lookup) {
                     if (alive.expired()) {
                       return;
                     }
                     switch (lookup.status) {
                       case auth::CredentialStatus::kFound:
                         withRequest(
                             id, [&](const sip::Message& m) { routeToApp(id, *number, m, hops); });
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
