#include <algorithm>

#include <boost/asio/ip/address.hpp>

#include <evosip/base/hash.hpp>
#include <evosip/base/hex.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/sip/address.hpp>
#include <evosip/sip/params.hpp>
#include <evosip/sip/response_address.hpp>
#include <evosip/sip/via_value.hpp>
#include <evosip/transaction/proxy_core.hpp>
#include <evosip/transport/address.hpp>
#include <evosip/transport/response_destination.hpp>

#include "message_text.hpp"

namespace evosip::transaction {
namespace {

using transport::Protocol;

std::optional<Protocol> protocolOf(std::string_view name) {
  if (name.empty() || iequals(name, "udp")) {
    return Protocol::kUdp;
  }
  if (iequals(name, "tcp")) {
    return Protocol::kTcp;
  }
  if (iequals(name, "tls")) {
    return Protocol::kTls;
  }
  if (iequals(name, "ws")) {
    return Protocol::kWs;
  }
  if (iequals(name, "wss")) {
    return Protocol::kWss;
  }
  return std::nullopt;
}

// RFC 3261 16.7 item 6: among 4xx, these say most about how to succeed on a retry.
bool preferred4xx(int code) {
  return code == 401 || code == 407 || code == 415 || code == 420 || code == 484;
}

// Lower is better: the lowest class among 3xx-5xx, preferred 4xx first within 4xx.
int rank(int code) {
  const int cls = code / 100;
  return cls * 10 + ((cls == 4 && preferred4xx(code)) ? 0 : 1);
}

}  // namespace

Result<sip::Uri> PreprocessedRoute::nextHopUri() const {
  return nextRoute.empty() ? sip::parseHopUri(requestUri, sip::HopText::kUri)
                           : sip::parseHopUri(nextRoute, sip::HopText::kRoute);
}

std::optional<Destination> ProxyUser::resolve(const sip::Uri& uri) {
  if (!uri.isSip()) {
    return std::nullopt;
  }
  auto ip = transport::parseNumericHost(uri.host);
  auto proto =
      protocolOf(uri.params.get("transport")
                     .value_or(uri.scheme == sip::UriScheme::kSips ? std::string_view("tls")
                                                                   : std::string_view{}));
  if (!ip || !proto) {
    return std::nullopt;
  }
  return Destination{*proto, {*ip, uri.portOrDefault()}, {}};
}

ProxyCore::ProxyCore(ProxySettings settings, LayerSettings layerSettings,
                     const runtime::Clock& clock, TransactionLayer::SendFn send, ProxyUser& user)
    : settings_(std::move(settings)),
      clock_(clock),
      send_(send),
      user_(user),
      layer_(layerSettings, clock, std::move(send), *this) {
  for (const auto& [host, port] : settings_.self) {
    if (auto ip = transport::parseNumericHost(host)) {
      selfEndpoints_.push_back({*ip, port == 0 ? uint16_t{5060} : port});
    }
  }
  if (auto ip = transport::parseNumericHost(settings_.viaHost)) {
    std::vector<uint16_t> ports = settings_.alsoViaPorts;
    ports.push_back(settings_.egressPort[0]);
    ports.push_back(settings_.egressPort[1]);
    for (uint16_t p : ports) {
      if (p != 0) {
        selfEndpoints_.push_back({*ip, p});
      }
    }
  }
}

bool ProxyCore::isSelf(const sip::Uri& uri) const {
  if (!uri.isSip()) {
    return false;
  }
  const uint16_t uriPort = uri.portOrDefault();
  for (const auto& [host, port] : settings_.self) {
    const uint16_t p = port == 0 ? 5060 : port;
    if (iequals(uri.host, host) && uriPort == p) {
      return true;
    }
  }
  // An egress port of ours (its answers come back there; a request sent there is for us too).
  return iequals(uri.host, settings_.viaHost) &&
         std::find(settings_.alsoViaPorts.begin(), settings_.alsoViaPorts.end(), uriPort) !=
             settings_.alsoViaPorts.end();
}

bool ProxyCore::isSelfDestination(const Destination& to) const {
  const auto& ip = to.remote.ip;
  for (const auto& self : selfEndpoints_) {
    if (self.port != to.remote.port) {
      continue;
    }
    // A wildcard listen address is reached through any local address, loopback included.
    if (self.ip == ip || ip.is_unspecified() || (self.ip.is_unspecified() && ip.is_loopback())) {
      return true;
    }
  }
  return false;
}

bool ProxyCore::isOurVia(const sip::Via& via) const {
  const uint16_t port = sip::sentByPort(via);
  if (!iequals(via.host, settings_.viaHost)) {
    return false;
  }
  return port == settings_.viaPort ||
         std::find(settings_.alsoViaPorts.begin(), settings_.alsoViaPorts.end(), port) !=
             settings_.alsoViaPorts.end();
}

// ---- requests ----

void ProxyCore::onRequest(TransactionId server, const sip::Message& request, const Source& src) {
  if (request.method() == sip::Method::kCancel) {
    // No INVITE transaction matched it (RFC 3261 9.2, 16.10).
    respond(server, 481, "Call/Transaction Does Not Exist");
    return;
  }
  user_.onRequest(server, request, src);
  // 100 at once stops the upstream's Timer A (16.2), unless the user already answered in this
  // pass (a challenge, a refusal): then a 100 would only double the bytes that go back to a
  // source nobody has verified.
  if (request.method() == sip::Method::kInvite) {
    if (const auto* st = layer_.server(server); st != nullptr && st->lastStatus() == 0) {
      layer_.respond(server, 100);
    }
  }
}

bool ProxyCore::checkRequest(TransactionId server, const sip::Message& request) {
  if (request.find(sip::HeaderId::kMaxForwards) != nullptr) {
    auto mf = request.maxForwards();
    if (!mf) {
      refuse(server, 400, "Bad Max-Forwards");
      return false;
    }
    if (*mf == 0) {
      ++stats_.tooManyHops;
      refuse(server, 483, "Too Many Hops");
      return false;
    }
  }
  if (looped(request)) {
    ++stats_.loops;
    refuse(server, 482, "Loop Detected");
    return false;
  }
  if (const auto* pr = request.find(sip::HeaderId::kProxyRequire)) {
    out_.assign("Unsupported: ").append(pr->value).append("\r\n");
    std::string extra = std::move(out_);
    refuse(server, 420, "Bad Extension", extra);
    return false;
  }
  return true;
}

uint32_t ProxyCore::loopHash(const sip::Message& msg, std::string_view requestUri) {
  uint64_t h = hash64(requestUri, 0x6c6f6f70);
  h = hash64(msg.callId(), h);
  h = hash64(sip::tagOf(msg.from()), h);
  h = hash64(sip::tagOf(msg.to()), h);
  if (auto cseq = msg.cseq()) {
    h = mix64(h ^ cseq->number);
  }
  for (const auto& hf : msg.headers()) {
    if (hf.id == sip::HeaderId::kProxyRequire || hf.id == sip::HeaderId::kProxyAuthorization) {
      h = hash64(hf.value, h);
    }
  }
  return static_cast<uint32_t>(h ^ (h >> 32));
}

bool ProxyCore::looped(const sip::Message& request) const {
  std::optional<uint32_t> hash;
  for (const auto& h : request.headers()) {
    if (h.id != sip::HeaderId::kVia) {
      continue;
    }
    sip::ValueSplitter values(h.value);
    while (auto v = values.next()) {
      auto via = sip::parseVia(*v);
      if (!via || !isOurVia(*via)) {
        continue;
      }
      auto branch = via->branch();
      auto loop = branch ? TransactionLayer::loopOfBranch(*branch) : std::nullopt;
      if (!loop) {
        continue;
      }
      if (!hash) {
        hash = loopHash(request, request.requestUri());
      }
      if (*loop == *hash) {
        return true;
      }
    }
  }
  return false;
}

std::string ProxyCore::forwardedMaxForwards(const sip::Message& msg) const {
  // 16.6 item 3, capped: a request received with 255 leaves with the cap.
  const uint32_t cap = std::max<uint32_t>(settings_.maxForwards, 1);
  const sip::HeaderField* h = msg.find(sip::HeaderId::kMaxForwards);
  const uint32_t received = h != nullptr ? msg.maxForwards().value_or(70) : cap + 1;
  return std::to_string(std::min(received == 0 ? 0 : received - 1, cap));
}

void ProxyCore::dropHeaders(const sip::Message& msg, const ForwardOptions& options,
                            sip::MessageEditor& edit) const {
  if (options.dropHeaderPrefix.empty()) {
    return;
  }
  const std::string_view prefix = options.dropHeaderPrefix;
  for (const auto& h : msg.headers()) {
    if (h.id == sip::HeaderId::kOther && h.name.size() >= prefix.size() &&
        iequals(h.name.substr(0, prefix.size()), prefix)) {
      edit.removeHeader(h);
    }
  }
}

TransactionId ProxyCore::serverOf(TransactionId client) const {
  auto it = branchOf_.find(client.value);
  return it == branchOf_.end() ? TransactionId{} : TransactionId{it->second.first};
}

bool ProxyCore::respond(TransactionId server, int code, std::string_view reason,
                        std::string_view extraHeaders) {
  ++stats_.localReplies;
  return layer_.respond(server, code, reason, extraHeaders);
}

bool ProxyCore::refuse(TransactionId server, int code, std::string_view reason,
                       std::string_view extraHeaders) {
  ++stats_.localReplies;
  return layer_.respondOnce(server, code, reason, extraHeaders);
}

ProxyCore::RoutePlan ProxyCore::planRoutes(const sip::Message& msg) const {
  RoutePlan plan;
  plan.info.requestUri = msg.requestUri();
  // Strict-route compatibility (16.4): a strict router put our Record-Route URI (which always
  // has lr and no user part) into the Request-URI and the real target at the end of Route.
  auto ruri = sip::parseUri(msg.requestUri());
  if (ruri && isSelf(*ruri) && ruri->looseRouting() && ruri->user.empty()) {
    for (const auto& h : msg.headers()) {
      if (h.id != sip::HeaderId::kRoute) {
        continue;
      }
      sip::ValueSplitter values(h.value);
      while (auto v = values.next()) {
        plan.strictLastRoute = *v;
      }
    }
    if (!plan.strictLastRoute.empty()) {
      if (auto na = sip::parseNameAddr(plan.strictLastRoute)) {
        plan.info.requestUri = na->uriText;
        plan.info.strictFixup = true;
      } else {
        plan.strictLastRoute = {};
      }
    }
  }
  // Loose routing: the leading Route entries that name us are removed.
  bool leading = true;
  for (const auto& h : msg.headers()) {
    if (h.id != sip::HeaderId::kRoute) {
      continue;
    }
    sip::ValueSplitter values(h.value);
    while (auto v = values.next()) {
      if (v->data() == plan.strictLastRoute.data()) {
        continue;
      }
      auto na = sip::parseNameAddr(*v);
      if (leading && na && isSelf(na->uri)) {
        plan.info.poppedOwnRoute = true;
        continue;
      }
      leading = false;
      if (plan.info.nextRoute.empty()) {
        plan.info.nextRoute = *v;
      }
    }
  }
  return plan;
}

PreprocessedRoute ProxyCore::preprocessedRoute(const sip::Message& request) const {
  return planRoutes(request).info;
}

void ProxyCore::applyRoutes(const sip::Message& msg, const RoutePlan& plan,
                            sip::MessageEditor& edit) const {
  if (!plan.info.poppedOwnRoute && !plan.info.strictFixup) {
    return;
  }
  bool leading = true;
  for (const auto& h : msg.headers()) {
    if (h.id != sip::HeaderId::kRoute) {
      continue;
    }
    std::string kept;
    bool changed = false;
    sip::ValueSplitter values(h.value);
    while (auto v = values.next()) {
      bool drop = v->data() == plan.strictLastRoute.data();
      if (!drop && leading) {
        auto na = sip::parseNameAddr(*v);
        drop = na && isSelf(na->uri);
        leading = drop;
      }
      if (drop) {
        changed = true;
        continue;
      }
      if (!kept.empty()) {
        kept.append(", ");
      }
      kept.append(*v);
    }
    if (!changed) {
      continue;
    }
    if (kept.empty()) {
      edit.removeHeader(h);
    } else {
      edit.replaceValue(h, kept);
    }
  }
}

std::string ProxyCore::viaValue(Destination& to, std::string_view branch, bool egress) const {
  uint16_t port = settings_.viaPort;
  if (egress && to.protocol == transport::Protocol::kUdp && !to.connection.valid() &&
      settings_.egress >= 0) {
    if (uint16_t p = settings_.egressPort[to.remote.ip.is_v6() ? 1 : 0]; p != 0) {
      to.egress = settings_.egress;
      port = p;
    }
  }
  std::string v;
  sip::appendVia(v, transport::viaTransportName(to.protocol), settings_.viaHost, port, branch);
  return v;
}

void ProxyCore::recordRoute(const ForwardOptions& options, transport::Protocol upstream,
                            transport::Protocol downstream, sip::MessageEditor& edit) {
  auto uriFor = [&](transport::Protocol p) -> const std::string& {
    return p == transport::Protocol::kTcp && !options.recordRouteTcp.empty()
               ? options.recordRouteTcp
               : options.recordRoute;
  };
  const std::string& down = uriFor(downstream);
  const std::string& up = uriFor(upstream);
  edit.prependHeader("Record-Route", "<" + down + ">");
  if (&up != &down) {
    edit.prependHeader("Record-Route", "<" + up + ">");  // below the downstream's entry
  }
}

std::optional<Destination> ProxyCore::nextHopOf(const Result<sip::Uri>& uri) {
  if (!uri) {
    return std::nullopt;
  }
  return user_.resolve(*uri);
}

std::optional<Destination> ProxyCore::branchDestination(const Target& target, const RoutePlan& plan,
                                                        bool& routed) {
  // 16.6: the next hop is the first Route (ours first, then the request's), else the URI.
  routed = false;
  if (target.nextHop) {
    return target.nextHop;
  }
  if (!target.routeSet.empty()) {
    routed = true;
    return nextHopOf(sip::parseHopUri(target.routeSet.front(), sip::HopText::kRoute));
  }
  routed = !plan.info.nextRoute.empty();
  if (routed || target.uri.empty()) {
    return nextHopOf(plan.info.nextHopUri());
  }
  return nextHopOf(sip::parseHopUri(target.uri, sip::HopText::kUri));
}

std::string ProxyCore::branchRequest(const sip::Message& msg, const RoutePlan& plan,
                                     const Context& ctx, size_t index, Destination& to,
                                     bool routed) {
  const Target& target = ctx.targets[index];
  const ForwardOptions& options = ctx.options;
  const std::string_view ruri = target.uri.empty() ? plan.info.requestUri : target.uri;
  sip::MessageEditor edit(msg);
  // 18.2.1: the upstream's Via says where we received it, so that responses forwarded
  // statelessly later (2xx retransmissions) go where the transaction's did.
  if (auto via = msg.topVia()) {
    transport::stampReceived(edit, msg, *via, ctx.upstream.remote, viaScratch_);
  }
  if (!target.uri.empty() || plan.info.strictFixup) {
    edit.replaceRequestUri(ruri);
  }
  applyRoutes(msg, plan, edit);
  const std::string mf = forwardedMaxForwards(msg);
  const sip::HeaderField* mfHeader = msg.find(sip::HeaderId::kMaxForwards);
  if (mfHeader != nullptr) {
    edit.replaceValue(*mfHeader, mf);
  }
  const std::string branch = layer_.newBranch(loopHash(msg, ruri));
  edit.prependHeader("Via", viaValue(to, branch, !routed));
  if (!options.recordRoute.empty() && sip::createsDialog(msg.method())) {
    recordRoute(options, ctx.upstream.protocol, to.protocol, edit);
  }
  if (!target.routeSet.empty()) {
    std::string routes;
    for (const auto& r : target.routeSet) {
      routes.append(routes.empty() ? "" : ", ").append(r);
    }
    edit.prependHeader("Route", routes);
  }
  if (mfHeader == nullptr) {
    edit.prependHeader("Max-Forwards", mf);
  }
  dropHeaders(msg, options, edit);
  if (options.editBranch) {
    options.editBranch(index, target, edit);
  }
  return edit.str();
}

void ProxyCore::forward(TransactionId server, std::vector<Target> targets, ForwardOptions options) {
  const ServerTransaction* st = layer_.server(server);
  if (st == nullptr || st->lastStatus() >= 200 || contexts_.count(server.value) != 0) {
    return;
  }
  if (targets.empty()) {
    respond(server, 480, "Temporarily Unavailable");
    return;
  }
  auto msg = sip::Message::parse(st->request());
  if (!msg) {
    respond(server, 500, "Server Internal Error");
    return;
  }
  if (msg->find(sip::HeaderId::kMaxForwards) != nullptr && msg->maxForwards().value_or(0) == 0) {
    ++stats_.tooManyHops;
    respond(server, 483, "Too Many Hops");  // never a hop more than the request allows
    return;
  }
  ++stats_.forwarded;
  std::stable_sort(targets.begin(), targets.end(),
                   [](const Target& a, const Target& b) { return a.q > b.q; });
  Context& ctx = contexts_[server.value];
  ctx.server = server;
  ctx.invite = msg->method() == sip::Method::kInvite;
  ctx.upstream = st->responseDestination();
  ctx.branches.resize(targets.size());
  ctx.targets = std::move(targets);
  ctx.options = std::move(options);

  const RoutePlan plan = planRoutes(*msg);
  const auto count = static_cast<uint32_t>(ctx.branches.size());
  for (uint32_t i = 0; i < count; ++i) {
    startBranch(ctx, *msg, plan, i);  // a branch that fails at once may add one (retarget)
  }
  if (auto it = contexts_.find(server.value); it != contexts_.end()) {
    finishIfDone(it->second);  // every branch may have failed at once
  }
}

void ProxyCore::startBranch(Context& ctx, const sip::Message& msg, const RoutePlan& plan,
                            uint32_t index) {
  bool routed = false;
  std::optional<Destination> to = branchDestination(ctx.targets[index], plan, routed);
  if (!to) {
    branchFinal(ctx, index, 503, nullptr);  // nowhere to send it (RFC 3261 16.7: as a 503)
    return;
  }
  if (isSelfDestination(*to)) {
    ++stats_.selfBranches;  // a binding or route naming us: never a request to ourselves
    branchFinal(ctx, index, 482, nullptr);
    return;
  }
  auto id = layer_.sendRequest(branchRequest(msg, plan, ctx, index, *to, routed), *to);
  if (!id) {
    branchFinal(ctx, index, 503, nullptr);  // transport error (16.7: as a 503)
    return;
  }
  ++stats_.branches;
  ctx.branches[index].client = *id;
  branchOf_[id->value] = {ctx.server.value, index};
  if (ctx.invite) {
    armTimerC(ctx, index);
  }
  if (const auto silence = ctx.targets[index].silenceTimeout; silence.count() > 0) {
    timers_.push(TimerEntry{clock_.now() + silence, ctx.server.value, index, true});
  }
}

void ProxyCore::onCancel(TransactionId invite, const sip::Message&) {
  ++stats_.cancelled;
  auto it = contexts_.find(invite.value);
  if (it == contexts_.end()) {
    respond(invite, 487, "Request Terminated");  // not forwarded yet
    return;
  }
  Context& ctx = it->second;
  // 16.10: cancel the pending branches and let their final responses come back; the best of
  // them goes upstream as usual. A callee whose 200 crossed the CANCEL thus answers the caller
  // with that 200 (which the caller ACKs and ends with a BYE), never with a 487 first.
  ctx.cancelled = true;
  for (uint32_t i = 0; i < ctx.branches.size(); ++i) {
    Branch& br = ctx.branches[i];
    if (br.done) {
      continue;
    }
    layer_.cancel(br.client);  // without a provisional yet, the layer sends it on the first one
    if (br.provisional) {
      // No Timer C any more: the layer gives the INVITE up 64*T1 after its CANCEL (9.1), and
      // onClientError then counts the branch as a 487.
      br.timerCArmed = false;
    } else {
      // Nothing heard from it yet: count it as a 487 now rather than keep the caller waiting
      // for a callee that may never answer.
      br.done = true;
      br.timerCArmed = false;
      if (ctx.bestCode == 0 || rank(487) < rank(ctx.bestCode)) {
        ctx.bestCode = 487;
        ctx.bestBranch = i;
        ctx.best.clear();
      }
    }
  }
  finishIfDone(ctx);
}

void ProxyCore::onAck(const sip::Message& ack, const Source& source) {
  if (user_.onAck(ack, source)) {
    forwardAck(ack);
  }
}

bool ProxyCore::forwardAck(const sip::Message& ack, const ForwardOptions& options) {
  // The ACK of a 2xx: forwarded statelessly by its Route / Request-URI (16.11).
  auto mf = ack.maxForwards();
  if (mf && *mf == 0) {
    return false;
  }
  auto topVia = ack.topVia();
  if (!topVia) {
    return false;
  }
  const RoutePlan plan = planRoutes(ack);
  auto to = nextHopOf(plan.info.nextHopUri());
  if (!to || isSelfDestination(*to)) {
    return false;
  }
  sip::MessageEditor edit(ack);
  if (plan.info.strictFixup) {
    edit.replaceRequestUri(plan.info.requestUri);
  }
  applyRoutes(ack, plan, edit);
  if (const auto* h = ack.find(sip::HeaderId::kMaxForwards); h && mf) {
    edit.replaceValue(*h, forwardedMaxForwards(ack));
  } else {
    edit.prependHeader("Max-Forwards", forwardedMaxForwards(ack));
  }
  dropHeaders(ack, options, edit);
  // A stateless branch: the same for every retransmission of this ACK (16.11).
  std::string branch = "z9hG4bK";
  appendHex(branch, hash64(topVia->branch().value_or(topVia->text), 0xac));
  branch.push_back('s');
  edit.prependHeader("Via", viaValue(*to, branch, plan.info.nextRoute.empty()));
  edit.writeTo(out_);
  ++stats_.statelessForwarded;
  send_(*to, out_);
  return true;
}

// ---- responses ----

void ProxyCore::resumeResponse(TransactionId client, std::string_view bytes) {
  auto response = sip::Message::parse(bytes);
  if (!response) {
    return;
  }
  resuming_ = true;
  if (client.valid()) {
    onResponse(client, *response);
  } else {
    onStrayResponse(*response, Source{});
  }
  resuming_ = false;
}

void ProxyCore::onResponse(TransactionId client, const sip::Message& response) {
  if (!resuming_ && user_.holdResponse(client, response)) {
    return;
  }
  auto where = branchOf_.find(client.value);
  if (where == branchOf_.end()) {
    // A client transaction whose context is gone (a CANCEL, a branch given up): only a 2xx to
    // an INVITE still matters, it goes upstream.
    auto cseq = response.cseq();
    if (response.statusCode() / 100 == 2 && cseq && cseq->method == sip::Method::kInvite) {
      forwardResponseStateless(response, std::nullopt);
    }
    return;
  }
  auto [serverId, index] = where->second;
  Context& ctx = contexts_.at(serverId);
  Branch& br = ctx.branches[index];
  br.heard = true;
  const int code = response.statusCode();
  if (code < 200) {
    if (br.done) {
      return;
    }
    if (ctx.invite) {
      br.provisional = true;
      if (!ctx.cancelled) {
        armTimerC(ctx, index);  // reset on every provisional (16.7 item 2)
      }
    }
    if (code > 100 && !ctx.finalSent) {
      sendUpstream(ctx, response, {});
      if (auto it = contexts_.find(serverId); it != contexts_.end()) {
        finishIfDone(it->second);  // the upstream transport may have failed
      }
    }
    return;
  }
  if (br.done) {
    // A final after a CANCEL or Timer C: a 2xx still goes upstream (16.7 item 9).
    if (code < 300 && ctx.invite) {
      forwardResponseStateless(response, ctx.upstream);
    }
    return;
  }
  branchFinal(ctx, index, code, &response);
}

void ProxyCore::onClientError(TransactionId client, TransactionError error) {
  auto where = branchOf_.find(client.value);
  if (where == branchOf_.end()) {
    return;
  }
  auto [serverId, index] = where->second;
  Context& ctx = contexts_.at(serverId);
  if (!ctx.branches[index].done) {
    // After the caller's CANCEL, a branch given up on ends the request as cancelled.
    const int code = ctx.cancelled ? 487 : error == TransactionError::kTimeout ? 408 : 503;
    branchFinal(ctx, index, code, nullptr);
  }
}

void ProxyCore::onServerError(TransactionId server, TransactionError) {
  auto it = contexts_.find(server.value);
  if (it == contexts_.end()) {
    return;
  }
  Context& ctx = it->second;
  ctx.finalSent = true;  // nothing more can reach upstream through this transaction
  cancelPending(ctx);
  if (sendingFor_ != server.value) {
    finishIfDone(ctx);  // otherwise the sender finishes it when it returns
  }
}

void ProxyCore::onStrayResponse(const sip::Message& response, const Source&) {
  // Retransmissions of a 2xx to an INVITE after its client transaction ended (17.1.1.2):
  // forwarded statelessly to the Via below ours.
  auto cseq = response.cseq();
  if (response.statusCode() / 100 == 2 && cseq && cseq->method == sip::Method::kInvite) {
    if (!resuming_ && user_.holdResponse(TransactionId{}, response)) {
      return;
    }
    forwardResponseStateless(response, std::nullopt);
  }
}

void ProxyCore::forwardResponseStateless(const sip::Message& response,
                                         const std::optional<Destination>& upstream) {
  const sip::HeaderField* viaHeader = response.find(sip::HeaderId::kVia);
  auto top = response.topVia();
  if (viaHeader == nullptr || !top || !isOurVia(*top)) {
    return;
  }
  sip::MessageEditor edit(response);
  edit.removeFirstValue(*viaHeader);
  edit.writeTo(out_);
  std::optional<Destination> to = upstream;
  if (!to) {
    auto next = sip::Message::parse(out_);
    auto via = next ? next->topVia() : Result<sip::Via>(makeError(Errc::kParse, "no Via"));
    if (!via) {
      return;
    }
    auto nextHop = transport::nextViaDestination(*via);  // 18.2.2: received / rport / sent-by
    if (!nextHop) {
      return;
    }
    to = *nextHop;
  }
  ++stats_.statelessForwarded;
  send_(*to, out_);
}

void ProxyCore::sendUpstream(Context& ctx, const sip::Message& response,
                             std::string_view extraLines) {
  const sip::HeaderField* viaHeader = response.find(sip::HeaderId::kVia);
  if (viaHeader == nullptr) {
    return;
  }
  sip::MessageEditor edit(response);
  edit.removeFirstValue(*viaHeader);  // ours (16.7 item 9)
  if (!extraLines.empty()) {
    edit.insertAt(response.headersEnd(), extraLines);
  }
  edit.writeTo(out_);
  std::string bytes = std::move(out_);
  if (response.statusCode() >= 200) {
    ctx.answered = ctx.answered || response.statusCode() < 300;
    if (auto upstream = sip::Message::parse(bytes)) {
      user_.onResponse(ctx.server, *upstream);
    }
  }
  sendingFor_ = ctx.server.value;
  layer_.respond(ctx.server, bytes);
  sendingFor_ = 0;
  out_ = std::move(bytes);
}

void ProxyCore::branchFinal(Context& ctx, uint32_t index, int code, const sip::Message* response) {
  Branch& br = ctx.branches[index];
  br.done = true;
  br.timerCArmed = false;
  if (retarget(ctx, index, code)) {
    return;  // ctx may be gone: the new branch may have ended the request at once
  }
  const int cls = code / 100;
  if (cls == 2 || cls == 6) {
    // 16.7 item 5 and 10: a 2xx is forwarded at once, a 6xx ends the search; either way the
    // other branches are cancelled.
    if (!ctx.finalSent && response != nullptr) {
      ctx.finalSent = true;
      sendUpstream(ctx, *response, {});
    } else if (cls == 2 && response != nullptr) {
      forwardResponseStateless(*response, ctx.upstream);  // another 2xx: forwarded too
    }
    cancelPending(ctx);
    finishIfDone(ctx);
    return;
  }
  if (response != nullptr && (code == 401 || code == 407)) {
    std::string lines;
    for (const auto& h : response->headers()) {
      if (h.id == sip::HeaderId::kWwwAuthenticate || h.id == sip::HeaderId::kProxyAuthenticate) {
        lines.append(text::lineOf(*response, h));
      }
    }
    ctx.challenges.emplace_back(index, std::move(lines));
  }
  if (ctx.bestCode == 0 || rank(code) < rank(ctx.bestCode)) {
    ctx.bestCode = code;
    ctx.bestBranch = index;
    if (response != nullptr) {
      ctx.best.assign(text::wholeMessage(*response));
    } else {
      ctx.best.clear();
    }
  }
  finishIfDone(ctx);
}

bool ProxyCore::retarget(Context& ctx, uint32_t index, int code) {
  const bool failed = code == 503 || (code == 408 && !ctx.branches[index].heard);
  if (!failed || ctx.cancelled || ctx.finalSent) {
    return false;
  }
  std::optional<Target> next = user_.retarget(ctx.server, ctx.targets[index], code);
  if (!next) {
    return false;
  }
  const ServerTransaction* st = layer_.server(ctx.server);
  auto msg = st != nullptr ? sip::Message::parse(st->request())
                           : Result<sip::Message>(makeError(Errc::kInvalid, "gone"));
  if (!msg) {
    return false;
  }
  ++stats_.retargeted;
  const auto at = static_cast<uint32_t>(ctx.branches.size());
  ctx.branches.emplace_back();
  ctx.targets.push_back(std::move(*next));
  startBranch(ctx, *msg, planRoutes(*msg), at);
  return true;
}

void ProxyCore::sendBest(Context& ctx) {
  ctx.finalSent = true;
  sendingFor_ = ctx.server.value;
  sendBestResponse(ctx);
  sendingFor_ = 0;
}

void ProxyCore::sendBestResponse(Context& ctx) {
  const int code = ctx.bestCode == 0 ? 408 : ctx.bestCode;
  if (code == 408 && ctx.best.empty() && !ctx.invite) {
    layer_.abandon(ctx.server);  // RFC 4320: no 408 to a non-INVITE
    return;
  }
  if (code == 503) {
    respond(ctx.server, 500, "Server Internal Error");  // 16.7 item 6: never a 503 upstream
    return;
  }
  if (ctx.best.empty()) {
    respond(ctx.server, code);
    return;
  }
  auto best = sip::Message::parse(ctx.best);
  if (!best) {
    respond(ctx.server, 500, "Server Internal Error");
    return;
  }
  std::string extra;
  if (code == 401 || code == 407) {
    // 16.7 item 7: the challenges of every branch, so the client can answer them all.
    for (const auto& [index, lines] : ctx.challenges) {
      if (index != ctx.bestBranch) {
        extra.append(lines);
      }
    }
  }
  sendUpstream(ctx, *best, extra);
}

void ProxyCore::cancelPending(Context& ctx) {
  for (auto& br : ctx.branches) {
    if (!br.done) {
      br.done = true;
      br.timerCArmed = false;
      layer_.cancel(br.client);
    }
  }
}

void ProxyCore::finishIfDone(Context& ctx) {
  for (const auto& br : ctx.branches) {
    if (!br.done) {
      return;
    }
  }
  if (!ctx.finalSent) {
    sendBest(ctx);
  }
  for (const auto& br : ctx.branches) {
    branchOf_.erase(br.client.value);
  }
  const TransactionId server = ctx.server;
  const bool answered = ctx.answered;
  contexts_.erase(server.value);  // ctx is gone
  user_.onContextDone(server, answered);
}

// ---- Timer C ----

void ProxyCore::armTimerC(Context& ctx, uint32_t index) {
  Branch& br = ctx.branches[index];
  br.timerC = clock_.now() + settings_.timerC;
  br.timerCArmed = true;
  timers_.push(TimerEntry{br.timerC, ctx.server.value, index});
}

TimePoint ProxyCore::nextDeadline() const {
  const TimePoint mine = timers_.empty() ? TimePoint::max() : timers_.top().when;
  return std::min(mine, layer_.nextDeadline());
}

void ProxyCore::onTick(TimePoint now) {
  layer_.onTick(now);
  while (!timers_.empty() && timers_.top().when <= now) {
    const TimerEntry e = timers_.top();
    timers_.pop();
    onTimer(e);
  }
}

void ProxyCore::onTimer(const TimerEntry& e) {
  auto it = contexts_.find(e.server);
  if (it == contexts_.end()) {
    return;
  }
  Context& ctx = it->second;
  Branch& br = ctx.branches[e.branch];
  if (e.silence) {
    if (br.done || br.heard) {
      return;
    }
    // Nothing came back, not even a 100: the next hop is taken for absent (a CANCEL follows
    // should it answer after all).
    ++stats_.silentBranches;
    layer_.cancel(br.client);
    branchFinal(ctx, e.branch, 408, nullptr);
    return;
  }
  if (br.done || !br.timerCArmed || br.timerC != e.when) {
    return;
  }
  // 16.8: CANCEL a branch that answered provisionally (the layer waits for one otherwise)
  // and count it as a 408.
  ++stats_.timerCExpired;
  layer_.cancel(br.client);
  branchFinal(ctx, e.branch, 408, nullptr);
}

}  // namespace evosip::transaction
