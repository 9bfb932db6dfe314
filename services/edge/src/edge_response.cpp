#include <evosip/base/strings.hpp>
#include <evosip/edge/edge_proxy.hpp>
#include <evosip/edge/header_hygiene.hpp>
#include <evosip/log/log.hpp>
#include <evosip/sip/auth.hpp>
#include <evosip/sip/editor.hpp>
#include <evosip/sip/params.hpp>

#include "edge_internal.hpp"

namespace evosip::edge {

using detail::kBranchHexLen;
using detail::kBranchPrefix;
using detail::kCancelKey;
using transport::Destination;
using transport::Protocol;

namespace {

// The transaction hash in a branch of ours ("z9hG4bK-e" + 16 + 8 hex digits).
std::optional<uint64_t> ourTransaction(std::string_view branch) {
  if (branch.size() != kBranchPrefix.size() + kBranchHexLen ||
      branch.substr(0, kBranchPrefix.size()) != kBranchPrefix) {
    return std::nullopt;
  }
  auto hash = parseHex(branch.substr(kBranchPrefix.size(), 16));
  return hash ? std::optional<uint64_t>(*hash) : std::nullopt;
}

// The next Via after ours, in the same header or a later one.
std::optional<sip::Via> secondVia(const sip::Message& msg) {
  int index = 0;
  for (const auto& h : msg.headers()) {
    if (h.id != sip::HeaderId::kVia) {
      continue;
    }
    sip::ValueSplitter values(h.value);
    while (auto v = values.next()) {
      if (index++ == 1) {
        auto parsed = sip::parseVia(*v);
        return parsed ? std::optional<sip::Via>(*parsed) : std::nullopt;
      }
    }
  }
  return std::nullopt;
}

// A challenge with stale=true (RFC 7616 3.3) asks for a retry with a fresh nonce: the
// credentials were right.
bool staleChallenge(const sip::Message& msg) {
  for (const auto& h : msg.headers()) {
    if (h.id != sip::HeaderId::kWwwAuthenticate && h.id != sip::HeaderId::kProxyAuthenticate) {
      continue;
    }
    if (auto d = sip::parseDigest(h.value); d && iequals(d->stale, "true")) {
      return true;
    }
  }
  return false;
}

// A router's 503 that says it drains (role::kDrainingHeader). A stateful router never passes a
// 503 from further down upstream (RFC 3261 16.7 item 6: it becomes 500), so the header is the
// router's own.
bool drainRefusal(const sip::Message& msg) {
  for (const auto& h : msg.headers()) {
    if (h.id == sip::HeaderId::kOther && iequals(h.name, role::kDrainingHeader)) {
      return true;
    }
  }
  return false;
}

}  // namespace

// Responses: our Via must be on top (else dropped); it is removed and the response goes to the
// next Via's received/rport (UDP) or to the connection named in our Via's flow token.
void EdgeProxy::handleResponse(WorkerState& w, size_t worker, const sip::Message& msg,
                               const transport::Source& src) {
  auto ours = msg.topVia();
  if (!msg.find(sip::HeaderId::kVia) || !ours || !isSelfVia(ours->host, ours->port)) {
    drop(w, DropReason::kNotOurVia);
    return;
  }
  const auto branch = ours->branch();
  if (branch && onProbeResponse(w, *branch, src)) {
    return;
  }
  const auto txHash = branch ? ourTransaction(*branch) : std::nullopt;
  if (!txHash) {
    drop(w, DropReason::kNotOurVia);
    return;
  }
  const size_t router = src.protocol == Protocol::kUdp ? w.routers->find(src.remote) : SIZE_MAX;
  if (router != SIZE_MAX) {
    if (fromRouter(w, msg, *ours, *txHash, router)) {
      return;
    }
  } else if (const auto why = refusal(w, src.remote.ip, nowNs())) {
    drop(w, *why);  // a client's response is held to its address's ban and rate like its requests
    return;
  } else if (findControlCharacter(msg)) {
    drop(w, DropReason::kControlChar);  // ... and to the request's rules
    return;
  }
  relay(w, worker, msg, *ours, router != SIZE_MAX);
}

// A router's response: the router is alive; the request it answers is settled, or, refused by a
// router that drains, sent to the next router (true: the response goes no further).
bool EdgeProxy::fromRouter(WorkerState& w, const sip::Message& msg, const sip::Via& ours,
                           uint64_t txHash, size_t router) {
  auto cseq = msg.cseq();
  const bool cancel = cseq && cseq->method == sip::Method::kCancel;
  const uint64_t key = txHash ^ (cancel ? kCancelKey : 0);
  // Where the request's state is: with the worker of the egress socket our Via names, which
  // is this one (the router answered to that socket), unless the router answered elsewhere.
  const size_t owner = ownerByViaPort(ours.port, key);
  RouterTarget& t = w.routers->at(router);
  t.responses.fetch_add(1, std::memory_order_relaxed);
  t.lastResponseNs.store(nowNs(), std::memory_order_relaxed);
  if (msg.statusCode() == 503 && drainRefusal(msg)) {
    onDrainRefusal(w, owner, key, router, msg);
    return true;
  }
  settlePending(w, owner, key, msg.statusCode(), cseq && cseq->method == sip::Method::kInvite);
  return false;
}

// Sends a response on to the next Via. `byRouter`: a router sent it, not a client.
void EdgeProxy::relay(WorkerState& w, size_t worker, const sip::Message& msg, const sip::Via& ours,
                      bool byRouter) {
  auto to = responseDestination(w, msg, ours);
  if (!to) {
    return;
  }
  if (to->protocol == Protocol::kUdp && isOwnEndpoint(to->remote)) {
    drop(w, DropReason::kLoop);  // a router's Via always lies between two of ours
    return;
  }
  const bool toRouter = to->protocol == Protocol::kUdp && w.routers->find(to->remote) != SIZE_MAX;
  if (byRouter) {
    countAuthFailure(w, worker, msg, ours, to->remote.ip);
  } else if (!toRouter) {
    // The edge sends requests to clients only on behalf of a router: a client's response goes
    // back to a router. One bound elsewhere is made up (our Via on top, a victim's below): the
    // edge is no reflector.
    drop(w, DropReason::kForeignResponse);
    return;
  }
  sip::MessageEditor edit(msg);
  edit.removeFirstValue(*msg.find(sip::HeaderId::kVia));
  if (!toRouter || !byRouter) {  // crossing the platform's border, either way
    for (const auto& h : msg.headers()) {
      if (h.id == sip::HeaderId::kOther && detail::isEvosipHeader(h.name)) {
        edit.removeHeader(h);
      }
    }
  }
  edit.writeTo(w.out);
  if (!send_(*to, w.out)) {
    drop(w, DropReason::kSendFailed);
  }
}

std::optional<Destination> EdgeProxy::responseDestination(WorkerState& w, const sip::Message& msg,
                                                          const sip::Via& ours) {
  auto next = secondVia(msg);
  if (!next) {
    drop(w, DropReason::kNoRoute);
    return std::nullopt;
  }
  if (auto ft = ours.params.get("ft"); ft) {
    auto flow = tokens_.decode(*ft);
    if (!flow) {
      drop(w, DropReason::kBadFlowToken);
    }
    return flow;
  }
  auto to = transport::nextViaDestination(*next);
  if (!to || to->protocol != Protocol::kUdp) {
    drop(w, DropReason::kNoRoute);
    return std::nullopt;
  }
  return *to;
}

// A router refused the credentials a client sent (a 401/407 that is not a stale nonce): one
// failure of that client's address. A 403 is not counted: the router also sends it to
// authenticated subscribers for other reasons (too many contacts, a service refused). Every worker
// keeps its own ban table and learns every failure, so a ban holds whichever worker the kernel
// gives the source's next packet.
void EdgeProxy::countAuthFailure(WorkerState& w, size_t worker, const sip::Message& msg,
                                 const sip::Via& ours, const boost::asio::ip::address& client) {
  const int code = msg.statusCode();
  if ((code != 401 && code != 407) || !ours.params.has(detail::kCredentialsParam) ||
      !w.bans.enabled() || settings_.authBanExempt.allows(client) || staleChallenge(msg)) {
    return;
  }
  WorkerCounters::bump(w.counters.authFailures);
  const int64_t now = nowNs();
  if (w.bans.recordFailure(client, now)) {
    WorkerCounters::bump(w.counters.bans);
    log::get("edge")->warn("{} banned for {} s after {} authentication failures",
                           client.to_string(), settings_.authBan.banFor.count(),
                           settings_.authBan.failures);
  }
  for (size_t other = 0; other < workers_.size(); ++other) {
    if (other != worker) {
      post_(other,
            [this, other, client, now] { workers_[other]->bans.recordFailure(client, now); });
    }
  }
}

}  // namespace evosip::edge
