#pragma once
// The edge's message pipeline (transaction-stateless proxy, RFC 3261 16.11). One EdgeProxy
// serves all workers; everything it changes per message lives in the worker's WorkerState, so the
// packet path takes no lock. Each step of a request is a plain member function, read top to
// bottom in handleRequest(): admission (ban, rate limit), sanity, header hygiene, route hygiene
// (loose routing), in-dialog check, next hop, loop check, rewrite, forward.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/edge/auth_ban.hpp>
#include <evosip/edge/flow_token.hpp>
#include <evosip/edge/pending_table.hpp>
#include <evosip/edge/rate_limiter.hpp>
#include <evosip/metrics/stats.hpp>
#include <evosip/role/target_set.hpp>
#include <evosip/runtime/clock.hpp>
#include <evosip/sip/message.hpp>
#include <evosip/transport/address.hpp>
#include <evosip/transport/address_acl.hpp>
#include <evosip/transport/sip_transport.hpp>

namespace evosip::edge {

// The edge's routers: a role::TargetSet (rendezvous choice per Call-ID, up/down and drain state).
using RouterSet = role::TargetSet;
using RouterTarget = role::Target;

struct EdgeSettings {
  // Our own SIP addresses (bound listen specs). The first UDP one of each family is the address
  // we put in Via/Record-Route/Path unless `advertise` is set.
  std::vector<transport::ListenSpec> listen;
  std::string advertiseHost;  // "" = the listen address; host or IP as written into SIP
  uint16_t advertisePort = 0;
  std::chrono::milliseconds routerTimeout{500};
  // How long a router is held out: of all selection when it answered neither a request nor its
  // probe; of new calls when it refused one because it drains.
  std::chrono::milliseconds holdDown{10000};
  // A call in setup (its router sent a provisional response) checks its router this often; a
  // router that answered nothing since is probed.
  std::chrono::milliseconds setupCheck{1000};
  // Max-Forwards of every forwarded request: min(received - 1, maxForwards); added when absent.
  uint32_t maxForwards = 20;
  double rateLimitPerSecond = 30;  // per source IP and worker; 0 = off
  double rateLimitBurst = 90;      // 0 = one second's worth
  transport::AddressAcl rateLimitExempt;
  AuthBanSettings authBan;
  transport::AddressAcl authBanExempt;
  size_t maxPendingPerWorker = 50000;
  size_t maxPendingBytesPerWorker = size_t{32} << 20;
  std::string flowSecret;  // "" = random per process
  sip::ParseLimits limits;
  // The transport's egress sockets (SipTransport::egressPort of each index: v4, v6 port, 0 =
  // none). A request to a router leaves from the one its Call-ID hashes to, with that port in
  // our Via: a router receives one edge over several flows, which SO_REUSEPORT spreads over its
  // workers, and every message of a call over the same flow. Empty: from the listen socket.
  std::vector<std::array<uint16_t, 2>> egressPorts;
  // How many of them each worker receives on (index = worker * egressPerWorker + k, as
  // SipTransport numbers them). When known, a request leaves from one of the receiving
  // worker's own sockets (the one of them its Call-ID hashes to): the router's answers come
  // back to the worker that keeps the request's failover state, and nothing is handed between
  // workers. 0: the Call-ID picks among all of them, and the state is kept by the worker
  // `transaction hash % workers` (handed over when another one sent or received).
  size_t egressPerWorker = 0;
  // edge.egress_addresses: where the egress sockets are bound when not on the listen address
  // (an anycast listen address; see TransportSettings::egressAddresses).
  std::vector<boost::asio::ip::address> egressAddresses;
};

// Why a message was not forwarded (labels of evosip_edge_drops_total).
enum class DropReason : uint8_t {
  kParse,
  kRateLimit,
  kNotOurVia,
  kNoRoute,
  kBadFlowToken,
  kSendFailed,
  kNoRouter,
  kLoop,
  kTooManyHops,
  kInvalid,
  kPendingFull,
  kBanned,           // the source is banned after repeated authentication failures
  kNotOurDialog,     // a To-tagged request from outside without our Record-Route on top
  kControlChar,      // a control character in the start line or a header field
  kReplyTooLarge,    // a local reply to an unverified UDP source would amplify
  kForeignResponse,  // a response from outside that is not on its way back to a router
  kCount
};
std::string_view dropReasonName(DropReason r);

// Methods counted separately (the rest are "other").
inline constexpr std::array<std::string_view, 9> kCountedMethods = {
    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "SUBSCRIBE", "NOTIFY", "other"};
// Status classes counted per code for these, others by class ("1xx".."6xx").
inline constexpr std::array<int, 14> kCountedCodes = {100, 180, 183, 200, 202, 401, 403,
                                                      404, 407, 408, 480, 486, 487, 503};

// Counters of one worker: written by that worker only, read by the metrics collector.
// Every statistic of an edge worker, declared once: the fields below and their /metrics
// exposition (metrics/stats.hpp). responses: the codes of kCountedCodes, then 1xx..6xx.
#define EVOSIP_EDGE_STATS(COUNTER, GAUGE, COUNTER_ARRAY)                                         \
  COUNTER_ARRAY(requests, kCountedMethods.size(), "evosip_edge_requests_total",                  \
                "SIP requests received by the edge, by method", "method", methodLabel)           \
  COUNTER_ARRAY(responses, kCountedCodes.size() + 6, "evosip_edge_responses_total",              \
                "SIP responses received by the edge, by status code", "code", codeLabel)         \
  COUNTER_ARRAY(drops, static_cast<size_t>(DropReason::kCount), "evosip_edge_drops_total",       \
                "Messages not forwarded, by reason (a reply may have been sent)", "reason",      \
                dropLabel)                                                                       \
  COUNTER(localReplies, "evosip_edge_local_replies_total",                                       \
          "Responses generated by the edge itself", "")                                          \
  COUNTER(failovers, "evosip_edge_failovers_total",                                              \
          "Requests resent to another router after a timeout", "")                               \
  COUNTER(unanswered, "evosip_edge_unanswered_total",                                            \
          "Requests a live router left unanswered (not failed over: it answers other requests)", \
          "")                                                                                    \
  COUNTER(probesSent, "evosip_edge_router_probes_total",                                         \
          "OPTIONS probes sent to a router that left a request unanswered and answered nothing " \
          "since",                                                                               \
          "")                                                                                    \
  COUNTER(probesFailed, "evosip_edge_router_probe_failures_total",                               \
          "Probes a router left unanswered too: the router was marked down", "")                 \
  COUNTER(authFailures, "evosip_edge_auth_failures_total",                                       \
          "Router 401/407 answers to requests that carried credentials (stale nonces excluded)", \
          "")                                                                                    \
  COUNTER(bans, "evosip_edge_bans_total",                                                        \
          "Source addresses banned after repeated authentication failures", "")                  \
  COUNTER(drainRetries, "evosip_edge_drain_retries_total",                                       \
          "Requests a draining router refused, sent on to the next router at once", "")          \
  COUNTER(setupRouterLost, "evosip_edge_setup_router_lost_total",                                \
          "Calls in setup whose router died after a provisional response (moved, or answered "   \
          "408)",                                                                                \
          "")                                                                                    \
  COUNTER(handoffs, "evosip_edge_handoffs_total",                                                \
          "Failover state of a request, or a caller's CANCEL or ACK, handed to another worker "  \
          "(a thread wake-up): 0 while routers answer to the egress socket that sent and "       \
          "CANCELs and ACKs arrive over their INVITE's flow",                                    \
          "")

struct WorkerCounters {
  EVOSIP_STAT_FIELDS(EVOSIP_EDGE_STATS)

  static void bump(std::atomic<uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

class EdgeProxy {
 public:
  using SendFn = std::function<bool(const transport::Destination&, std::string_view)>;
  using PostFn = std::function<void(size_t worker, std::function<void()>)>;

  EdgeProxy(EdgeSettings settings, std::shared_ptr<RouterSet> routers, size_t workers,
            const runtime::Clock& clock, SendFn send, PostFn post);

  // Entry point for every received message (called on worker `worker`).
  void onPacket(size_t worker, const transport::Packet& packet);
  // Fails over requests whose router did not answer in time. Called periodically per worker.
  void onTick(size_t worker);

  // Replaces the router set (control thread). Workers pick it up at their next message.
  void setRouters(std::shared_ptr<RouterSet> routers);
  std::shared_ptr<RouterSet> routers() const;
  // False when every router of a non-empty set is held down (it answered neither requests nor
  // probes): the edge's /readyz then answers 503 (edge.ready_needs_router).
  bool anyRouterUp() const;

  size_t workers() const { return workers_.size(); }
  const WorkerCounters& counters(size_t worker) const { return workers_[worker]->counters; }
  size_t pending(size_t worker) const { return workers_[worker]->pending.size(); }

 private:
  // A liveness probe in flight: an OPTIONS sent to a router after a request to it timed out.
  struct Probe {
    size_t router = SIZE_MAX;
    uint64_t generation = 0;
    int64_t sentNs = 0;
    int64_t deadlineNs = 0;
  };
  // RFC 3261 Timer H (64 x T1): how long a router resends a non-2xx final until the ACK comes.
  static constexpr int64_t kTimerHNs = int64_t{32} * 1000 * 1000 * 1000;
  struct WorkerState {
    WorkerState(size_t i, const EdgeSettings& s, uint64_t hashKey)
        : index(i),
          pending(s.maxPendingPerWorker, s.maxPendingBytesPerWorker),
          completed(s.maxPendingPerWorker, kTimerHNs),
          limiter(s.rateLimitPerSecond, s.rateLimitBurst),
          bans(s.authBan, hashKey) {}
    size_t index;  // the worker's
    std::shared_ptr<RouterSet> routers;
    uint64_t routersGeneration = 0;
    PendingTable pending;
    CompletedInvites completed;  // INVITEs answered non-2xx, until their ACK
    RateLimiter limiter;
    AuthBanTable bans;  // every worker counts every failure (posted to all)
    std::vector<Probe> probes;
    // Reused for every message (cleared, capacity kept): no allocation per forwarded request.
    std::string out;
    std::string scratch;
    std::string branch;
    std::string via;
    std::string route;  // a Record-Route or Path value being built
    WorkerCounters counters;
  };
  struct Self {        // our address for one family
    std::string host;  // as written in SIP ("1.2.3.4", "[::1]", or the advertised name)
    uint16_t port = 0;
    std::string hostPort;    // "host:port"
    std::string routeEntry;  // "<sip:host:port;lr>": our Record-Route entry facing routers
  };
  struct RouteInfo;
  struct RequestContext;

  void onUnparsable(WorkerState& w, const transport::Packet& packet);
  // `hops`: workers that passed the request on before this one (0: received here).
  void handleRequest(WorkerState& w, size_t worker, const sip::Message& msg,
                     const transport::Source& src, size_t hops = 0);
  void handleResponse(WorkerState& w, size_t worker, const sip::Message& msg,
                      const transport::Source& src);

  // Request steps, in the order handleRequest runs them. Each returns false when it answered or
  // dropped the request (nothing more to do).
  bool admit(RequestContext& rq);        // ban list, then rate limit
  bool checkSanity(RequestContext& rq);  // mandatory headers, CSeq, Max-Forwards, URI
  bool checkHeaderHygiene(RequestContext& rq);
  bool answersLocally(RequestContext& rq);  // OPTIONS to the edge itself
  bool applyRouteHygiene(RequestContext& rq);
  bool checkInDialog(RequestContext& rq);
  bool selectNextHop(RequestContext& rq);
  bool checkLoop(RequestContext& rq);
  // A CANCEL, or the ACK of a non-2xx final: at the worker that keeps its INVITE.
  bool atInvitesWorker(RequestContext& rq);
  void rewrite(RequestContext& rq);
  void forward(RequestContext& rq);
  // What the steps share.
  bool readRoutes(RequestContext& rq);  // loose routing (RFC 3261 16.4): our leading entries
  bool nextHopFromRouter(RequestContext& rq);
  void computeBranch(RequestContext& rq);
  void addRecordRoute(RequestContext& rq, const transport::Destination& clientFlow);
  bool isLoop(const sip::Message& msg, std::string_view loopHash) const;
  void reply(WorkerState& w, const sip::Message& msg, const transport::Source& src, int code,
             std::string_view reason, std::string_view extraHeaders = {});
  bool sendReply(WorkerState& w, const transport::Destination& to, size_t requestSize);
  void drop(WorkerState& w, DropReason why) const;

  // Why a source outside the platform is refused now (banned, over its rate), if it is.
  std::optional<DropReason> refusal(WorkerState& w, const boost::asio::ip::address& ip,
                                    int64_t now);

  // Response steps.
  bool fromRouter(WorkerState& w, const sip::Message& msg, const sip::Via& ours, uint64_t txHash,
                  size_t router);
  void relay(WorkerState& w, size_t worker, const sip::Message& msg, const sip::Via& ours,
             bool byRouter);
  std::optional<transport::Destination> responseDestination(WorkerState& w, const sip::Message& msg,
                                                            const sip::Via& ours);
  void countAuthFailure(WorkerState& w, size_t worker, const sip::Message& msg,
                        const sip::Via& ours, const boost::asio::ip::address& client);

  // Router liveness, drain and failover.
  void settlePending(WorkerState& w, size_t owner, uint64_t key, int code, bool invite);
  void onDrainRefusal(WorkerState& w, size_t owner, uint64_t key, size_t router,
                      const sip::Message& response);
  // The worker that keeps the failover state of request `key`: the one that receives on the
  // egress socket it left from (`egress`, or the one whose port is `viaPort` in our Via), else
  // `key % workers`.
  size_t ownerOf(int32_t egress, uint64_t key) const;
  size_t ownerByViaPort(uint16_t viaPort, uint64_t key) const;
  // Posts fn to worker `owner`, another than w's (a hand-off: counted).
  void handOff(WorkerState& w, size_t owner, std::function<void()> fn);
  void retryAfterDrain(WorkerState& w, size_t worker, uint64_t key, const transport::Endpoint& from,
                       const sip::Message& response);
  void holdForDrain(RouterTarget& t, int64_t now) const;
  void onRequestTimeout(WorkerState& w, uint64_t key, PendingRequest&& p, int64_t now);
  void checkSetup(WorkerState& w, uint64_t key, PendingRequest&& p, int64_t now);
  size_t nextRouter(WorkerState& w, const PendingRequest& p, size_t failed, int64_t now) const;
  void failOver(WorkerState& w, uint64_t key, PendingRequest&& p, size_t failed, int64_t now);
  void resend(WorkerState& w, uint64_t key, PendingRequest&& p, size_t next, int64_t now);
  void answerFromKept(WorkerState& w, const PendingRequest& p, int code, std::string_view reason,
                      std::string_view extraHeaders);
  void startProbe(WorkerState& w, size_t router, int64_t now);
  void checkProbes(WorkerState& w, int64_t now);
  void probeHeldDown(WorkerState& w, int64_t now);
  bool onProbeResponse(WorkerState& w, std::string_view branch, const transport::Source& src);

  bool isSelf(const sip::Uri& uri) const;
  bool isSelfHostPort(std::string_view host, uint16_t port) const;
  // isSelfHostPort, or one of our egress ports (a Via we wrote).
  bool isSelfVia(std::string_view host, uint16_t port) const;
  // A transport address of this edge (listen or egress socket): never a next hop.
  bool isOwnEndpoint(const transport::Endpoint& ep) const;
  // The egress socket for a call's requests to a router at `router` sent by worker `worker`
  // (-1: the listen socket) and its port.
  int32_t egressFor(size_t worker, std::string_view callId, const transport::Endpoint& router,
                    uint16_t& port) const;
  const Self& selfFor(const boost::asio::ip::address& peer) const;
  void refreshRouters(WorkerState& w);
  int64_t nowNs() const;
  void sendToRouter(WorkerState& w, uint64_t branchKey, std::string_view callId, size_t router,
                    int32_t egress, const transport::Destination& client, bool track, bool invite);
  // Rewrites a kept request for a router of the other address family: our Via's sent-by (that
  // family's address and `egressPort`, 0 = the listen port) and a router-facing Record-Route.
  void readdress(PendingRequest& p, uint16_t egressPort) const;

  EdgeSettings settings_;
  const runtime::Clock& clock_;
  SendFn send_;
  PostFn post_;
  FlowTokenCodec tokens_;
  uint64_t secretKey_;  // random per process: probe branches, ban table hashing
  Self self4_;
  Self self6_;
  std::vector<std::string> selfHosts_;  // IPs and names that mean "this edge"
  std::vector<uint16_t> selfPorts_;
  std::optional<boost::asio::ip::address> advertiseIp_;  // sip.advertise, when numeric
  mutable std::mutex routersMutex_;  // guards routers_/generation_ (control thread writes)
  std::shared_ptr<RouterSet> routers_;
  std::atomic<uint64_t> generation_{1};
  std::vector<std::unique_ptr<WorkerState>> workers_;
  size_t egressPerWorker_ = 0;  // settings_.egressPerWorker when it matches egressPorts
};

}  // namespace evosip::edge
