#include <random>

#include <fmt/format.h>

#include <evosip/base/hash.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/edge/edge_proxy.hpp>
#include <evosip/edge/header_hygiene.hpp>
#include <evosip/sip/editor.hpp>
#include <evosip/sip/params.hpp>
#include <evosip/sip/response.hpp>
#include <evosip/transport/response_destination.hpp>

#include "edge_internal.hpp"

namespace evosip::edge {

using detail::kBranchHexLen;
using detail::kBranchPrefix;
using detail::kCancelKey;
using detail::offsetOf;
using transport::Destination;
using transport::Protocol;

namespace {

size_t methodSlot(sip::Method m) {
  switch (m) {
    case sip::Method::kInvite:
      return 0;
    case sip::Method::kAck:
      return 1;
    case sip::Method::kBye:
      return 2;
    case sip::Method::kCancel:
      return 3;
    case sip::Method::kRegister:
      return 4;
    case sip::Method::kOptions:
      return 5;
    case sip::Method::kSubscribe:
      return 6;
    case sip::Method::kNotify:
      return 7;
    default:
      return 8;
  }
}

size_t codeSlot(int code) {
  for (size_t i = 0; i < kCountedCodes.size(); ++i) {
    if (kCountedCodes[i] == code) {
      return i;
    }
  }
  int cls = code / 100;
  return kCountedCodes.size() + static_cast<size_t>(cls >= 1 && cls <= 6 ? cls - 1 : 5);
}

uint64_t randomKey() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

std::string_view dropReasonName(DropReason r) {
  switch (r) {
    case DropReason::kParse:
      return "parse";
    case DropReason::kRateLimit:
      return "rate_limit";
    case DropReason::kNotOurVia:
      return "not_our_via";
    case DropReason::kNoRoute:
      return "no_route";
    case DropReason::kBadFlowToken:
      return "bad_flow_token";
    case DropReason::kSendFailed:
      return "send_failed";
    case DropReason::kNoRouter:
      return "no_router";
    case DropReason::kLoop:
      return "loop";
    case DropReason::kTooManyHops:
      return "too_many_hops";
    case DropReason::kInvalid:
      return "invalid";
    case DropReason::kPendingFull:
      return "pending_full";
    case DropReason::kBanned:
      return "banned";
    case DropReason::kNotOurDialog:
      return "not_our_dialog";
    case DropReason::kControlChar:
      return "control_character";
    case DropReason::kReplyTooLarge:
      return "reply_too_large";
    case DropReason::kForeignResponse:
      return "foreign_response";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

struct EdgeProxy::RouteInfo {
  std::optional<Destination> flow;  // from the user part of a popped Route of ours
  bool poppedAny = false;
  bool badToken = false;
  std::optional<sip::Uri> next;  // the first Route that is not ours
  std::string_view nextText;
  // What popping our entries removes: the first `poppedHeaders` Route header lines whole, and
  // in `partial` (the line that holds the next entry too) the values before `keepFrom`.
  size_t poppedHeaders = 0;
  const sip::HeaderField* partial = nullptr;
  std::string_view keepFrom;
};

// What the request steps learn about one request, filled top to bottom.
struct EdgeProxy::RequestContext {
  RequestContext(WorkerState& ws, size_t index, const sip::Message& m, const transport::Source& s,
                 int64_t t, bool router)
      : w(ws), worker(index), msg(m), src(s), now(t), fromRouter(router), edit(m) {}

  WorkerState& w;
  size_t worker;
  const sip::Message& msg;
  const transport::Source& src;
  int64_t now;
  bool fromRouter;  // from a router of the set: inside the platform
  // checkSanity
  sip::Via topVia;
  uint32_t cseq = 0;
  bool initial = true;  // no To tag: outside any dialog
  std::string_view callId;
  std::string_view fromTag;  // empty when there is none
  // the routing steps
  sip::MessageEditor edit;
  RouteInfo route;
  Destination next;
  size_t routerIndex = SIZE_MAX;  // next is this router of the set
  bool toClient = false;          // next is a client flow
  uint64_t txHash = 0;
  int32_t egress = -1;
  size_t hops = 0;  // workers that passed it on (a CANCEL seeking the one that keeps its INVITE)
};

EdgeProxy::EdgeProxy(EdgeSettings settings, std::shared_ptr<RouterSet> routers, size_t workers,
                     const runtime::Clock& clock, SendFn send, PostFn post)
    : settings_(std::move(settings)),
      clock_(clock),
      send_(std::move(send)),
      post_(std::move(post)),
      tokens_(settings_.flowSecret),
      secretKey_(randomKey()),
      routers_(std::move(routers)) {
  // Our identity: the advertised address, else the first listen address of each family.
  for (const auto& spec : settings_.listen) {
    Self& self = spec.endpoint.ip.is_v6() ? self6_ : self4_;
    if (self.port == 0) {
      self.host =
          settings_.advertiseHost.empty() ? spec.endpoint.hostForUri() : settings_.advertiseHost;
      self.port = settings_.advertisePort != 0 ? settings_.advertisePort : spec.endpoint.port;
      self.hostPort = fmt::format("{}:{}", self.host, self.port);
      self.routeEntry = fmt::format("<sip:{};lr>", self.hostPort);
    }
    std::string ip = spec.endpoint.ip.to_string();
    selfHosts_.push_back(ip);
    selfPorts_.push_back(spec.endpoint.port);
  }
  if (!settings_.advertiseHost.empty()) {
    std::string_view h = settings_.advertiseHost;
    if (h.size() > 2 && h.front() == '[') {
      h = h.substr(1, h.size() - 2);
    }
    selfHosts_.emplace_back(h);
    if (auto ip = transport::parseNumericHost(h)) {
      advertiseIp_ = *ip;
    }
    selfPorts_.push_back(settings_.advertisePort != 0 ? settings_.advertisePort
                                                      : (self4_.port ? self4_.port : self6_.port));
  }
  if (self4_.port == 0) {
    self4_ = self6_;
  }
  if (self6_.port == 0) {
    self6_ = self4_;
  }
  const size_t per = settings_.egressPerWorker;
  if (per > 0 && settings_.egressPorts.size() == per * workers) {
    egressPerWorker_ = per;
  }
  for (size_t i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<WorkerState>(i, settings_, secretKey_));
    workers_.back()->routers = routers_;
    workers_.back()->routersGeneration = generation_.load();
  }
}

void EdgeProxy::setRouters(std::shared_ptr<RouterSet> routers) {
  std::lock_guard lock(routersMutex_);
  routers->inheritFrom(*routers_);
  routers_ = std::move(routers);
  generation_.fetch_add(1);
}

std::shared_ptr<RouterSet> EdgeProxy::routers() const {
  std::lock_guard lock(routersMutex_);
  return routers_;
}

void EdgeProxy::refreshRouters(WorkerState& w) {
  uint64_t g = generation_.load(std::memory_order_acquire);
  if (g != w.routersGeneration) {
    std::lock_guard lock(routersMutex_);
    w.routers = routers_;
    w.routersGeneration = generation_.load();
  }
}

int64_t EdgeProxy::nowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.now().time_since_epoch())
      .count();
}

const EdgeProxy::Self& EdgeProxy::selfFor(const boost::asio::ip::address& peer) const {
  return peer.is_v6() ? self6_ : self4_;
}

bool EdgeProxy::isSelfHostPort(std::string_view host, uint16_t port) const {
  for (size_t i = 0; i < selfHosts_.size(); ++i) {
    if ((port == selfPorts_[i] || (port == 0 && selfPorts_[i] == 5060)) &&
        iequals(host, selfHosts_[i])) {
      return true;
    }
  }
  return false;
}

bool EdgeProxy::isSelfVia(std::string_view host, uint16_t port) const {
  if (isSelfHostPort(host, port)) {
    return true;
  }
  if (port == 0 || settings_.egressPorts.empty()) {
    return false;
  }
  bool ourPort = false;
  for (const auto& e : settings_.egressPorts) {
    ourPort = ourPort || e[0] == port || e[1] == port;
  }
  if (!ourPort) {
    return false;
  }
  for (const auto& h : selfHosts_) {
    if (iequals(host, h)) {
      return true;
    }
  }
  return iequals(host, self4_.host) || iequals(host, self6_.host);
}

bool EdgeProxy::isOwnEndpoint(const transport::Endpoint& ep) const {
  // A wildcard listen address is reached through any local address; loopback and the advertised
  // address are the ones a request can name.
  auto ourIp = [&](const boost::asio::ip::address& listenIp) {
    if (listenIp == ep.ip) {
      return true;
    }
    return listenIp.is_unspecified() && listenIp.is_v6() == ep.ip.is_v6() &&
           (ep.ip.is_loopback() || (advertiseIp_ && *advertiseIp_ == ep.ip));
  };
  if (advertiseIp_ && *advertiseIp_ == ep.ip &&
      ep.port == (self4_.port ? self4_.port : self6_.port)) {
    return true;
  }
  auto egressPort = [&] {
    for (const auto& e : settings_.egressPorts) {
      if (e[0] == ep.port || e[1] == ep.port) {
        return true;
      }
    }
    return false;
  };
  for (const auto& spec : settings_.listen) {
    if (ourIp(spec.endpoint.ip) && (spec.endpoint.port == ep.port || egressPort())) {
      return true;
    }
  }
  for (const auto& ip : settings_.egressAddresses) {
    if (ip == ep.ip && egressPort()) {
      return true;
    }
  }
  return false;
}

int32_t EdgeProxy::egressFor(size_t worker, std::string_view callId,
                             const transport::Endpoint& router, uint16_t& port) const {
  const auto& e = settings_.egressPorts;
  if (e.empty()) {
    return -1;
  }
  // The worker's own sockets when known: SO_REUSEPORT keeps a client's flow (its
  // retransmissions, CANCEL and ACK) on one worker, so a call's requests still leave from one.
  const size_t i = egressPerWorker_ > 0
                       ? worker * egressPerWorker_ + hash64(callId, 0x65677265) % egressPerWorker_
                       : hash64(callId, 0x65677265) % e.size();
  port = e[i][router.ip.is_v6() ? 1 : 0];
  return port == 0 ? -1 : static_cast<int32_t>(i);
}

bool EdgeProxy::isSelf(const sip::Uri& uri) const {
  return uri.isSip() && isSelfHostPort(uri.host, uri.port);
}

void EdgeProxy::drop(WorkerState& w, DropReason why) const {
  WorkerCounters::bump(w.counters.drops[detail::dropSlot(why)]);
}

void EdgeProxy::onPacket(size_t worker, const transport::Packet& packet) {
  WorkerState& w = *workers_[worker];
  refreshRouters(w);
  auto msg = sip::Message::parse(packet.data, settings_.limits);
  if (!msg) {
    onUnparsable(w, packet);
    return;
  }
  if (msg->isRequest()) {
    WorkerCounters::bump(w.counters.requests[methodSlot(msg->method())]);
    handleRequest(w, worker, *msg, packet.source);
  } else {
    WorkerCounters::bump(w.counters.responses[codeSlot(msg->statusCode())]);
    handleResponse(w, worker, *msg, packet.source);
  }
}

void EdgeProxy::onUnparsable(WorkerState& w, const transport::Packet& packet) {
  drop(w, DropReason::kParse);
  // Readable headers with an unusable Content-Length still get their 400 (streams are answered
  // by the transport, which cannot frame them), unless the source is banned or over its rate.
  const auto& src = packet.source;
  if (src.protocol != Protocol::kUdp) {
    return;
  }
  const bool fromRouter = w.routers->find(src.remote) != SIZE_MAX;
  if (!fromRouter && refusal(w, src.remote.ip, nowNs())) {
    return;
  }
  w.out = sip::buildUnframedResponse(packet.data, 400);
  if (!w.out.empty()) {
    sendReply(w, Destination{Protocol::kUdp, src.remote, {}}, packet.data.size());
  }
}

void EdgeProxy::reply(WorkerState& w, const sip::Message& msg, const transport::Source& src,
                      int code, std::string_view reason, std::string_view extraHeaders) {
  if (msg.method() == sip::Method::kAck) {
    return;  // ACK is never answered
  }
  std::string tag;
  appendHex(tag, hash64(msg.callId(), 0x7467) ^ static_cast<uint64_t>(code), 12);
  // The response's Via tells the client how we saw it (RFC 3581): received/rport.
  std::string withReceived;
  std::optional<sip::Message> fixed;
  if (auto via = msg.topVia()) {
    sip::MessageEditor edit(msg);
    transport::stampReceived(edit, msg, *via, src.remote, w.scratch);
    withReceived = edit.str();
    if (auto m = sip::Message::parse(withReceived, settings_.limits)) {
      fixed = std::move(*m);
    }
  }
  const sip::Message& request = fixed ? *fixed : msg;
  if (!sip::buildResponse(request, code, reason, tag, extraHeaders, w.out)) {
    drop(w, DropReason::kInvalid);
    return;
  }
  auto via = msg.topVia();
  const Destination to =
      via ? transport::responseDestination(src, *via) : transport::responseDestination(src);
  if (src.protocol == Protocol::kUdp) {
    // A spoofable source gets the minimal header set when the extras would make it grow.
    if (w.out.size() > msg.buffer().size() + detail::kUnverifiedReplySlack &&
        !extraHeaders.empty()) {
      sip::buildResponse(request, code, reason, tag, {}, w.out);
    }
  }
  sendReply(w, to, msg.buffer().size());
}

bool EdgeProxy::sendReply(WorkerState& w, const Destination& to, size_t requestSize) {
  if (to.protocol == Protocol::kUdp && isOwnEndpoint(to.remote)) {
    drop(w, DropReason::kLoop);  // a Via naming this edge: never send to ourselves
    return false;
  }
  // A UDP source has not proven its address: never send it much more than it sent (no
  // reflection amplification). Routers and connections are verified peers.
  if (to.protocol == Protocol::kUdp && w.out.size() > requestSize + detail::kUnverifiedReplySlack &&
      w.routers->find(to.remote) == SIZE_MAX) {
    drop(w, DropReason::kReplyTooLarge);
    return false;
  }
  WorkerCounters::bump(w.counters.localReplies);
  if (!send_(to, w.out)) {
    drop(w, DropReason::kSendFailed);
    return false;
  }
  return true;
}

std::optional<DropReason> EdgeProxy::refusal(WorkerState& w, const boost::asio::ip::address& ip,
                                             int64_t now) {
  if (w.bans.banned(ip, now)) {
    return DropReason::kBanned;
  }
  if (w.limiter.enabled() && !settings_.rateLimitExempt.allows(ip) && !w.limiter.allow(ip, now)) {
    return DropReason::kRateLimit;
  }
  return std::nullopt;
}

// ---- The request chain ----------------------------------------------------------------------

void EdgeProxy::handleRequest(WorkerState& w, size_t worker, const sip::Message& msg,
                              const transport::Source& src, size_t hops) {
  const bool fromRouter = src.protocol == Protocol::kUdp && w.routers->find(src.remote) != SIZE_MAX;
  RequestContext rq(w, worker, msg, src, nowNs(), fromRouter);
  rq.hops = hops;
  // Each step answers or drops the request and returns false, or lets it through.
  const bool forwardable = admit(rq) && checkHeaderHygiene(rq) && checkSanity(rq) &&
                           !answersLocally(rq) && applyRouteHygiene(rq) && checkInDialog(rq) &&
                           selectNextHop(rq) && checkLoop(rq) && atInvitesWorker(rq);
  if (forwardable) {
    rewrite(rq);
    forward(rq);
  }
}

// Flood protection, for sources outside the platform only: a banned source (repeated
// authentication failures) is refused, then the token bucket of its address decides. Over UDP
// both are silent (an answer would serve a spoofed source); a connection is told. A request
// passed on by another worker was admitted by the worker that received it.
bool EdgeProxy::admit(RequestContext& rq) {
  if (rq.fromRouter || rq.hops > 0) {
    return true;
  }
  const auto why = refusal(rq.w, rq.src.remote.ip, rq.now);
  if (!why) {
    return true;
  }
  drop(rq.w, *why);
  if (rq.src.protocol != Protocol::kUdp) {
    if (*why == DropReason::kBanned) {
      reply(rq.w, rq.msg, rq.src, 403, "Forbidden");
    } else {
      reply(rq.w, rq.msg, rq.src, 503, "Service Unavailable", "Retry-After: 1\r\n");
    }
  }
  return false;
}

bool EdgeProxy::checkSanity(RequestContext& rq) {
  const sip::Message& msg = rq.msg;
  auto bad = [&](DropReason why, int code, std::string_view reason, std::string_view extra = {}) {
    drop(rq.w, why);
    reply(rq.w, msg, rq.src, code, reason, extra);
    return false;
  };
  // Without a Via no response can be built: drop silently.
  auto topVia = msg.topVia();
  if (!topVia) {
    drop(rq.w, DropReason::kInvalid);
    return false;
  }
  rq.topVia = *topVia;
  // The rest can be answered: the response copies what is there (RFC 3261 8.2.6).
  if (!msg.find(sip::HeaderId::kFrom)) {
    return bad(DropReason::kInvalid, 400, "Missing From");
  }
  if (!msg.find(sip::HeaderId::kTo)) {
    return bad(DropReason::kInvalid, 400, "Missing To");
  }
  rq.callId = msg.callId();
  if (rq.callId.empty()) {
    return bad(DropReason::kInvalid, 400, "Missing Call-ID");
  }
  if (!msg.find(sip::HeaderId::kCSeq)) {
    return bad(DropReason::kInvalid, 400, "Missing CSeq");
  }
  auto cseq = msg.cseq();
  if (!cseq) {
    return bad(DropReason::kInvalid, 400, "Bad CSeq");
  }
  if (cseq->methodText != msg.methodText()) {
    return bad(DropReason::kInvalid, 400, "CSeq Method Does Not Match");
  }
  rq.cseq = cseq->number;
  auto from = msg.from();
  if (!from) {
    return bad(DropReason::kInvalid, 400, "Bad From");
  }
  rq.fromTag = from->tag().value_or(std::string_view());
  auto to = msg.to();
  if (!to) {
    return bad(DropReason::kInvalid, 400, "Bad To");
  }
  rq.initial = !to->tag().has_value();
  auto ruri = sip::parseUri(msg.requestUri());
  if (!ruri) {
    return bad(DropReason::kInvalid, 400, "Bad Request-URI");
  }
  if (ruri->scheme == sip::UriScheme::kOther) {
    return bad(DropReason::kInvalid, 416, "Unsupported URI Scheme");
  }
  if (msg.find(sip::HeaderId::kMaxForwards)) {
    auto value = msg.maxForwards();
    if (!value) {
      return bad(DropReason::kInvalid, 400, "Bad Max-Forwards");
    }
    if (*value == 0) {
      return bad(DropReason::kTooManyHops, 483, "Too Many Hops");
    }
  }
  if (const auto* pr = msg.find(sip::HeaderId::kProxyRequire)) {
    // A stateless proxy supports no extension that a client may require of it (RFC 3261 16.3).
    return bad(DropReason::kInvalid, 420, "Bad Extension",
               fmt::format("Unsupported: {}\r\n", pr->value));
  }
  if (msg.contentLength() && *msg.contentLength() != msg.body().size() &&
      rq.src.protocol != Protocol::kUdp) {
    return bad(DropReason::kInvalid, 400, "Bad Content-Length");
  }
  return true;
}

// A control character in a header is never forwarded: the next parser may read it differently
// (a NUL ends a C string, a lone CR or LF starts a new header for some).
bool EdgeProxy::checkHeaderHygiene(RequestContext& rq) {
  if (!findControlCharacter(rq.msg)) {
    return true;
  }
  drop(rq.w, DropReason::kControlChar);
  reply(rq.w, rq.msg, rq.src, 400, "Control Character In Header");
  return false;
}

bool EdgeProxy::answersLocally(RequestContext& rq) {
  const sip::Message& msg = rq.msg;
  if (msg.method() != sip::Method::kOptions || msg.find(sip::HeaderId::kRoute)) {
    return false;
  }
  auto ruri = sip::parseUri(msg.requestUri());
  if (!ruri || !ruri->user.empty() || !isSelf(*ruri)) {
    return false;
  }
  reply(rq.w, msg, rq.src, 200, "OK",
        "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, REFER, INFO, "
        "UPDATE, PRACK, MESSAGE, PUBLISH\r\nAccept: application/sdp\r\n");
  return true;
}

// Loose routing (RFC 3261 16.4): finds the leading Route entries that name this edge. Our
// entries of one pass are popped together (a flow entry and, with a transport change, a plain
// one). A second flow entry belongs to a later pass of the same request through this edge (a
// spiral via a router) and stays for that pass.
bool EdgeProxy::readRoutes(RequestContext& rq) {
  RouteInfo& route = rq.route;
  for (const auto& h : rq.msg.headers()) {
    if (h.id != sip::HeaderId::kRoute) {
      continue;
    }
    if (route.next) {
      break;
    }
    sip::ValueSplitter values(h.value);
    bool allOurs = true;
    while (auto v = values.next()) {
      auto na = sip::parseNameAddr(*v);
      if (!na) {
        drop(rq.w, DropReason::kInvalid);
        reply(rq.w, rq.msg, rq.src, 400, "Bad Route");
        return false;
      }
      const bool ours = isSelf(na->uri);
      const bool laterPass = ours && !na->uri.user.empty() && (route.flow || route.badToken);
      if (ours && !laterPass) {
        route.poppedAny = true;
        if (!na->uri.user.empty()) {
          route.flow = tokens_.decode(na->uri.user);
          route.badToken = !route.flow;
        }
        continue;
      }
      route.next = na->uri;
      route.nextText = na->uriText;
      if (v->data() != h.value.data()) {
        route.partial = &h;
        route.keepFrom = *v;
      }
      allOurs = false;
      break;
    }
    if (allOurs) {
      ++route.poppedHeaders;
    }
  }
  return true;
}

// From outside the platform only our own Record-Route may steer a request. An initial request
// (and an ACK that is not on our route set: the ACK of a non-2xx final) loses every Route the
// client put in, so a preloaded Route cannot divert it; it goes to a router like any other. A
// REGISTER loses the client's Path: only the edge's own Path reaches the registrar.
bool EdgeProxy::applyRouteHygiene(RequestContext& rq) {
  if (!readRoutes(rq)) {
    return false;
  }
  const sip::Message& msg = rq.msg;
  RouteInfo& route = rq.route;
  const bool ack = msg.method() == sip::Method::kAck;
  const bool dropClientRoutes = !rq.fromRouter && (rq.initial || (ack && !route.flow));
  const bool dropClientPath = !rq.fromRouter && msg.method() == sip::Method::kRegister;
  size_t routeIndex = 0;
  for (const auto& h : msg.headers()) {
    if (h.id == sip::HeaderId::kRoute) {
      if (dropClientRoutes || routeIndex < route.poppedHeaders) {
        rq.edit.removeHeader(h);
      } else if (&h == route.partial) {
        rq.edit.replaceRange(offsetOf(msg, h.value), offsetOf(msg, route.keepFrom), "");
      }
      ++routeIndex;
    } else if (h.id == sip::HeaderId::kPath && dropClientPath) {
      rq.edit.removeHeader(h);
    }
  }
  if (dropClientRoutes) {
    route.next.reset();
    route.nextText = {};
  }
  return true;
}

// A request inside a dialog from outside must follow the route set the platform gave the
// client: our Record-Route entry, with a flow token we signed, on top. Without it the request
// names a dialog we never made, or a route of its own: 481, nothing forwarded. (The ACK of a
// non-2xx final has the To tag of a dialog that never formed and no route set: it went on like
// an initial request.)
bool EdgeProxy::checkInDialog(RequestContext& rq) {
  if (rq.fromRouter || rq.initial || rq.msg.method() == sip::Method::kAck || rq.route.flow) {
    return true;
  }
  drop(rq.w, rq.route.badToken ? DropReason::kBadFlowToken : DropReason::kNotOurDialog);
  reply(rq.w, rq.msg, rq.src, 481, "Call/Transaction Does Not Exist");
  return false;
}

// Everything from outside goes to a router: the one named by the next Route (the router's own
// Record-Route of the dialog) when it is a live member of the set, otherwise the rendezvous
// choice for the Call-ID (for new work, among the routers that do not drain).
bool EdgeProxy::selectNextHop(RequestContext& rq) {
  if (rq.fromRouter) {
    return nextHopFromRouter(rq);
  }
  RouterSet& routers = *rq.w.routers;
  const auto& next = rq.route.next;
  if (next && next->isSip()) {
    if (auto ep = transport::parseEndpoint(next->hostText, next->portOrDefault())) {
      const size_t i = routers.find(*ep);
      if (i != SIZE_MAX && routers.at(i).upAt(rq.now)) {
        rq.routerIndex = i;
      }
    }
  }
  if (rq.routerIndex == SIZE_MAX) {
    // Without a router's Record-Route any router serves a dialog (they share its store), so a
    // request of a dialog avoids a draining router as new work does: the draining one may be
    // gone before the dialog ends, and its dialogs' requests would then be lost (an ACK) or
    // wait for a failover (a BYE).
    rq.routerIndex = routers.pick(rq.callId, rq.now);
  }
  if (rq.routerIndex == SIZE_MAX) {
    drop(rq.w, DropReason::kNoRouter);
    reply(rq.w, rq.msg, rq.src, 503, "Service Unavailable",
          fmt::format("Retry-After: {}\r\n",
                      std::max<int64_t>(1, settings_.holdDown.count() / 1000)));
    return false;
  }
  rq.next = Destination{Protocol::kUdp, routers.at(rq.routerIndex).endpoint, {}};
  return true;
}

// A request from a router goes to the next Route, else to the client flow named by the popped
// Route's flow token, else to the Request-URI (numeric hosts only).
bool EdgeProxy::nextHopFromRouter(RequestContext& rq) {
  const RouteInfo& route = rq.route;
  auto fail = [&](DropReason why, int code, std::string_view reason) {
    drop(rq.w, why);
    reply(rq.w, rq.msg, rq.src, code, reason);
    return false;
  };
  if (route.next && !isSelf(*route.next)) {
    auto ep = transport::parseEndpoint(route.next->hostText, route.next->portOrDefault());
    if (!ep) {
      return fail(DropReason::kNoRoute, 503, "Cannot Resolve Next Hop");
    }
    rq.next = Destination{Protocol::kUdp, *ep, {}};
    return true;
  }
  if (route.flow) {
    rq.next = *route.flow;
    rq.toClient = true;
    return true;
  }
  if (route.badToken) {
    return fail(DropReason::kBadFlowToken, 403, "Invalid Flow Token");
  }
  // A strict-routing predecessor would have put our URI into the Request-URI; our Record-Route
  // always carries lr, so only a strict router in front of us does that: not supported.
  auto ruri = sip::parseUri(rq.msg.requestUri());
  if (!ruri || !ruri->isSip()) {
    return fail(DropReason::kNoRoute, 416, "Unsupported URI Scheme");
  }
  if (isSelf(*ruri)) {
    // Addressed to one of our own flow URIs (a strict router copied it here), or to us with
    // nowhere to go: never send to ourselves.
    auto flow = ruri->user.empty() ? std::nullopt : tokens_.decode(ruri->user);
    if (!flow) {
      return fail(DropReason::kNoRoute, 404, "Not Found");
    }
    rq.next = *flow;
  } else {
    auto ep = transport::parseEndpoint(ruri->hostText, ruri->portOrDefault());
    if (!ep) {
      return fail(DropReason::kNoRoute, 503, "Cannot Resolve Request-URI");
    }
    rq.next = Destination{Protocol::kUdp, *ep, {}};
  }
  rq.toClient = true;
  return true;
}

// Our branch: the same for retransmissions, ACK and CANCEL of the same request (RFC 3261
// 16.11); the loop part changes when the request changes (16.6 #8).
void EdgeProxy::computeBranch(RequestContext& rq) {
  const sip::Message& msg = rq.msg;
  std::string& scratch = rq.w.scratch;
  auto upstream = rq.topVia.branch();
  scratch.clear();
  if (upstream && rq.topVia.rfc3261Branch()) {
    scratch.append(*upstream);
  } else {  // RFC 2543 peer: identify the transaction by its fields
    scratch.append(msg.requestUri()).append(rq.callId).append(rq.fromTag);
    scratch.append(std::to_string(rq.cseq));
  }
  scratch.append(rq.topVia.hostText);
  scratch.append(std::to_string(rq.topVia.port));
  rq.txHash = hash64(scratch, 0x7478);
  scratch.clear();
  scratch.append(msg.requestUri()).append(rq.callId).append(std::to_string(rq.cseq));
  scratch.append(rq.fromTag);
  // No To tag: the ACK of a non-2xx final carries the callee's tag, and it must get the same
  // branch as its INVITE (RFC 3261 16.11, 17.2.1) or the UAS never matches it.
  scratch.append(rq.route.nextText);
  const uint64_t loopHash = hash64(scratch, 0x6c6f6f70) & 0xffffffffULL;
  std::string& branch = rq.w.branch;
  branch.assign(kBranchPrefix);
  appendHex(branch, rq.txHash, 16);
  appendHex(branch, loopHash, 8);
}

// Never to ourselves, and RFC 3261 16.3 item 4: the same request back through us is a loop.
bool EdgeProxy::checkLoop(RequestContext& rq) {
  const bool toSelf = rq.next.protocol == Protocol::kUdp && isOwnEndpoint(rq.next.remote);
  if (!toSelf) {
    computeBranch(rq);
  }
  if (toSelf || isLoop(rq.msg, std::string_view(rq.w.branch).substr(kBranchPrefix.size() + 16))) {
    drop(rq.w, DropReason::kLoop);
    reply(rq.w, rq.msg, rq.src, 482, "Loop Detected");
    return false;
  }
  return true;
}

// A CANCEL, and the ACK of a non-2xx final, leave from their INVITE's egress socket with the
// INVITE's Via (RFC 3261 9.1, 17.2.3: the router matches them by branch and sent-by; else it
// answers the CANCEL 481, and resends its final response until Timer H for want of the ACK),
// to the INVITE's router. That socket is one of the worker's that received the INVITE and keeps
// its failover entry (until the final response), then, after a non-2xx final, its completed
// entry (until the ACK); the caller's requests over the INVITE's flow reach that worker
// (SO_REUSEPORT). One over another flow (another source port, a new connection) may reach
// another worker: it is passed from worker to worker until one keeps the INVITE, at most once
// around (a hop per worker, whatever a sender makes up); the last one sends it as its own, as
// every worker does for an INVITE it does not keep (over, or never seen).
bool EdgeProxy::atInvitesWorker(RequestContext& rq) {
  const sip::Method method = rq.msg.method();
  // The ACK of a 2xx follows the dialog's route set (our Record-Route, with its flow token).
  const bool ackOfFailure = method == sip::Method::kAck && !rq.route.flow;
  if (rq.routerIndex == SIZE_MAX || (method != sip::Method::kCancel && !ackOfFailure)) {
    return true;
  }
  std::optional<transport::Endpoint> inviteRouter;
  if (ackOfFailure) {
    inviteRouter = rq.w.completed.take(rq.txHash);
  } else if (const PendingRequest* invite = rq.w.pending.find(rq.txHash);
             invite != nullptr && invite->invite) {
    inviteRouter = invite->routerEndpoint;
  }
  if (inviteRouter) {
    const size_t router = rq.w.routers->find(*inviteRouter);
    if (router != SIZE_MAX) {
      rq.routerIndex = router;
      rq.next = Destination{Protocol::kUdp, *inviteRouter, {}};
    }
    return true;
  }
  // Without egress sockets of each worker's own, every worker sends a call's requests from the
  // same socket; without failover entries, no worker knows the INVITE.
  const size_t n = workers_.size();
  if (egressPerWorker_ == 0 || settings_.routerTimeout.count() <= 0 || rq.hops + 1 >= n) {
    return true;
  }
  const size_t next = (rq.worker + 1) % n;
  handOff(rq.w, next,
          [this, next, hops = rq.hops + 1, bytes = std::string(rq.msg.buffer()), src = rq.src] {
            WorkerState& o = *workers_[next];
            refreshRouters(o);
            if (auto m = sip::Message::parse(bytes, settings_.limits)) {
              handleRequest(o, next, *m, src, hops);
            }
          });
  return false;
}

bool EdgeProxy::isLoop(const sip::Message& msg, std::string_view loopHex) const {
  for (const auto& h : msg.headers()) {
    if (h.id != sip::HeaderId::kVia) {
      continue;
    }
    sip::ValueSplitter values(h.value);
    while (auto v = values.next()) {
      auto via = sip::parseVia(*v);
      if (!via || !isSelfVia(via->host, via->port)) {
        continue;
      }
      auto branch = via->branch();
      const bool ourBranch = branch && branch->size() == kBranchPrefix.size() + kBranchHexLen &&
                             branch->substr(0, kBranchPrefix.size()) == kBranchPrefix;
      // Our address with a branch we did not make: it names us, but not a pass through us;
      // only a loop through a misconfigured element produces that. Our own branch with the
      // same loop hash: the same request came back unchanged (RFC 3261 16.3 item 4).
      if (!ourBranch || branch->substr(kBranchPrefix.size() + 16) == loopHex) {
        return true;
      }
    }
  }
  return false;
}

// Our Via first, then Record-Route/Path, then the rest as received.
void EdgeProxy::rewrite(RequestContext& rq) {
  const sip::Message& msg = rq.msg;
  sip::MessageEditor& edit = rq.edit;
  const Destination clientFlow =
      rq.toClient ? rq.next : Destination{rq.src.protocol, rq.src.remote, rq.src.connection};
  const Self& self = selfFor(rq.next.remote.ip);
  // The callee of a stream flow answers over its connection with our Via on top: the
  // transport name follows the next hop.
  std::string& via = rq.w.via;
  via.clear();
  const std::string_view viaTransport = transport::viaTransportName(rq.next.protocol);
  uint16_t egressPort = 0;
  rq.egress =
      rq.routerIndex != SIZE_MAX ? egressFor(rq.worker, rq.callId, rq.next.remote, egressPort) : -1;
  if (rq.egress >= 0) {
    sip::appendVia(via, viaTransport, self.host, egressPort, rq.w.branch);
  } else {
    sip::appendVia(via, viaTransport, self.hostPort, rq.w.branch);
  }
  if (!rq.fromRouter && rq.src.protocol != Protocol::kUdp) {
    via.append(";ft=");
    tokens_.encode(clientFlow, via);
  }
  if (!rq.fromRouter &&
      (msg.find(sip::HeaderId::kAuthorization) || msg.find(sip::HeaderId::kProxyAuthorization))) {
    via.append(";").append(detail::kCredentialsParam);
  }
  edit.prependHeader("Via", via);
  if (sip::createsDialog(msg.method()) && rq.initial) {
    addRecordRoute(rq, clientFlow);
  }
  if (msg.method() == sip::Method::kRegister && !rq.fromRouter) {
    // The routers use the Path: the edge's address of their family, the client's flow in the
    // token.
    std::string& path = rq.w.route;
    path.assign("<sip:");
    tokens_.encode(clientFlow, path);
    path.append("@").append(selfFor(rq.next.remote.ip).hostPort).append(";lr>");
    edit.prependHeader("Path", path);
  }
  transport::stampReceived(edit, msg, rq.topVia, rq.src.remote, rq.w.scratch);
  // Max-Forwards: decremented, and never more than our cap (a client cannot buy a long loop).
  const uint32_t cap = settings_.maxForwards;
  if (const auto* mf = msg.find(sip::HeaderId::kMaxForwards)) {
    edit.replaceValue(*mf, std::to_string(std::min(*msg.maxForwards() - 1, cap)));
  } else {
    edit.appendHeader("Max-Forwards", std::to_string(cap));
  }
  for (const auto& h : msg.headers()) {
    if (h.id == sip::HeaderId::kOther && detail::isEvosipHeader(h.name)) {
      edit.removeHeader(h);
    }
  }
  edit.writeTo(rq.w.out);
}

// Client-facing entry with the flow token; a second, router-facing entry when the client's
// transport or address family differs from the routers' (RFC 5658 double Record-Route).
void EdgeProxy::addRecordRoute(RequestContext& rq, const Destination& clientFlow) {
  // The routers reach this edge at its address of their family, which need not be the client's
  // (an IPv6 phone, IPv4 routers).
  const Self& routerSelf = selfFor(rq.toClient ? rq.src.remote.ip : rq.next.remote.ip);
  const Self& clientSelf = selfFor(clientFlow.remote.ip);
  std::string& outer = rq.w.route;  // copied by the editor: the buffer is reused
  outer.assign("<sip:");
  tokens_.encode(clientFlow, outer);
  outer.append("@").append(clientSelf.hostPort);
  if (clientFlow.protocol != Protocol::kUdp) {
    outer.append(";transport=").append(transport::protocolName(clientFlow.protocol));
  }
  outer.append(";lr>");
  const std::string& inner = routerSelf.routeEntry;
  const bool twoEntries =
      clientFlow.protocol != Protocol::kUdp || routerSelf.hostPort != clientSelf.hostPort;
  // The entry facing the next hop goes on top.
  if (rq.toClient) {
    rq.edit.prependHeader("Record-Route", outer);
    if (twoEntries) {
      rq.edit.prependHeader("Record-Route", inner);
    }
  } else {
    if (twoEntries) {
      rq.edit.prependHeader("Record-Route", inner);
    }
    rq.edit.prependHeader("Record-Route", outer);
  }
}

// Requests to a router are remembered until it answers (failover); ACK is never answered.
void EdgeProxy::forward(RequestContext& rq) {
  if (rq.routerIndex != SIZE_MAX) {
    const sip::Method m = rq.msg.method();
    const uint64_t key = rq.txHash ^ (m == sip::Method::kCancel ? kCancelKey : 0);
    sendToRouter(rq.w, key, rq.callId, rq.routerIndex, rq.egress,
                 Destination{rq.src.protocol, rq.src.remote, rq.src.connection},
                 m != sip::Method::kAck, m == sip::Method::kInvite);
    return;
  }
  if (!send_(rq.next, rq.w.out)) {
    drop(rq.w, DropReason::kSendFailed);
  }
}

}  // namespace evosip::edge
