// Requests in flight to routers, failover, and the liveness of routers. A router is marked down
// only when it is dead: a request it left unanswered makes the edge ask it directly (an OPTIONS
// probe addressed to the router itself); any response to that, or to anything else sent to it
// since, proves it alive. Only a router silent to both is held out of selection. An outsider
// can make a router ignore a request, never make it ignore the probe.
//
// A router that drains refuses new requests with a 503 that carries role::kDrainingHeader: the
// request goes to the next router at once and the refusing one is held out of new work (its
// dialogs' requests still reach it). An INVITE stays in the table after a provisional response
// until its final one, watching its router (checkSetup): a call in setup whose router dies moves
// to another router, or its caller gets 408; it never waits in silence.
#include <algorithm>

#include <fmt/format.h>

#include <evosip/base/hash.hpp>
#include <evosip/edge/edge_proxy.hpp>
#include <evosip/log/log.hpp>
#include <evosip/sip/editor.hpp>

#include "edge_internal.hpp"

namespace evosip::edge {

using transport::Destination;
using transport::Protocol;

namespace {

int64_t toNs(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// A call in setup is watched at most this long after its first provisional response: longer
// than any router's Timer C (3 minutes by default, RFC 3261 16.6 item 11), which ends the call
// on the router's side.
constexpr int64_t kSetupWatchLimitNs = int64_t{200} * 1000 * 1000 * 1000;

// A CANCEL for a request the edge forwarded (RFC 3261 9.1): the same Request-URI, Call-ID, From,
// To, CSeq number and Route set, and only our Via, whose branch matches it to the INVITE.
std::string cancelFor(const sip::Message& invite, uint32_t maxForwards) {
  std::string out = "CANCEL ";
  out.append(invite.requestUri()).append(" SIP/2.0\r\n");
  bool via = false;
  for (const auto& h : invite.headers()) {
    const bool copied = h.id == sip::HeaderId::kRoute || h.id == sip::HeaderId::kFrom ||
                        h.id == sip::HeaderId::kTo || h.id == sip::HeaderId::kCallId;
    if (h.id == sip::HeaderId::kVia && !via) {
      sip::ValueSplitter values(h.value);
      out.append("Via: ").append(values.next().value_or(h.value)).append("\r\n");
      via = true;
    } else if (copied) {
      out.append(h.name).append(": ").append(h.value).append("\r\n");
    }
  }
  out.append("CSeq: ").append(std::to_string(invite.cseq() ? invite.cseq()->number : 0));
  out.append(" CANCEL\r\nMax-Forwards: ").append(std::to_string(maxForwards));
  out.append("\r\nContent-Length: 0\r\n\r\n");
  return out;
}

}  // namespace

void EdgeProxy::sendToRouter(WorkerState& w, uint64_t key, std::string_view callId, size_t router,
                             int32_t egress, const Destination& client, bool track, bool invite) {
  RouterSet& routers = *w.routers;
  RouterTarget& target = routers.at(router);
  target.forwarded.fetch_add(1, std::memory_order_relaxed);
  if (!send_(Destination{Protocol::kUdp, target.endpoint, {}, egress}, w.out)) {
    drop(w, DropReason::kSendFailed);
  }
  if (!track || settings_.routerTimeout.count() <= 0) {
    return;
  }
  PendingRequest p;
  p.bytes = w.out;
  p.callId = std::string(callId);
  p.router = router;
  p.routerEndpoint = target.endpoint;
  p.invite = invite;
  p.v6 = target.endpoint.ip.is_v6();
  p.generation = w.routersGeneration;
  p.sentNs = nowNs();
  p.deadlineNs = p.sentNs + toNs(settings_.routerTimeout);
  p.client = client;
  const size_t owner = ownerOf(egress, key);
  if (owner == w.index) {
    if (!w.pending.upsert(key, std::move(p))) {
      drop(w, DropReason::kPendingFull);
    }
    return;
  }
  handOff(w, owner, [this, owner, key, p = std::move(p)]() mutable {
    WorkerState& o = *workers_[owner];
    if (!o.pending.upsert(key, std::move(p))) {
      drop(o, DropReason::kPendingFull);
    }
  });
}

// A request that left from an egress socket of its worker's own is answered to that socket,
// which only that worker receives on: its state stays there. Otherwise (no egress sockets, or
// their workers unknown) the answer may reach any worker, and the state is kept by one chosen
// by the request alone.
size_t EdgeProxy::ownerOf(int32_t egress, uint64_t key) const {
  if (egressPerWorker_ > 0 && egress >= 0) {
    return static_cast<size_t>(egress) / egressPerWorker_;
  }
  return key % workers_.size();
}

size_t EdgeProxy::ownerByViaPort(uint16_t viaPort, uint64_t key) const {
  if (egressPerWorker_ > 0 && viaPort != 0) {
    const auto& e = settings_.egressPorts;
    for (size_t i = 0; i < e.size(); ++i) {
      if (e[i][0] == viaPort || e[i][1] == viaPort) {
        return ownerOf(static_cast<int32_t>(i), key);
      }
    }
  }
  return ownerOf(-1, key);
}

void EdgeProxy::handOff(WorkerState& w, size_t owner, std::function<void()> fn) {
  WorkerCounters::bump(w.counters.handoffs);
  post_(owner, std::move(fn));
}

void EdgeProxy::onTick(size_t worker) {
  WorkerState& w = *workers_[worker];
  refreshRouters(w);
  const int64_t now = nowNs();
  // Probes first: a router found dead is not the next choice of a request timing out now.
  checkProbes(w, now);
  if (worker == 0) {
    probeHeldDown(w, now);
  }
  w.pending.expire(
      now, [&](uint64_t key, PendingRequest&& p) { onRequestTimeout(w, key, std::move(p), now); });
  w.completed.expire(now);
}

// What a router's response means for the request it answers: a final answer ends the entry;
// a provisional one to an INVITE keeps it, which from then on watches the router (checkSetup);
// a provisional one to another request ends it (the router is alive and working on it).
void EdgeProxy::settlePending(WorkerState& w, size_t owner, uint64_t key, int code, bool invite) {
  auto settle = [this, owner, key, code, invite] {
    WorkerState& o = *workers_[owner];
    PendingRequest* p = o.pending.find(key);
    if (p == nullptr) {
      return;
    }
    if (code >= 200 || !invite || !p->invite) {
      if (code >= 300 && invite && p->invite) {
        o.completed.add(key, p->routerEndpoint, nowNs());  // for its ACK (atInvitesWorker)
      }
      o.pending.erase(key);
      return;
    }
    p->relayedProvisional = p->relayedProvisional || code > 100;
    if (!p->proceeding) {
      const int64_t now = nowNs();
      p->proceeding = true;
      p->proceedingSinceNs = now;
      p->watchSinceNs = now;
      o.pending.reschedule(key, now + toNs(settings_.setupCheck));
    }
  };
  if (owner == w.index) {
    settle();
  } else {
    handOff(w, owner, std::move(settle));
  }
}

// A router that drains refused a new request: the worker that keeps the request sends it on
// (retryAfterDrain).
void EdgeProxy::onDrainRefusal(WorkerState& w, size_t owner, uint64_t key, size_t router,
                               const sip::Message& response) {
  const transport::Endpoint from = w.routers->at(router).endpoint;
  if (owner == w.index) {
    retryAfterDrain(w, owner, key, from, response);
    return;
  }
  handOff(w, owner, [this, owner, key, from, bytes = std::string(response.buffer())] {
    if (auto msg = sip::Message::parse(bytes, settings_.limits)) {
      retryAfterDrain(*workers_[owner], owner, key, from, *msg);
    }
  });
}

// The router is held out of new work on every worker (only for a request it was working on: a
// stray 503 marks nothing). The refused request goes to the next router that takes new work,
// with the same bytes and branch (the caller's CANCEL and ACK, forwarded statelessly, compute
// the same branch and reach the same router: the draining one is out of the rendezvous choice).
// The 503 goes on to the caller, without the header, only when the request was not kept (the
// table was full) or every other router drains too.
//
// The worker may run this from a post, before any packet or tick showed it the latest router
// set, while the kept request was sent from another worker that had seen it: the set is
// refreshed first, and the request is matched to the refusal by the router's address, which
// means the same router in every generation of the set.
void EdgeProxy::retryAfterDrain(WorkerState& w, size_t worker, uint64_t key,
                                const transport::Endpoint& from, const sip::Message& response) {
  refreshRouters(w);
  PendingRequest* kept = w.pending.find(key);
  if (kept != nullptr && kept->routerEndpoint != from) {
    return;  // the request is at another router already: a late copy of the refusal
  }
  const size_t router = w.routers->find(from);
  const int64_t now = nowNs();
  size_t next = SIZE_MAX;
  PendingRequest p;
  if (kept != nullptr) {
    if (router != SIZE_MAX) {  // else the router has just left the set
      holdForDrain(w.routers->at(router), now);
    }
    p = std::move(*kept);
    w.pending.erase(key);
    next = nextRouter(w, p, router, now);
  }
  if (next == SIZE_MAX || w.routers->at(next).drainingAt(now)) {
    if (auto ours = response.topVia()) {
      relay(w, worker, response, *ours, true);
    }
    return;
  }
  WorkerCounters::bump(w.counters.drainRetries);
  resend(w, key, std::move(p), next, now);
}

void EdgeProxy::holdForDrain(RouterTarget& t, int64_t now) const {
  if (!t.drainingAt(now)) {
    log::get("edge")->info("router {} drains: out of new calls for {} ms", t.uri,
                           settings_.holdDown.count());
  }
  t.drainingUntilNs.store(now + toNs(settings_.holdDown), std::memory_order_relaxed);
}

// A router left a request unanswered. If it answered anything sent after that request, it is
// alive and chose not to answer this one (a request it found invalid, say): another router
// would do the same, so nothing more happens. Otherwise the router is probed, and the request
// goes to the next router so that its sender gets an answer; the first router stays in the set
// until the probe fails.
void EdgeProxy::onRequestTimeout(WorkerState& w, uint64_t key, PendingRequest&& p, int64_t now) {
  if (p.proceeding) {
    checkSetup(w, key, std::move(p), now);
    return;
  }
  RouterSet& routers = *w.routers;
  size_t failed = SIZE_MAX;
  if (p.generation == w.routersGeneration && p.router < routers.size()) {
    failed = p.router;
    RouterTarget& t = routers.at(failed);
    t.timeouts.fetch_add(1, std::memory_order_relaxed);
    if (t.lastResponseNs.load(std::memory_order_relaxed) > p.sentNs) {
      WorkerCounters::bump(w.counters.unanswered);
      return;
    }
    startProbe(w, failed, now);
  }
  failOver(w, key, std::move(p), failed, now);
}

// An INVITE in setup: its router sent a provisional response and owes the final one, which may
// take minutes (ringing), so the entry has no timeout of its own. Every setup_check_ms it looks
// at the router: one that answered anything since the last look is alive (its own Timer C ends
// the call); one that answered nothing is probed. When the probe fails too (the router is
// marked down), the call moves to the next router if its caller heard nothing but 100 Trying;
// otherwise the caller gets 408 (RFC 3261 16.8: Timer C fired on a branch with a provisional
// response) and the router a CANCEL, in case it is only cut off from this edge.
void EdgeProxy::checkSetup(WorkerState& w, uint64_t key, PendingRequest&& p, int64_t now) {
  RouterSet& routers = *w.routers;
  if (p.generation != w.routersGeneration) {  // the set changed: the router's index may have
    p.router = routers.find(p.routerEndpoint);
    p.generation = w.routersGeneration;
  }
  if (p.router >= routers.size() || now - p.proceedingSinceNs > kSetupWatchLimitNs) {
    return;  // the router left the set, or the setup outlived any Timer C: stop watching
  }
  RouterTarget& t = routers.at(p.router);
  // Anything from the router since the last look, even a late answer to a probe it failed,
  // proves it alive: a slow router does not lose its calls in setup.
  const bool answered = t.lastResponseNs.load(std::memory_order_relaxed) > p.watchSinceNs;
  if (answered || t.upAt(now)) {
    if (answered) {
      p.watchSinceNs = now;
      p.deadlineNs = now + toNs(settings_.setupCheck);
    } else {
      startProbe(w, p.router, now);
      p.deadlineNs = now + toNs(settings_.routerTimeout);  // the probe's verdict is in by then
    }
    w.pending.rearm(key, std::move(p));
    return;
  }
  WorkerCounters::bump(w.counters.setupRouterLost);
  if (!p.relayedProvisional) {
    const size_t failed = p.router;
    p.proceeding = false;
    failOver(w, key, std::move(p), failed, now);
    return;
  }
  if (auto invite = sip::Message::parse(p.bytes, settings_.limits)) {
    w.out = cancelFor(*invite, settings_.maxForwards);
    uint16_t port = 0;
    const int32_t egress = egressFor(w.index, p.callId, t.endpoint, port);
    send_(Destination{Protocol::kUdp, t.endpoint, {}, egress}, w.out);
  }
  answerFromKept(w, p, 408, "Request Timeout", {});
}

size_t EdgeProxy::nextRouter(WorkerState& w, const PendingRequest& p, size_t failed,
                             int64_t now) const {
  RouterSet& routers = *w.routers;
  if (p.attempts >= routers.size() + 1) {
    return SIZE_MAX;
  }
  // A router of the same address family first: the kept copy's Via (and a router-facing
  // Record-Route) name the edge's address and egress port of that family.
  const size_t next = routers.pick(p.callId, now, failed, p.v6);
  return next != SIZE_MAX ? next : routers.pick(p.callId, now, failed);
}

void EdgeProxy::failOver(WorkerState& w, uint64_t key, PendingRequest&& p, size_t failed,
                         int64_t now) {
  const size_t next = nextRouter(w, p, failed, now);
  if (next == SIZE_MAX) {
    // Nobody left: tell this client, from the request we kept. Other callers are not affected.
    answerFromKept(w, p, 503, "Service Unavailable",
                   fmt::format("Retry-After: {}\r\n",
                               std::max<int64_t>(1, toNs(settings_.holdDown) / 1000000000)));
    drop(w, DropReason::kNoRouter);
    return;
  }
  WorkerCounters::bump(w.counters.failovers);
  resend(w, key, std::move(p), next, now);
}

void EdgeProxy::resend(WorkerState& w, uint64_t key, PendingRequest&& p, size_t next, int64_t now) {
  RouterTarget& t = w.routers->at(next);
  t.forwarded.fetch_add(1, std::memory_order_relaxed);
  // The kept copy carries the Via port of the call's egress socket: the same one again.
  uint16_t port = 0;
  int32_t egress = egressFor(w.index, p.callId, t.endpoint, port);
  if (t.endpoint.ip.is_v6() != p.v6) {
    // No router of the first family is up: rewrite the copy for the other family.
    readdress(p, egress >= 0 ? port : 0);
  }
  send_(Destination{Protocol::kUdp, t.endpoint, {}, egress}, p.bytes);
  p.router = next;
  p.routerEndpoint = t.endpoint;
  p.generation = w.routersGeneration;
  p.attempts += 1;
  p.sentNs = now;
  p.deadlineNs = now + toNs(settings_.routerTimeout);
  w.pending.rearm(key, std::move(p));
}

// The edge's own final answer to a request it kept, sent to the request's client.
void EdgeProxy::answerFromKept(WorkerState& w, const PendingRequest& p, int code,
                               std::string_view reason, std::string_view extraHeaders) {
  auto req = sip::Message::parse(p.bytes, settings_.limits);
  if (!req || !req->isRequest()) {
    return;
  }
  // Our own Via is on top of the kept copy: answer with the client's Via stack.
  sip::MessageEditor strip(*req);
  strip.removeFirstValue(*req->find(sip::HeaderId::kVia));
  const std::string original = strip.str();
  if (auto orig = sip::Message::parse(original, settings_.limits)) {
    transport::Source src{p.client.protocol, p.client.remote, {}, p.client.connection};
    reply(w, *orig, src, code, reason, extraHeaders);
  }
}

// OPTIONS addressed to the router itself, Max-Forwards 0: it cannot be forwarded anywhere, and
// any response (200, 404, 483, ...) proves the router alive. One probe per router and worker at
// a time.
void EdgeProxy::startProbe(WorkerState& w, size_t router, int64_t now) {
  for (const Probe& p : w.probes) {
    if (p.router == router && p.generation == w.routersGeneration) {
      return;
    }
  }
  const RouterTarget& t = w.routers->at(router);
  const Self& self = selfFor(t.endpoint.ip);
  std::string branch(detail::kProbePrefix);
  const auto seq = static_cast<uint64_t>(now);
  appendHex(branch, seq, 16);
  appendHex(branch, router, 8);
  appendHex(branch,
            hash64(std::string_view(branch).substr(detail::kProbePrefix.size()), secretKey_), 16);
  const std::string target = t.endpoint.str();
  // From an egress socket when there are some: on its own unicast address (edge.egress_addresses)
  // the answer comes back to this edge even while the anycast address is withdrawn from it.
  uint16_t egressPort = 0;
  const int32_t egress = egressFor(w.index, target, t.endpoint, egressPort);
  const std::string sentBy =
      egress >= 0 ? fmt::format("{}:{}", self.host, egressPort) : self.hostPort;
  std::string via;
  sip::appendVia(via, "UDP", sentBy, branch);
  w.out = fmt::format(
      "OPTIONS sip:{0} SIP/2.0\r\nVia: {5}\r\nMax-Forwards: 0\r\n"
      "From: <sip:{1}>;tag={3}\r\nTo: <sip:{0}>\r\nCall-ID: {3}@{4}\r\nCSeq: 1 OPTIONS\r\n"
      "Content-Length: 0\r\n\r\n",
      target, sentBy, branch, std::string_view(branch).substr(9, 16), self.host, via);
  WorkerCounters::bump(w.counters.probesSent);
  if (!send_(Destination{Protocol::kUdp, t.endpoint, {}, egress}, w.out)) {
    drop(w, DropReason::kSendFailed);
  }
  w.probes.push_back(Probe{router, w.routersGeneration, now, now + toNs(settings_.routerTimeout)});
}

// A probe whose deadline passed: a router that answered nothing since the probe left is dead.
void EdgeProxy::checkProbes(WorkerState& w, int64_t now) {
  auto done = [&](const Probe& p) {
    if (p.deadlineNs > now) {
      return false;
    }
    if (p.generation != w.routersGeneration || p.router >= w.routers->size()) {
      return true;  // the set changed meanwhile
    }
    RouterTarget& t = w.routers->at(p.router);
    if (t.lastResponseNs.load(std::memory_order_relaxed) > p.sentNs) {
      return true;
    }
    WorkerCounters::bump(w.counters.probesFailed);
    const bool wasUp = t.upAt(now);
    if (t.holdDown(now, toNs(settings_.holdDown)) && wasUp) {
      log::get("edge")->warn("router {} answers nothing, not even a probe: down for {} ms", t.uri,
                             settings_.holdDown.count());
    }
    return true;
  };
  w.probes.erase(std::remove_if(w.probes.begin(), w.probes.end(), done), w.probes.end());
}

// True when `branch` is one of our probes' (the response is consumed here). The router it names
// answered: alive, wherever the response arrived from, if the branch is one we made.
bool EdgeProxy::onProbeResponse(WorkerState& w, std::string_view branch,
                                const transport::Source& src) {
  const auto& prefix = detail::kProbePrefix;
  if (branch.size() != prefix.size() + detail::kProbeHexLen ||
      branch.substr(0, prefix.size()) != prefix) {
    return false;
  }
  const auto fields = branch.substr(prefix.size(), 24);
  const auto router = parseHex(fields.substr(16, 8));
  const auto mac = parseHex(branch.substr(prefix.size() + 24));
  if (router && mac && *mac == hash64(fields, secretKey_) && *router < w.routers->size()) {
    RouterTarget& t = w.routers->at(*router);
    if (t.endpoint.ip == src.remote.ip) {
      const int64_t now = nowNs();
      t.lastResponseNs.store(now, std::memory_order_relaxed);
      if (!t.upAt(now)) {
        // Only our own probe (signed branch, from the router's address) ends a hold-down early.
        t.downUntilNs.store(0, std::memory_order_relaxed);
        log::get("edge")->info("router {} answers again: back in the set", t.uri);
      }
    }
  }
  return true;
}

// A router held down is probed again every router_timeout_ms (one worker does it): the first
// answer puts it back at once instead of after router_hold_down_ms, and while every router is
// down the edge is not ready, so the tier in front moves callers to another edge.
void EdgeProxy::probeHeldDown(WorkerState& w, int64_t now) {
  RouterSet& routers = *w.routers;
  for (size_t i = 0; i < routers.size(); ++i) {
    if (!routers.at(i).upAt(now)) {
      startProbe(w, i, now);  // at most one in flight per router
    }
  }
}

bool EdgeProxy::anyRouterUp() const {
  const auto set = routers();
  const int64_t now = nowNs();
  if (set->size() == 0) {
    return true;  // none configured yet: the set comes from dispatcher.set
  }
  for (size_t i = 0; i < set->size(); ++i) {
    if (set->at(i).upAt(now)) {
      return true;
    }
  }
  return false;
}

void EdgeProxy::readdress(PendingRequest& p, uint16_t egressPort) const {
  auto msg = sip::Message::parse(p.bytes, settings_.limits);
  const auto* via = msg ? msg->find(sip::HeaderId::kVia) : nullptr;
  if (via == nullptr) {
    return;
  }
  const Self& from = p.v6 ? self6_ : self4_;
  const Self& to = p.v6 ? self4_ : self6_;
  // Our Via is a header of its own, "SIP/2.0/UDP host:port;branch=...": swap the sent-by and
  // keep the branch, so the new router's answers still match the pending entry.
  const std::string_view value = via->value;
  const size_t space = value.find(' ');
  const size_t params = value.find(';');
  if (space == std::string_view::npos || params == std::string_view::npos || params < space) {
    return;
  }
  std::string newVia(value.substr(0, space + 1));
  newVia.append(to.host).append(":").append(std::to_string(egressPort != 0 ? egressPort : to.port));
  newVia.append(value.substr(params));
  sip::MessageEditor edit(*msg);
  edit.replaceValue(*via, newVia);
  // The router-facing Record-Route entry, present when the client is on another transport or
  // family, names the first family's address too.
  const std::string inner = fmt::format("<sip:{};lr>", from.hostPort);
  for (const auto& h : msg->headers()) {
    if (h.id == sip::HeaderId::kRecordRoute && h.value == inner) {
      edit.replaceValue(h, fmt::format("<sip:{};lr>", to.hostPort));
      break;
    }
  }
  p.bytes = edit.str();
  p.v6 = !p.v6;
}

}  // namespace evosip::edge
