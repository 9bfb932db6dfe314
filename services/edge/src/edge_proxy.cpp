#include <fmt/format.h>

#include <evosip/base/hash.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/edge/edge_proxy.hpp>
#include <evosip/sip/editor.hpp>
#include <evosip/sip/params.hpp>
#include <evosip/sip/response.hpp>

namespace evosip::edge {
namespace {

using transport::Destination;
using transport::Protocol;

constexpr std::string_view kBranchPrefix = "z9hG4bK-e";  // RFC 3261 cookie + our marker
constexpr size_t kBranchHexLen = 16 + 8;                 // transaction hash + loop hash

void appendHex(std::string& out, uint64_t v, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) {
    out.push_back(kHex[(v >> (i * 4)) & 0xf]);
  }
}

std::optional<uint64_t> parseHex(std::string_view s) {
  if (s.empty() || s.size() > 16) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

bool isEvosipHeader(std::string_view name) {
  return istartsWith(name, "x-evosip-");
}

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

// Offset of a view into the message buffer.
uint32_t offsetOf(const sip::Message& msg, std::string_view part) {
  return static_cast<uint32_t>(part.data() - msg.buffer().data());
}

std::optional<boost::asio::ip::address> parseIp(std::string_view host) {
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(std::string(host), ec);
  if (ec) {
    return std::nullopt;
  }
  return ip;
}

// received/rport on the sender's Via (RFC 3261 18.2.1, RFC 3581). The rport value goes in
// first: when rport is the last parameter both edits land on the same offset.
// The editor copies inserted text, so `buf` (a worker's reused buffer) is free again after.
void addReceivedRport(sip::MessageEditor& edit, const sip::Message& msg, const sip::Via& topVia,
                      const transport::Source& src, std::string& buf) {
  const auto rport = topVia.rport();
  if (rport && rport->empty()) {
    uint32_t at = offsetOf(msg, topVia.text) + static_cast<uint32_t>(topVia.text.size());
    topVia.params.forEach([&](const sip::ParamList::Param& p) {
      if (iequals(p.name, "rport")) {
        at = offsetOf(msg, p.name) + static_cast<uint32_t>(p.name.size());
        return false;
      }
      return true;
    });
    edit.insertAt(at, fmt::format("={}", src.remote.port));
  }
  auto viaIp = parseIp(topVia.host);
  const bool needReceived = rport.has_value() || !viaIp || *viaIp != src.remote.ip;
  buf.assign(";received=");
  buf.append(src.remote.ip.to_string());
  const std::string_view value = std::string_view(buf).substr(10);
  if (auto received = topVia.received(); received) {
    edit.replaceRange(offsetOf(msg, *received),
                      offsetOf(msg, *received) + static_cast<uint32_t>(received->size()), value);
  } else if (needReceived) {
    uint32_t end = offsetOf(msg, topVia.text) + static_cast<uint32_t>(topVia.text.size());
    edit.insertAt(end, buf);
  }
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
};

EdgeProxy::EdgeProxy(EdgeSettings settings, std::shared_ptr<RouterSet> routers, size_t workers,
                     const runtime::Clock& clock, SendFn send, PostFn post)
    : settings_(std::move(settings)),
      clock_(clock),
      send_(std::move(send)),
      post_(std::move(post)),
      tokens_(settings_.flowSecret),
      routers_(std::move(routers)) {
  // Our identity: the advertised address, else the first listen address of each family.
  for (const auto& spec : settings_.listen) {
    Self& self = spec.endpoint.ip.is_v6() ? self6_ : self4_;
    if (self.port == 0) {
      self.host =
          settings_.advertiseHost.empty() ? spec.endpoint.hostForUri() : settings_.advertiseHost;
      self.port = settings_.advertisePort != 0 ? settings_.advertisePort : spec.endpoint.port;
      self.hostPort = fmt::format("{}:{}", self.host, self.port);
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
    selfPorts_.push_back(settings_.advertisePort != 0 ? settings_.advertisePort
                                                      : (self4_.port ? self4_.port : self6_.port));
  }
  if (self4_.port == 0) {
    self4_ = self6_;
  }
  if (self6_.port == 0) {
    self6_ = self4_;
  }
  for (size_t i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<WorkerState>(settings_));
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

int32_t EdgeProxy::egressFor(std::string_view callId, const transport::Endpoint& router,
                             uint16_t& port) const {
  const auto& e = settings_.egressPorts;
  if (e.empty()) {
    return -1;
  }
  const size_t i = hash64(callId, 0x65677265) % e.size();
  port = e[i][router.ip.is_v6() ? 1 : 0];
  return port == 0 ? -1 : static_cast<int32_t>(i);
}

bool EdgeProxy::isSelf(const sip::Uri& uri) const {
  return uri.isSip() && isSelfHostPort(uri.host, uri.port);
}

void EdgeProxy::onPacket(size_t worker, const transport::Packet& packet) {
  WorkerState& w = *workers_[worker];
  auto msg = sip::Message::parse(packet.data, settings_.limits);
  if (!msg) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kParse)]);
    // Readable headers with an unusable Content-Length still get their 400 (streams are
    // answered by the transport, which cannot frame them).
    if (packet.source.protocol == transport::Protocol::kUdp) {
      std::string reply = sip::buildUnframedResponse(packet.data, 400);
      if (!reply.empty()) {
        WorkerCounters::bump(w.counters.localReplies);
        send_(Destination{Protocol::kUdp, packet.source.remote, {}}, reply);
      }
    }
    return;
  }
  refreshRouters(w);
  if (msg->isRequest()) {
    WorkerCounters::bump(w.counters.requests[methodSlot(msg->method())]);
    handleRequest(w, worker, *msg, packet.source);
  } else {
    WorkerCounters::bump(w.counters.responses[codeSlot(msg->statusCode())]);
    handleResponse(w, worker, *msg, packet.source);
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
    addReceivedRport(edit, msg, *via, src, w.scratch);
    withReceived = edit.str();
    if (auto m = sip::Message::parse(withReceived, settings_.limits)) {
      fixed = std::move(*m);
    }
  }
  if (!sip::buildResponse(fixed ? *fixed : msg, code, reason, tag, extraHeaders, w.out)) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kInvalid)]);
    return;
  }
  // RFC 3261 18.2.2 / RFC 3581: streams and rport go back to the source; plain UDP to the
  // source IP and the sent-by port.
  Destination to{src.protocol, src.remote, src.connection};
  if (src.protocol == Protocol::kUdp) {
    if (auto via = msg.topVia(); via && !via->rport() && via->port != 0) {
      to.remote.port = via->port;
    } else if (via && !via->rport() && via->port == 0) {
      to.remote.port = 5060;
    }
  }
  WorkerCounters::bump(w.counters.localReplies);
  if (!send_(to, w.out)) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kSendFailed)]);
  }
}

bool EdgeProxy::checkRequest(WorkerState& w, const sip::Message& msg,
                             const transport::Source& src) {
  auto bad = [&](DropReason why, int code, std::string_view reason, std::string_view extra = {}) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(why)]);
    reply(w, msg, src, code, reason, extra);
    return false;
  };
  // Without these a response cannot be built: drop silently.
  if (!msg.find(sip::HeaderId::kVia) || !msg.topVia()) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kInvalid)]);
    return false;
  }
  // The rest can be answered: the response copies what is there (RFC 3261 8.2.6).
  if (!msg.find(sip::HeaderId::kFrom)) {
    return bad(DropReason::kInvalid, 400, "Missing From");
  }
  if (!msg.find(sip::HeaderId::kTo)) {
    return bad(DropReason::kInvalid, 400, "Missing To");
  }
  if (msg.callId().empty()) {
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
  if (!msg.from()) {
    return bad(DropReason::kInvalid, 400, "Bad From");
  }
  if (!msg.to()) {
    return bad(DropReason::kInvalid, 400, "Bad To");
  }
  auto ruri = sip::parseUri(msg.requestUri());
  if (!ruri) {
    return bad(DropReason::kInvalid, 400, "Bad Request-URI");
  }
  if (ruri->scheme == sip::UriScheme::kOther) {
    return bad(DropReason::kInvalid, 416, "Unsupported URI Scheme");
  }
  if (const auto* mf = msg.find(sip::HeaderId::kMaxForwards)) {
    auto value = msg.maxForwards();
    if (!value) {
      return bad(DropReason::kInvalid, 400, "Bad Max-Forwards");
    }
    if (*value == 0) {
      return bad(DropReason::kTooManyHops, 483, "Too Many Hops");
    }
    (void)mf;
  }
  if (const auto* pr = msg.find(sip::HeaderId::kProxyRequire)) {
    // A stateless proxy supports no extension that a client may require of it (RFC 3261 16.3).
    std::string extra = fmt::format("Unsupported: {}\r\n", pr->value);
    return bad(DropReason::kInvalid, 420, "Bad Extension", extra);
  }
  if (msg.contentLength() && *msg.contentLength() != msg.body().size() &&
      src.protocol != Protocol::kUdp) {
    return bad(DropReason::kInvalid, 400, "Bad Content-Length");
  }
  return true;
}

bool EdgeProxy::answersLocally(WorkerState& w, const sip::Message& msg,
                               const transport::Source& src) {
  if (msg.method() != sip::Method::kOptions || msg.find(sip::HeaderId::kRoute)) {
    return false;
  }
  auto ruri = sip::parseUri(msg.requestUri());
  if (!ruri || !ruri->user.empty() || !isSelf(*ruri)) {
    return false;
  }
  reply(w, msg, src, 200, "OK",
        "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, REFER, INFO, "
        "UPDATE, PRACK, MESSAGE, PUBLISH\r\nAccept: application/sdp\r\n");
  return true;
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

void EdgeProxy::handleRequest(WorkerState& w, size_t worker, const sip::Message& msg,
                              const transport::Source& src) {
  const int64_t now = nowNs();
  RouterSet& routers = *w.routers;
  const bool fromRouter = src.protocol == Protocol::kUdp && routers.find(src.remote) != SIZE_MAX;

  // 1. Flood protection, for sources outside the platform only.
  if (!fromRouter && !w.limiter.allow(src.remote.ip, now)) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kRateLimit)]);
    if (src.protocol != Protocol::kUdp) {  // no amplification over a connection
      reply(w, msg, src, 503, "Service Unavailable", "Retry-After: 1\r\n");
    }
    return;
  }
  // 2. Sanity checks, 3. requests for the edge itself.
  if (!checkRequest(w, msg, src) || answersLocally(w, msg, src)) {
    return;
  }
  auto topVia = msg.topVia();
  auto cseq = msg.cseq();
  auto to = msg.to();
  const std::string_view callId = msg.callId();

  // 4. Loose routing (RFC 3261 16.4): pop the Route entries that name this edge.
  sip::MessageEditor edit(msg);
  RouteInfo route;
  for (const auto& h : msg.headers()) {
    if (h.id != sip::HeaderId::kRoute) {
      continue;
    }
    if (route.next) {
      break;
    }
    sip::ValueSplitter values(h.value);
    std::optional<std::string_view> keepFrom;
    bool allOurs = true;
    while (auto v = values.next()) {
      auto na = sip::parseNameAddr(*v);
      if (!na) {
        reply(w, msg, src, 400, "Bad Route");
        return;
      }
      // Our entries of one pass are popped together (a flow entry and, with a transport
      // change, a plain one). A second flow entry belongs to a later pass of the same request
      // through this edge (a spiral via a router) and stays for that pass.
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
      keepFrom = *v;
      allOurs = false;
      break;
    }
    if (allOurs) {
      edit.removeHeader(h);
    } else if (keepFrom && keepFrom->data() != h.value.data()) {
      edit.replaceRange(offsetOf(msg, h.value), offsetOf(msg, *keepFrom), "");
    }
  }
  // A strict-routing predecessor would have put our URI into the Request-URI; our Record-Route
  // always carries lr, so only a strict router in front of us does that: not supported.
  auto ruri = sip::parseUri(msg.requestUri());

  // 5. The next hop.
  Destination next;
  size_t routerIndex = SIZE_MAX;
  bool toClient = false;
  if (!fromRouter) {
    // Everything from outside goes to a router: the one named by the next Route when it is a
    // live member of the set, otherwise the rendezvous choice for the Call-ID.
    if (route.next && route.next->isSip()) {
      auto ep = transport::parseEndpoint(route.next->hostText, route.next->portOrDefault());
      if (ep) {
        size_t i = routers.find(*ep);
        if (i != SIZE_MAX && routers.at(i).upAt(now)) {
          routerIndex = i;
        }
      }
    }
    if (routerIndex == SIZE_MAX) {
      routerIndex = routers.pick(callId, now);
    }
    if (routerIndex == SIZE_MAX) {
      WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kNoRouter)]);
      reply(w, msg, src, 503, "Service Unavailable",
            fmt::format("Retry-After: {}\r\n",
                        std::max<int64_t>(1, settings_.holdDown.count() / 1000)));
      return;
    }
    next = Destination{Protocol::kUdp, routers.at(routerIndex).endpoint, {}};
  } else if (route.next && !isSelf(*route.next)) {
    auto ep = transport::parseEndpoint(route.next->hostText, route.next->portOrDefault());
    if (!ep) {
      WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kNoRoute)]);
      reply(w, msg, src, 503, "Cannot Resolve Next Hop");
      return;
    }
    next = Destination{Protocol::kUdp, *ep, {}};
  } else if (route.flow) {
    next = *route.flow;
    toClient = true;
  } else if (route.badToken) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kBadFlowToken)]);
    reply(w, msg, src, 403, "Invalid Flow Token");
    return;
  } else {
    if (!ruri || !ruri->isSip()) {
      reply(w, msg, src, 416, "Unsupported URI Scheme");
      return;
    }
    if (isSelf(*ruri)) {
      // Addressed to one of our own flow URIs (a strict router copied it here), or to us with
      // nowhere to go: never send to ourselves.
      auto flow = ruri->user.empty() ? std::nullopt : tokens_.decode(ruri->user);
      if (!flow) {
        WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kNoRoute)]);
        reply(w, msg, src, 404, "Not Found");
        return;
      }
      next = *flow;
      toClient = true;
    } else {
      auto ep = transport::parseEndpoint(ruri->hostText, ruri->portOrDefault());
      if (!ep) {
        WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kNoRoute)]);
        reply(w, msg, src, 503, "Cannot Resolve Request-URI");
        return;
      }
      next = Destination{Protocol::kUdp, *ep, {}};
      toClient = true;
    }
  }

  // 6. Our branch: the same for retransmissions, ACK and CANCEL of the same request (RFC 3261
  // 16.11); the loop part changes when the request changes (16.6 #8).
  uint64_t txHash;
  {
    auto upstream = topVia->branch();
    w.scratch.clear();
    if (upstream && topVia->rfc3261Branch()) {
      w.scratch.append(*upstream);
    } else {  // RFC 2543 peer: identify the transaction by its fields
      w.scratch.append(msg.requestUri());
      w.scratch.append(callId);
      if (auto f = msg.from(); f && f->tag()) {
        w.scratch.append(*f->tag());
      }
      w.scratch.append(std::to_string(cseq->number));
    }
    w.scratch.append(topVia->hostText);
    w.scratch.append(std::to_string(topVia->port));
    txHash = hash64(w.scratch, 0x7478);
  }
  uint64_t loopHash;
  {
    w.scratch.clear();
    w.scratch.append(msg.requestUri());
    w.scratch.append(callId);
    w.scratch.append(std::to_string(cseq->number));
    if (auto f = msg.from(); f && f->tag()) {
      w.scratch.append(*f->tag());
    }
    // No To tag: the ACK of a non-2xx final carries the callee's tag, and it must get the same
    // branch as its INVITE (RFC 3261 16.11, 17.2.1) or the UAS never matches it.
    w.scratch.append(route.nextText);
    loopHash = hash64(w.scratch, 0x6c6f6f70) & 0xffffffffULL;
  }
  std::string& branch = w.branch;
  branch.assign(kBranchPrefix);
  appendHex(branch, txHash, 16);
  appendHex(branch, loopHash, 8);
  if (isLoop(msg, std::string_view(branch).substr(kBranchPrefix.size() + 16))) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kLoop)]);
    reply(w, msg, src, 482, "Loop Detected");
    return;
  }

  // 7. Rewrite: our Via first, then Record-Route/Path, then the rest as received.
  const Destination clientFlow =
      toClient ? next : Destination{src.protocol, src.remote, src.connection};
  const Self& self = selfFor(next.remote.ip);
  // The callee of a stream flow answers over its connection with our Via on top: the
  // transport name follows the next hop.
  std::string& via = w.via;
  via.assign("SIP/2.0/").append(transport::viaTransportName(next.protocol));
  uint16_t egressPort = 0;
  const int32_t egress = routerIndex != SIZE_MAX ? egressFor(callId, next.remote, egressPort) : -1;
  if (egress >= 0) {
    via.append(" ").append(self.host).append(":").append(std::to_string(egressPort));
  } else {
    via.append(" ").append(self.hostPort);
  }
  via.append(";branch=").append(branch);
  if (!fromRouter && src.protocol != Protocol::kUdp) {
    via.append(";ft=");
    tokens_.encode(clientFlow, via);
  }
  edit.prependHeader("Via", via);

  // The routers reach this edge at its address of their family, which need not be the client's
  // (an IPv6 phone, IPv4 routers).
  const Self& routerSelf = selfFor(toClient ? src.remote.ip : next.remote.ip);
  const bool initial = !to->tag().has_value();
  if (sip::createsDialog(msg.method()) && initial) {
    // Client-facing entry with the flow token; a second, router-facing entry when the client's
    // transport or address family differs from the routers' (RFC 5658 double Record-Route).
    const Self& clientSelf = selfFor(clientFlow.remote.ip);
    std::string outer = fmt::format("<sip:");
    tokens_.encode(clientFlow, outer);
    outer.append("@").append(clientSelf.hostPort);
    if (clientFlow.protocol != Protocol::kUdp) {
      outer.append(";transport=").append(transport::protocolName(clientFlow.protocol));
    }
    outer.append(";lr>");
    std::string inner = fmt::format("<sip:{};lr>", routerSelf.hostPort);
    const bool twoEntries =
        clientFlow.protocol != Protocol::kUdp || routerSelf.hostPort != clientSelf.hostPort;
    // The entry facing the next hop goes on top.
    if (toClient) {
      edit.prependHeader("Record-Route", outer);
      if (twoEntries) {
        edit.prependHeader("Record-Route", inner);
      }
    } else {
      if (twoEntries) {
        edit.prependHeader("Record-Route", inner);
      }
      edit.prependHeader("Record-Route", outer);
    }
  }
  if (msg.method() == sip::Method::kRegister && !fromRouter) {
    // The routers use the Path: the edge's address of their family, the client's flow in the
    // token.
    std::string path = "<sip:";
    tokens_.encode(clientFlow, path);
    path.append("@").append(routerSelf.hostPort).append(";lr>");
    edit.prependHeader("Path", path);
  }

  addReceivedRport(edit, msg, *topVia, src, w.scratch);
  if (const auto* mf = msg.find(sip::HeaderId::kMaxForwards)) {
    edit.replaceValue(*mf, std::to_string(*msg.maxForwards() - 1));
  } else {
    edit.appendHeader("Max-Forwards", "69");
  }
  for (const auto& h : msg.headers()) {
    if (h.id == sip::HeaderId::kOther && isEvosipHeader(h.name)) {
      edit.removeHeader(h);
    }
  }
  edit.writeTo(w.out);

  // 8. Send; requests to a router are remembered until it answers (failover).
  if (routerIndex != SIZE_MAX) {
    const bool track = msg.method() != sip::Method::kAck;
    uint64_t key = txHash ^ (msg.method() == sip::Method::kCancel ? 0x63616e63656cULL : 0);
    sendToRouter(w, worker, key, callId, routerIndex, egress,
                 Destination{src.protocol, src.remote, src.connection}, track);
    return;
  }
  if (!send_(next, w.out)) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kSendFailed)]);
  }
}

void EdgeProxy::sendToRouter(WorkerState& w, size_t worker, uint64_t key, std::string_view callId,
                             size_t router, int32_t egress, const Destination& client, bool track) {
  RouterSet& routers = *w.routers;
  RouterTarget& target = routers.at(router);
  target.forwarded.fetch_add(1, std::memory_order_relaxed);
  if (!send_(Destination{Protocol::kUdp, target.endpoint, {}, egress}, w.out)) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kSendFailed)]);
  }
  if (!track || settings_.routerTimeout.count() <= 0) {
    return;
  }
  PendingRequest p;
  p.bytes = w.out;
  p.callId = std::string(callId);
  p.router = router;
  p.v6 = target.endpoint.ip.is_v6();
  p.generation = w.routersGeneration;
  p.sentNs = nowNs();
  p.deadlineNs =
      p.sentNs +
      std::chrono::duration_cast<std::chrono::nanoseconds>(settings_.routerTimeout).count();
  p.client = client;
  const size_t owner = key % workers_.size();
  if (owner == worker) {
    if (!w.pending.upsert(key, std::move(p))) {
      WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kPendingFull)]);
    }
    return;
  }
  post_(owner, [this, owner, key, p = std::move(p)]() mutable {
    WorkerState& o = *workers_[owner];
    if (!o.pending.upsert(key, std::move(p))) {
      WorkerCounters::bump(o.counters.drops[static_cast<size_t>(DropReason::kPendingFull)]);
    }
  });
}

void EdgeProxy::clearPending(size_t worker, uint64_t key) {
  const size_t owner = key % workers_.size();
  if (owner == worker) {
    workers_[owner]->pending.erase(key);
    return;
  }
  post_(owner, [this, owner, key] { workers_[owner]->pending.erase(key); });
}

void EdgeProxy::onTick(size_t worker) {
  WorkerState& w = *workers_[worker];
  refreshRouters(w);
  const int64_t now = nowNs();
  const int64_t holdNs =
      std::chrono::duration_cast<std::chrono::nanoseconds>(settings_.holdDown).count();
  w.pending.expire(now, [&](uint64_t key, PendingRequest&& p) {
    RouterSet& routers = *w.routers;
    size_t failed = SIZE_MAX;
    if (p.generation == w.routersGeneration && p.router < routers.size()) {
      failed = p.router;
      RouterTarget& t = routers.at(failed);
      t.timeouts.fetch_add(1, std::memory_order_relaxed);
      if (t.lastResponseNs.load(std::memory_order_relaxed) > p.sentNs) {
        // It answered other requests meanwhile: alive, and it chose not to answer this one
        // (a request it found invalid, say). Another router would do the same.
        WorkerCounters::bump(w.counters.unanswered);
        return;
      }
      t.downUntilNs.store(now + holdNs, std::memory_order_relaxed);
    }
    // A router of the same address family first: the kept copy's Via (and a router-facing
    // Record-Route) name the edge's address and egress port of that family.
    size_t nextRouter = routers.pick(p.callId, now, failed, p.v6);
    if (nextRouter == SIZE_MAX) {
      nextRouter = routers.pick(p.callId, now, failed);
    }
    if (nextRouter == SIZE_MAX || p.attempts >= routers.size() + 1) {
      // Nobody left: tell the client, built from the request we kept.
      if (auto req = sip::Message::parse(p.bytes, settings_.limits); req && req->isRequest()) {
        // Our own Via is on top of the kept copy: answer with the client's Via stack.
        sip::MessageEditor strip(*req);
        strip.removeFirstValue(*req->find(sip::HeaderId::kVia));
        std::string original = strip.str();
        if (auto orig = sip::Message::parse(original, settings_.limits)) {
          transport::Source src{p.client.protocol, p.client.remote, {}, p.client.connection};
          reply(w, *orig, src, 503, "Service Unavailable",
                fmt::format("Retry-After: {}\r\n", std::max<int64_t>(1, holdNs / 1000000000)));
        }
      }
      WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kNoRouter)]);
      return;
    }
    WorkerCounters::bump(w.counters.failovers);
    RouterTarget& t = routers.at(nextRouter);
    t.forwarded.fetch_add(1, std::memory_order_relaxed);
    // The kept copy carries the Via port of the call's egress socket: the same one again.
    uint16_t port = 0;
    int32_t egress = egressFor(p.callId, t.endpoint, port);
    if (t.endpoint.ip.is_v6() != p.v6) {
      // No router of the first family is up: rewrite the copy for the other family.
      readdress(p, egress >= 0 ? port : 0);
    }
    send_(Destination{Protocol::kUdp, t.endpoint, {}, egress}, p.bytes);
    p.router = nextRouter;
    p.generation = w.routersGeneration;
    p.attempts += 1;
    p.sentNs = now;
    p.deadlineNs =
        now + std::chrono::duration_cast<std::chrono::nanoseconds>(settings_.routerTimeout).count();
    w.pending.rearm(key, std::move(p));
  });
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

void EdgeProxy::handleResponse(WorkerState& w, size_t worker, const sip::Message& msg,
                               const transport::Source& src) {
  const auto* viaHeader = msg.find(sip::HeaderId::kVia);
  auto ours = msg.topVia();
  if (!viaHeader || !ours || !isSelfVia(ours->host, ours->port)) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kNotOurVia)]);
    return;
  }
  auto branch = ours->branch();
  if (!branch || branch->size() != kBranchPrefix.size() + kBranchHexLen ||
      branch->substr(0, kBranchPrefix.size()) != kBranchPrefix) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kNotOurVia)]);
    return;
  }
  auto txHash = parseHex(branch->substr(kBranchPrefix.size(), 16));
  if (!txHash) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kNotOurVia)]);
    return;
  }
  const bool fromRouter = src.protocol == Protocol::kUdp && w.routers->find(src.remote) != SIZE_MAX;
  if (fromRouter) {
    auto cseq = msg.cseq();
    const bool cancel = cseq && cseq->method == sip::Method::kCancel;
    clearPending(worker, *txHash ^ (cancel ? 0x63616e63656cULL : 0));
    RouterTarget& t = w.routers->at(w.routers->find(src.remote));
    t.responses.fetch_add(1, std::memory_order_relaxed);
    t.lastResponseNs.store(nowNs(), std::memory_order_relaxed);
  }

  // The next Via after ours, in the same header or a later one.
  std::optional<sip::Via> next;
  {
    int index = 0;
    for (const auto& h : msg.headers()) {
      if (h.id != sip::HeaderId::kVia || index > 1) {
        continue;
      }
      sip::ValueSplitter values(h.value);
      while (auto v = values.next()) {
        if (index++ == 1) {
          if (auto parsed = sip::parseVia(*v)) {
            next = *parsed;
          }
          break;
        }
      }
    }
  }
  if (!next) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kNoRoute)]);
    return;
  }
  Destination to;
  if (auto ft = ours->params.get("ft"); ft) {
    auto flow = tokens_.decode(*ft);
    if (!flow) {
      WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kBadFlowToken)]);
      return;
    }
    to = *flow;
  } else {
    auto proto = transport::protocolFromName(next->transport);
    if (!proto || *proto != Protocol::kUdp) {
      WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kNoRoute)]);
      return;
    }
    std::string_view host = next->received().value_or(next->host);
    uint16_t port = next->port != 0 ? next->port : 5060;
    if (auto rport = next->rport(); rport && !rport->empty()) {
      if (auto p = parseDecimal(*rport, 65535); p && *p != 0) {
        port = static_cast<uint16_t>(*p);
      }
    }
    auto ip = parseIp(host);
    if (!ip) {
      WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kNoRoute)]);
      return;
    }
    to = Destination{Protocol::kUdp, transport::Endpoint{*ip, port}, {}};
  }

  sip::MessageEditor edit(msg);
  edit.removeFirstValue(*viaHeader);
  const bool toRouter = to.protocol == Protocol::kUdp && w.routers->find(to.remote) != SIZE_MAX;
  if (!toRouter) {
    for (const auto& h : msg.headers()) {
      if (h.id == sip::HeaderId::kOther && isEvosipHeader(h.name)) {
        edit.removeHeader(h);
      }
    }
  }
  edit.writeTo(w.out);
  if (!send_(to, w.out)) {
    WorkerCounters::bump(w.counters.drops[static_cast<size_t>(DropReason::kSendFailed)]);
  }
}

}  // namespace evosip::edge
