#pragma once
// RFC 3261 section 16 stateful proxy core, the transaction user of one worker's
// TransactionLayer. Its own user (the router role) decides the targets; the core does the
// mechanics: the request checks of 16.3 (checkRequest: Max-Forwards 483, loop detection 482
// with a loop hash in its branches, Proxy-Require 420) that its user runs as a step of its own,
// a cap on the Max-Forwards it sends, never a branch to itself (482), loose routing with
// strict-route compatibility (16.4), 100 Trying for INVITE at once, parallel forking, Record-Route,
// Via with a branch per client transaction, forwarding of provisionals (not 100), best-response
// selection (16.7), Timer C (408), 480 without targets, 487 after a CANCEL, and stateless
// forwarding of 2xx retransmissions and of the end-to-end ACK of a 2xx.
//
// Forking: every target is tried at once, in parallel; q-values only order the branches
// (highest first). There is no sequential search by q-value group. A branch whose next hop
// refuses (503) or is never heard from can be replaced by another target its user names
// (ProxyUser::retarget): failover between equivalent next hops, such as the apps of a set.

#include <chrono>
#include <functional>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <evosip/base/result.hpp>
#include <evosip/sip/editor.hpp>
#include <evosip/sip/uri.hpp>
#include <evosip/transaction/transaction_layer.hpp>

namespace evosip::transaction {

struct ProxySettings {
  // Our sent-by in the Via we add ("10.0.0.1", 5060). Also how stray responses are recognised.
  std::string viaHost;
  uint16_t viaPort = 5060;
  // Host/port pairs that name this proxy in Route entries and Request-URIs (port 0: 5060).
  std::vector<std::pair<std::string, uint16_t>> self;
  std::chrono::milliseconds timerC{180000};  // > 3 minutes per RFC 3261 16.6 item 11
  // Requests forwarded over UDP to a Request-URI or an explicit next hop go out from this
  // egress socket (transport::Destination::egress) with its port in our Via, so that their
  // responses come back to this worker; -1: from the listen socket, with viaPort. A request
  // that follows a Route (a Path or Record-Route of an edge) always leaves from the listen
  // socket: an edge knows a router by its listen address.
  int32_t egress = -1;
  uint16_t egressPort[2] = {0, 0};  // of that socket, v4 and v6; 0: none for the family
  // Further ports of viaHost that are ours in a response's Via (every worker's egress ports).
  std::vector<uint16_t> alsoViaPorts;
  // The largest Max-Forwards a forwarded request carries (RFC 3261 16.6 item 3 decrements; a
  // request received with 255 leaves with this): bounds what a loop elsewhere can cost.
  uint32_t maxForwards = 70;
};

// One place to forward a request to (RFC 3261 16.5).
struct Target {
  std::string uri;                     // the branch's Request-URI; empty: keep the request's
  std::optional<Destination> nextHop;  // empty: from the first Route, else the Request-URI
  std::vector<std::string> routeSet;   // Route values pushed in front (e.g. a binding's Path)
  double q = 1.0;
  // A branch that heard nothing at all (not even a 100) this long after it was sent ends as a
  // 408 (0: only the transaction timers end it); with ProxyUser::retarget, a silent next hop is
  // left after this long rather than after Timer B or F.
  std::chrono::milliseconds silenceTimeout{0};
};

struct ForwardOptions {
  // The URI this proxy Record-Routes dialog-creating requests with (e.g. "sip:10.0.0.1;lr");
  // empty: no Record-Route.
  std::string recordRoute;
  // The URI for the side of a branch that is TCP (e.g. "sip:10.0.0.1;transport=tcp;lr"); empty:
  // recordRoute for every transport. When the request came over one transport and a branch
  // leaves over the other, the branch gets both (RFC 5658 double Record-Route): the one of its
  // own transport on top, the upstream's below, so that each side reaches us as it can.
  std::string recordRouteTcp;
  // Called once per branch with the editor of that branch's copy, to add or remove headers.
  std::function<void(size_t branch, const Target&, sip::MessageEditor&)> editBranch;
  // Headers whose name starts with this (case-insensitive) are removed from every branch before
  // editBranch runs (the platform's own X-Evosip-* headers, which only this proxy may set).
  std::string dropHeaderPrefix;
};

// RFC 3261 16.4 (Route Information Preprocessing): what the core learns from the Request-URI and
// the Route headers before routing.
struct PreprocessedRoute {
  std::string_view requestUri;  // after the strict-route fix-up
  bool strictFixup = false;     // the Request-URI was our Record-Route URI
  bool poppedOwnRoute = false;  // a Route entry named this proxy
  std::string_view nextRoute;   // the first Route value left (not ours); empty when none

  // The next hop's URI (16.6 items 6-7): the next Route's, else the Request-URI (a bare URI:
  // its transport parameter chooses the transport, RFC 3263 4.1).
  Result<sip::Uri> nextHopUri() const;
};

class ProxyUser {
 public:
  virtual ~ProxyUser() = default;
  // A request to route; an INVITE was answered 100 Trying. The user runs ProxyCore::checkRequest
  // (Max-Forwards, loops, Proxy-Require) before it forwards. Answer with ProxyCore::respond or
  // ProxyCore::forward (now or later).
  virtual void onRequest(TransactionId server, const sip::Message& request,
                         const Source& source) = 0;
  // A response about to go upstream for a forwarded request: every 2xx, and the chosen final
  // when it is a forwarded one. Dialog records are created here.
  virtual void onResponse(TransactionId server, const sip::Message& response) {
    (void)server;
    (void)response;
  }
  // A response from downstream that the user wants to change before anything else happens to
  // it, asynchronously (the router has a media relay rewrite an SDP answer). Return true to
  // take it: the core drops it, and the user later calls ProxyCore::resumeResponse(client, text)
  // with the text to process instead (the same text to leave it as it was). `client` is not
  // valid for a response that matches no transaction (a retransmitted 2xx to an INVITE).
  virtual bool holdResponse(TransactionId client, const sip::Message& response) {
    (void)client;
    (void)response;
    return false;
  }
  // An ACK that matched no transaction (the ACK of a 2xx, or a stray one). Return true to have
  // the core forward it statelessly now (16.11); false when the user takes it: it drops it, or
  // forwards it later with ProxyCore::forwardAck.
  virtual bool onAck(const sip::Message& ack, const Source& source) {
    (void)ack;
    (void)source;
    return true;
  }
  // The core is done with a forwarded request: every branch ended and the final went upstream.
  // `answered` is true when that final was a 2xx.
  virtual void onContextDone(TransactionId server, bool answered) {
    (void)server;
    (void)answered;
  }
  // A branch ended in a 503 (from its next hop, or a transport error) or in silence (a 408
  // without any response from it: Target::silenceTimeout or a transaction timeout). Return a
  // target to send the request to instead, as a new branch of the same request (16.7 lets a
  // proxy add branches until it sent a final); nullopt keeps the branch's result. Not asked
  // after a CANCEL from upstream or once a final went upstream.
  virtual std::optional<Target> retarget(TransactionId server, const Target& failed, int code) {
    (void)server;
    (void)failed;
    (void)code;
    return std::nullopt;
  }
  // The destination of a next hop given by URI; the default takes numeric hosts (IPv4, IPv6)
  // with the URI's port and transport parameter, and refuses names (no DNS in the core).
  virtual std::optional<Destination> resolve(const sip::Uri& uri);
};

struct ProxyStats {
  uint64_t forwarded = 0, branches = 0, localReplies = 0, statelessForwarded = 0, timerCExpired = 0,
           cancelled = 0, loops = 0, tooManyHops = 0, selfBranches = 0, silentBranches = 0,
           retargeted = 0;
};

class ProxyCore final : public TransactionUser {
 public:
  ProxyCore(ProxySettings settings, LayerSettings layerSettings, const runtime::Clock& clock,
            TransactionLayer::SendFn send, ProxyUser& user);

  // Entry point of every message of this worker.
  void onMessage(const sip::Message& msg, const Source& source) { layer_.onMessage(msg, source); }
  void onTick(TimePoint now);
  TimePoint nextDeadline() const;

  // Answers the request locally (with the transaction's To tag except on 100).
  bool respond(TransactionId server, int code, std::string_view reason = {},
               std::string_view extraHeaders = {});
  // RFC 3261 16.3: Max-Forwards (483, 400 when unreadable), loop detection (482: a Via of ours
  // whose branch carries the loop hash this request has now), Proxy-Require (420). Answers once
  // (TransactionLayer::respondOnce: the source is not verified yet, so no Timer G) and returns
  // false when the request must not go on.
  bool checkRequest(TransactionId server, const sip::Message& request);
  // True when one of our Vias in the request carries the loop hash it has now (16.3 item 4):
  // the same request came back unchanged. A spiral (changed Request-URI) is not a loop.
  bool looped(const sip::Message& request) const;
  // Forwards to every target in parallel (16.5-16.7). No targets: 480.
  void forward(TransactionId server, std::vector<Target> targets, ForwardOptions options = {});
  // Forwards an ACK of a 2xx statelessly by its Route / Request-URI (16.11); false when it
  // went nowhere (Max-Forwards 0, no next hop, the next hop is this proxy).
  bool forwardAck(const sip::Message& ack, const ForwardOptions& options = {});
  // The server transaction a client transaction forwards (invalid when its context is gone).
  TransactionId serverOf(TransactionId client) const;
  // Processes a response the user held (ProxyUser::holdResponse) as if it arrived now.
  void resumeResponse(TransactionId client, std::string_view bytes);
  PreprocessedRoute preprocessedRoute(const sip::Message& request) const;
  // The URI names this proxy (a listen or advertised address, or an egress port of viaHost).
  bool isSelf(const sip::Uri& uri) const;
  // The destination is one of this proxy's own sockets.
  bool isSelfDestination(const Destination& to) const;
  const ProxySettings& settings() const { return settings_; }

  TransactionLayer& layer() { return layer_; }
  size_t contextCount() const { return contexts_.size(); }
  const ProxyStats& stats() const { return stats_; }

  // TransactionUser.
  void onRequest(TransactionId server, const sip::Message& request, const Source& src) override;
  void onCancel(TransactionId invite, const sip::Message& cancel) override;
  void onAck(const sip::Message& ack, const Source& source) override;
  void onResponse(TransactionId client, const sip::Message& response) override;
  void onStrayResponse(const sip::Message& response, const Source& source) override;
  void onClientError(TransactionId client, TransactionError error) override;
  void onServerError(TransactionId server, TransactionError error) override;

 private:
  struct Branch {
    TransactionId client;
    bool provisional = false;
    bool done = false;   // final received, synthesized, or cancelled
    bool heard = false;  // any response came back on it
    bool timerCArmed = false;
    TimePoint timerC{};
  };
  // respond, but sent once (TransactionLayer::respondOnce): a refusal to an unverified source.
  bool refuse(TransactionId server, int code, std::string_view reason,
              std::string_view extraHeaders = {});
  struct Context {
    TransactionId server;
    bool invite = false;
    bool finalSent = false;
    bool answered = false;   // a 2xx went upstream
    bool cancelled = false;  // the upstream client sent a CANCEL
    std::vector<Branch> branches;
    std::vector<Target> targets;  // by branch
    ForwardOptions options;
    Destination upstream;
    int bestCode = 0;
    uint32_t bestBranch = 0;
    std::string best;  // the best forwardable final so far; empty for a synthesized one
    // Challenge header lines of every 401/407 branch ("Name: value\r\n"), by branch.
    std::vector<std::pair<uint32_t, std::string>> challenges;
  };
  struct TimerEntry {
    TimePoint when;
    uint64_t server;
    uint32_t branch;
    bool silence = false;  // Target::silenceTimeout, else Timer C
    bool operator>(const TimerEntry& o) const { return when > o.when; }
  };

  // Route entries to drop and the Request-URI to use (16.4).
  struct RoutePlan {
    PreprocessedRoute info;
    std::string_view strictLastRoute;  // the Route value moved into the Request-URI
  };
  RoutePlan planRoutes(const sip::Message& msg) const;
  void applyRoutes(const sip::Message& msg, const RoutePlan& plan, sip::MessageEditor& edit) const;
  // Our Via for a request to `to`; with `egress` (a UDP hop that did not come from a Route) and
  // an egress socket for its family, also points `to` at that socket, whose port the Via names.
  // Our Record-Route entry (or two, ForwardOptions::recordRouteTcp) for a branch.
  static void recordRoute(const ForwardOptions& options, transport::Protocol upstream,
                          transport::Protocol downstream, sip::MessageEditor& edit);
  std::string viaValue(Destination& to, std::string_view branch, bool egress) const;
  std::optional<Destination> nextHopOf(const Result<sip::Uri>& uri);
  // RFC 3261 16.6 item 8: a hash of what identifies the request's pass through us (Request-URI,
  // Call-ID, tags, CSeq, Proxy-Require, Proxy-Authorization), with `requestUri` as sent.
  static uint32_t loopHash(const sip::Message& msg, std::string_view requestUri);
  void dropHeaders(const sip::Message& msg, const ForwardOptions& options,
                   sip::MessageEditor& edit) const;
  std::string forwardedMaxForwards(const sip::Message& msg) const;
  // Where a branch goes (16.6 items 6-7); `routed`: by a Route rather than the Request-URI.
  std::optional<Destination> branchDestination(const Target& target, const RoutePlan& plan,
                                               bool& routed);
  // The request of one branch (16.6): Request-URI, Route, Max-Forwards, Via, Record-Route.
  std::string branchRequest(const sip::Message& msg, const RoutePlan& plan, const Context& ctx,
                            size_t index, Destination& to, bool routed);

  // Sends branch `index` (its target is ctx.targets[index]); one that cannot leave ends at once.
  void startBranch(Context& ctx, const sip::Message& msg, const RoutePlan& plan, uint32_t index);
  void branchFinal(Context& ctx, uint32_t index, int code, const sip::Message* response);
  // A failed branch replaced by the target ProxyUser::retarget names; false when it is not.
  bool retarget(Context& ctx, uint32_t index, int code);
  void sendUpstream(Context& ctx, const sip::Message& response, std::string_view extraLines);
  void sendBest(Context& ctx);
  void sendBestResponse(Context& ctx);
  void cancelPending(Context& ctx);
  void finishIfDone(Context& ctx);
  void armTimerC(Context& ctx, uint32_t index);
  void onTimer(const TimerEntry& e);
  void forwardResponseStateless(const sip::Message& response,
                                const std::optional<Destination>& upstream);
  bool isOurVia(const sip::Via& via) const;

  ProxySettings settings_;
  // settings_.self as addresses (numeric hosts only); an unspecified address matches any local
  // one with that port.
  std::vector<transport::Endpoint> selfEndpoints_;
  const runtime::Clock& clock_;
  TransactionLayer::SendFn send_;
  ProxyUser& user_;
  TransactionLayer layer_;
  std::unordered_map<uint64_t, Context> contexts_;                        // by server id
  std::unordered_map<uint64_t, std::pair<uint64_t, uint32_t>> branchOf_;  // client -> ctx
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> timers_;
  std::string out_;
  std::string viaScratch_;   // received= text while a request is edited
  uint64_t sendingFor_ = 0;  // the server transaction a response is being sent on
  bool resuming_ = false;    // in resumeResponse: do not offer the response to holdResponse
  ProxyStats stats_;
};

}  // namespace evosip::transaction
