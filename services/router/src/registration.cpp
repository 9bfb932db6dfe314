// Step 5 of the request path, the registrar: the AOR a REGISTER names, its authentication, the
// rules of registrar.cpp over the AOR's current bindings, then the store writes and the 200
// that lists every binding (RFC 3261 10.3).
#include <fmt/format.h>

#include <evosip/router/router.hpp>

namespace evosip::router {

using transaction::TransactionId;

namespace {

// The Path header lines of a REGISTER, echoed in its 200 (RFC 3327 5.3).
std::string pathLinesOf(const sip::Message& m) {
  std::string lines;
  for (const auto& h : m.headers()) {
    if (h.id == sip::HeaderId::kPath) {
      lines.append("Path: ").append(h.value).append("\r\n");
    }
  }
  return lines;
}

}  // namespace

void Router::handleRegister(TransactionId id, const sip::Message& req,
                            const transport::Source& src) {
  auto ruri = sip::parseUri(req.requestUri());
  auto to = req.to();
  if (!ruri || !ruri->isSip() || !to || !to->uri.isSip()) {
    refuse(id, 400, "Bad Request-URI or To");
    return;
  }
  if (!shared_.isLocal(*ruri) || !shared_.isLocal(to->uri)) {
    refuse(id, 403, "Not Our Domain");
    return;
  }
  std::string user(to->uri.user);
  if (user.empty()) {
    refuse(id, 400, "No User in To");
    return;
  }
  std::string aor = user + "@" + shared_.settings().domain;
  std::string received =
      fmt::format("{}:{}", transport::protocolName(src.protocol), src.remote.str());
  authenticate(id, req, user, [this, id, aor = std::move(aor), received = std::move(received)] {
    store_->getBindings(aor, [this, id, aor, received](Result<std::vector<store::Binding>> cur) {
      if (!cur) {
        storeFailed(id);
        return;
      }
      planRegistration(id, aor, received, *cur);
    });
  });
}

void Router::planRegistration(TransactionId id, const std::string& aor, const std::string& received,
                              const std::vector<store::Binding>& current) {
  const auto now = store::systemNow();
  RegisterPlan plan;
  std::string pathLines;
  if (!withRequest(id, [&](const sip::Message& m) {
        plan = planRegister(m, aor, current, shared_.settings().registrar, now,
                            shared_.settings().instanceId, received);
        pathLines = pathLinesOf(m);
      })) {
    return;
  }
  if (plan.code != 200) {
    RouterCounters::bump(counters_.registrationFailures);
    if (plan.limit != RegisterLimit::kNone) {
      counters_.reject(plan.limit == RegisterLimit::kContacts ? Rejection::kTooManyContacts
                                                              : Rejection::kBindingBytes);
    }
    proxy_.respond(id, plan.code, plan.reason, plan.extraHeaders);
    return;
  }
  applyRegisterPlan(id, aor, std::move(plan), std::move(pathLines), now);
}

void Router::applyRegisterPlan(TransactionId id, const std::string& aor, RegisterPlan plan,
                               std::string pathLines, store::TimePoint now) {
  // Run the writes, then answer with every current binding (RFC 3261 10.3 step 8).
  struct Pending {
    size_t left = 0;
    bool failed = false;
  };
  auto pending = std::make_shared<Pending>();
  pending->left = plan.upserts.size() + plan.removals.size();
  auto answer = [this, id, now, pathLines = std::move(pathLines),
                 resulting = std::move(plan.resulting)](const std::shared_ptr<Pending>& p) {
    if (p->failed) {
      storeFailed(id);
      return;
    }
    RouterCounters::bump(counters_.registrations);
    proxy_.respond(id, 200, "OK", pathLines + contactLines(resulting, now));
  };
  if (pending->left == 0) {
    answer(pending);
    return;
  }
  auto done = [pending, answer](Result<void> r) {
    if (!r) {
      pending->failed = true;
    }
    if (--pending->left == 0) {
      answer(pending);
    }
  };
  for (auto& b : plan.upserts) {
    store_->putBinding(std::move(b), done);
  }
  for (auto& c : plan.removals) {
    store_->removeBinding(aor, c, done);
  }
}
}  // namespace evosip::router
