#pragma once
// The router's request handling for one worker: registrar, digest authentication with
// credentials from the api role, the dialplan and dialog records, on top of the RFC 3261 proxy
// core (transaction::ProxyCore). One Router per worker; a call is owned by the worker of its
// Call-ID hash, so a Router is only ever used from its worker's thread.

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <evosip/auth/authenticator.hpp>
#include <evosip/auth/credential_cache.hpp>
#include <evosip/auth/nonce.hpp>
#include <evosip/auth/nonce_count_store.hpp>
#include <evosip/auth/shared_credentials.hpp>
#include <evosip/auth/verifier.hpp>
#include <evosip/bencode/bencode.hpp>
#include <evosip/control/client.hpp>
#include <evosip/metrics/stats.hpp>
#include <evosip/role/target_set.hpp>
#include <evosip/router/dialog_check.hpp>
#include <evosip/router/dialplan.hpp>
#include <evosip/router/ng_client.hpp>
#include <evosip/router/parked_requests.hpp>
#include <evosip/router/registrar.hpp>
#include <evosip/store/store.hpp>
#include <evosip/transaction/proxy_core.hpp>
#include <evosip/transport/resolver.hpp>

namespace evosip::router {

struct RouterSettings {
  std::string domain = "evosip.local";
  std::vector<std::string> aliases;  // "host" (any port) or "host:port" meaning the domain
  std::string instanceId;
  RegistrarSettings registrar;
  std::string recordRoute;  // our Record-Route URI ("" = do not Record-Route)
  // With a TCP listen address: our Record-Route URI towards TCP peers (transport=tcp); a branch
  // that changes transport gets both (ForwardOptions::recordRouteTcp).
  std::string recordRouteTcp;
  std::chrono::seconds dialogMaxDuration{43200};
  std::string api;  // host:port of the api role
  std::string apiToken;
  std::chrono::milliseconds apiTimeout{2000};
  auth::CredentialCache::Settings credentials;
  // Challenges offered, in this order. MD5 first by default: many deployed phones (and sipp)
  // answer the first challenge and fail on an algorithm they do not know; RFC 8760 lets the
  // server order them by preference, and SHA-256-first is one config line away.
  // Only these are accepted back: an answer with another algorithm is challenged again.
  std::vector<auth::DigestAlgorithm> challengeAlgorithms{auth::DigestAlgorithm::kMd5,
                                                         auth::DigestAlgorithm::kSha256};
  // Refuse qop-less (RFC 2069) answers, which carry no nonce count and so can be replayed.
  bool requireQop = true;
  // Media anchoring: the default for calls to subscribers and out of the platform;
  // service numbers may say otherwise. Relays come from the `media` set.
  MediaMode mediaMode = MediaMode::kNat;
  NgClient::Settings ng;
  // A relay that is silent or refuses new sessions (drain, session limit) is left out of new
  // calls this long; the call's offer goes to the next relay in its rendezvous order.
  std::chrono::milliseconds relayHoldDown{10000};
  // A delete no relay answered (the relay is down: restarting, or its address being taken over)
  // is sent again every mediaDeleteRetryEvery until one answers, for this long at most (0: never
  // again). A relay that comes back restores its calls from the store: without the retry, a call
  // that ended meanwhile would be back until the relay's idle timeout.
  std::chrono::seconds mediaDeleteRetry{60};
  std::chrono::milliseconds mediaDeleteRetryEvery{1000};
  // An app that answers nothing (not even a 100) this long after a request is left for the
  // next app in the call's rendezvous order, as is one that answers 503; it is then held out of
  // new calls for appHoldDown (a silent app only when it answered nothing else meanwhile).
  std::chrono::milliseconds appTimeout{2000};
  std::chrono::milliseconds appHoldDown{10000};
  // proxy.maxForwards caps what the router forwards (router.max_forwards);
  // layer.maxTransactionBytes bounds its transaction memory per worker.
  transaction::ProxySettings proxy;
  transaction::LayerSettings layer;
  // Next hops named by a host name (RFC 3263): a request waits for its name's answer at most
  // dnsTimeout (then 503), and at most dnsMaxParked requests of a worker wait at once (more get
  // 503 at once). The lookups themselves are bounded by the next-hop resolver's settings.
  size_t dnsMaxParked = 256;
  std::chrono::milliseconds dnsTimeout{4000};
};

// What all workers share: settings, the nonce secret, the dialplan, the app set, drain state.
class RouterShared {
 public:
  RouterShared(RouterSettings settings, auth::NonceCodec::Settings nonces, Dialplan dialplan,
               std::shared_ptr<role::TargetSet> apps,
               const runtime::Clock& clock = runtime::SteadyClock::instance());

  const RouterSettings& settings() const { return settings_; }
  const auth::DigestVerifier& verifier() const { return verifier_; }
  const auth::NonceCodec& nonces() const { return nonces_; }
  const Dialplan& dialplan() const { return dialplan_; }
  // The URI names this platform: the domain, or an alias ("host" any port, "host:port").
  bool isLocal(const sip::Uri& uri) const;

  // Credentials every worker fetched from the api (behind each worker's own cache).
  auth::SharedCredentials& credentialTable() { return credentialTable_; }

  std::shared_ptr<role::TargetSet> apps() const;
  void setApps(std::shared_ptr<role::TargetSet> apps);
  // The media relays (ng control addresses), rendezvous by Call-ID.
  std::shared_ptr<role::TargetSet> media() const;
  void setMedia(std::shared_ptr<role::TargetSet> media);

  // Looks up the host names of requests' next hops (RFC 3263), with a cache of its own; null:
  // such next hops are refused as unresolvable (503), as without DNS.
  transport::Resolver* nextHops() const { return nextHops_.get(); }
  void setNextHops(std::unique_ptr<transport::Resolver> resolver) {
    nextHops_ = std::move(resolver);
  }

  std::atomic<bool> draining{false};

 private:
  RouterSettings settings_;
  auth::NonceCodec nonces_;
  auth::DigestVerifier verifier_;
  Dialplan dialplan_;
  auth::SharedCredentials credentialTable_;
  std::vector<std::pair<std::string, uint16_t>> aliases_;  // host, port (0 = any)
  mutable std::mutex appsMutex_;
  std::shared_ptr<role::TargetSet> apps_;
  std::shared_ptr<role::TargetSet> media_;
  std::unique_ptr<transport::Resolver> nextHops_;
};

// Why the router refused or dropped a request (evosip_router_rejected_total{reason}).
enum class Rejection : uint8_t {
  kNoDialog,           // a To tag for no known dialog: 481
  kForeignHop,         // a known dialog, towards a host that is not one of its elements: 403
  kAckDropped,         // an ACK for no known dialog or transaction: dropped
  kForSelf,            // addressed to the router itself (not OPTIONS): 404
  kLoop,               // RFC 3261 16.3 loop (482), or a branch to the router itself
  kTooManyHops,        // Max-Forwards 0: 483
  kTooManyContacts,    // REGISTER beyond router.max_contacts: 403
  kBindingBytes,       // REGISTER beyond router.max_binding_bytes: 403
  kTransactionMemory,  // new request beyond max_transactions / max_transaction_bytes: 503
  kCount,
};
std::string_view rejectionName(Rejection r);

// Counters of one worker, written by it, read by the metrics collector.
// Every statistic of a router worker, declared once: the fields below and their /metrics
// exposition (metrics/stats.hpp). Service-number refusals: a caller that cannot authenticate
// with us (403), a mailbox that is no subscriber of the domain (404). The gauges are published
// by the worker at every tick.
#define EVOSIP_ROUTER_STATS(COUNTER, GAUGE, COUNTER_ARRAY)                                        \
  COUNTER(registrations, "evosip_router_registrations_total",                                     \
          "REGISTER requests answered, by result", "result=ok")                                   \
  COUNTER(registrationFailures, "evosip_router_registrations_total", "", "result=refused")        \
  COUNTER(challenges, "evosip_router_auth_challenges_total", "401/407 challenges sent", "")       \
  COUNTER(dialogsCreated, "evosip_router_dialogs_total",                                          \
          "Dialog records written and removed by this instance", "event=created")                 \
  COUNTER(dialogsRemoved, "evosip_router_dialogs_total", "", "event=removed")                     \
  COUNTER(storeErrors, "evosip_router_store_errors_total", "Store operations that failed", "")    \
  COUNTER(apiFound, "evosip_router_api_fetches_total",                                            \
          "Credential fetches from the api role, by result", "result=found")                      \
  COUNTER(apiUnknown, "evosip_router_api_fetches_total", "", "result=unknown_user")               \
  COUNTER(apiFailed, "evosip_router_api_fetches_total", "", "result=failed")                      \
  COUNTER(credentialsStale, "evosip_router_credentials_stale_total",                              \
          "Failed credential fetches answered with the user's expired credentials "               \
          "(router.credential_stale_s)",                                                          \
          "")                                                                                     \
  COUNTER(drainRejected, "evosip_router_drain_rejected_total",                                    \
          "New requests refused with 503 while draining", "")                                     \
  COUNTER(mediaOffers, "evosip_router_media_commands_total",                                      \
          "ng commands to media relays: offers and answers rewritten, deletes, failures",         \
          "command=offer,result=ok")                                                              \
  COUNTER(mediaAnswers, "evosip_router_media_commands_total", "", "command=answer,result=ok")     \
  COUNTER(mediaDeletes, "evosip_router_media_commands_total", "", "command=delete,result=ok")     \
  COUNTER(mediaFailures, "evosip_router_media_commands_total", "", "command=any,result=failed")   \
  COUNTER(mediaDeleteRetries, "evosip_router_media_commands_total", "",                           \
          "command=delete,result=retried")                                                        \
  COUNTER_ARRAY(authFailures, auth::kVerifyResultCount, "evosip_router_auth_failures_total",      \
                "Credentials refused, by reason", "reason", verifyResultLabel)                    \
  COUNTER(serviceUnauthenticated, "evosip_router_service_refused_total",                          \
          "Calls to service numbers refused: caller not authenticated, mailbox not a subscriber", \
          "reason=unauthenticated")                                                               \
  COUNTER(serviceNoMailbox, "evosip_router_service_refused_total", "", "reason=mailbox")          \
  COUNTER_ARRAY(rejected, static_cast<size_t>(Rejection::kCount), "evosip_router_rejected_total", \
                "Requests refused or dropped by the request path's checks, by reason", "reason",  \
                rejectionLabel)                                                                   \
  COUNTER(optionsAnswered, "evosip_router_options_answered_total",                                \
          "OPTIONS addressed to the router answered 200 (probes)", "")                            \
  COUNTER(appFailovers, "evosip_router_failovers_total",                                          \
          "Requests sent to the next app, offers to the next relay, after one failed", "to=app")  \
  COUNTER(relayFailovers, "evosip_router_failovers_total", "", "to=relay")                        \
  COUNTER(dnsFound, "evosip_router_dns_next_hops_total",                                          \
          "Requests that waited for the DNS answer of their next hop's host name, by outcome",    \
          "result=found")                                                                         \
  COUNTER(dnsNoAddress, "evosip_router_dns_next_hops_total", "", "result=no_address")             \
  COUNTER(dnsFailed, "evosip_router_dns_next_hops_total", "", "result=failed")                    \
  COUNTER(dnsTimeout, "evosip_router_dns_next_hops_total", "", "result=timeout")                  \
  COUNTER(dnsBusy, "evosip_router_dns_next_hops_total", "", "result=busy")                        \
  COUNTER(dnsCancelled, "evosip_router_dns_next_hops_total", "", "result=cancelled")              \
  COUNTER(dnsCached, "evosip_router_dns_next_hops_total", "", "result=cached")                    \
  COUNTER(memoryTrims, "evosip_router_memory_trims_total",                                        \
          "Times a worker returned freed memory to the system after its transactions shrank", "") \
  GAUGE(serverTransactions, "evosip_router_transactions",                                         \
        "RFC 3261 transactions alive (server, client) and proxy contexts in progress (proxy)",    \
        "kind=server")                                                                            \
  GAUGE(clientTransactions, "evosip_router_transactions", "", "kind=client")                      \
  GAUGE(proxyContexts, "evosip_router_transactions", "", "kind=proxy")                            \
  GAUGE(transactionBytes, "evosip_router_transaction_bytes",                                      \
        "Bytes held by RFC 3261 transactions (router.max_transaction_bytes per worker)", "")      \
  GAUGE(mediaDeletesWaiting, "evosip_router_media_deletes_waiting",                               \
        "Deletes a silent relay left unanswered, waiting to be sent again "                       \
        "(router.media.delete_retry_s)",                                                          \
        "")                                                                                       \
  GAUGE(dnsParked, "evosip_router_dns_parked",                                                    \
        "Requests waiting for the DNS answer of their next hop (dns.max_parked per worker)", "")

struct RouterCounters {
  EVOSIP_STAT_FIELDS(EVOSIP_ROUTER_STATS)

  static void bump(std::atomic<uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  void reject(Rejection r) { bump(rejected[static_cast<size_t>(r)]); }
};

class Router final : public transaction::ProxyUser {
 public:
  using SendFn = transaction::TransactionLayer::SendFn;

  // proxy: this worker's proxy settings (its egress socket); default: the shared ones.
  // worker >= 0: written into this router's branches (TransactionLayer::workerOfBranch).
  Router(RouterShared& shared, boost::asio::io_context& io, std::unique_ptr<store::Store> store,
         const runtime::Clock& clock, SendFn send,
         std::optional<transaction::ProxySettings> proxy = std::nullopt, int32_t worker = -1);
  ~Router() override;

  void onMessage(const sip::Message& msg, const transport::Source& source) {
    proxy_.onMessage(msg, source);
  }
  void onTick();
  // The transport could not open a TCP connection this worker sent requests to: their
  // branches end as 503 now (the next branch or the caller's answer follows at once).
  void onTransportFailure(const transport::Destination& to) {
    proxy_.layer().onTransportFailure(to);
  }
  // The request matches a transaction of this worker (a CANCEL: its INVITE's).
  bool knows(const sip::Message& request) { return proxy_.layer().knowsRequest(request); }

  void invalidate(std::string_view domain, std::string_view user);
  void invalidateAll();

  store::Store& store() { return *store_; }
  const RouterCounters& counters() const { return counters_; }

  // transaction::ProxyUser
  void onRequest(transaction::TransactionId server, const sip::Message& request,
                 const transport::Source& source) override;
  bool holdResponse(transaction::TransactionId client, const sip::Message& response) override;
  bool onAck(const sip::Message& ack, const transport::Source& source) override;
  void onContextDone(transaction::TransactionId server, bool answered) override;
  std::optional<transaction::Target> retarget(transaction::TransactionId server,
                                              const transaction::Target& failed, int code) override;
  // Numeric hosts as the core takes them; a host name from the next-hop resolver's answer.
  std::optional<transport::Destination> resolve(const sip::Uri& uri) override;

 private:
  class StoreNonceCounts;
  // An SDP offer for a relay, built once from the request: the ng command and what the
  // answer and a delete need.
  struct MediaOffer {
    bencode::Value command;
    std::string callId;
    std::string fromTag;
    bool initial = true;  // an initial INVITE (a failure deletes the relay session)
  };
  // Where a request goes once its offer came back rewritten.
  struct PendingForward {
    std::vector<transaction::Target> targets;
    transaction::ForwardOptions options;
  };
  // The relay an offer went to: index in the media set (SIZE_MAX: named by a dialog record)
  // and how many relays the offer tried, this one included.
  struct RelayChoice {
    std::string uri;
    transport::Endpoint endpoint;
    size_t index = SIZE_MAX;
    size_t attempt = 1;
  };

  // ---- the request path, in the order onRequest runs it (router.cpp) ----
  // 1. Requests for the router itself (its listen/advertised addresses): OPTIONS -> 200,
  //    anything else -> 404 (or 482/483); never forwarded.
  bool answerForSelf(transaction::TransactionId id, const sip::Message& req,
                     const transaction::PreprocessedRoute& route);
  // 2. Sanity: Max-Forwards, loop detection, Proxy-Require (transaction::ProxyCore).
  // 3. In-dialog (in_dialog.cpp): a To tag must name a dialog we know, and go to one of its
  //    elements.
  void validateInDialog(transaction::TransactionId id, const sip::Message& req,
                        const transaction::PreprocessedRoute& route);
  // 4. An initial request with a Route we did not write (preloaded): 403. Drain: new
  //    registrations and calls get 503.
  bool rejectPreloadedRoute(transaction::TransactionId id,
                            const transaction::PreprocessedRoute& route);
  bool rejectWhileDraining(transaction::TransactionId id);
  // 5. Registrar (registration.cpp), 6. initial routing (initial_routing.cpp: relay check,
  //    authentication, dialplan), 7. media anchoring (media_anchoring.cpp), 8. forward.
  void forward(transaction::TransactionId id, std::vector<transaction::Target> targets,
               transaction::ForwardOptions options);
  transaction::ForwardOptions forwardOptions() const;
  // The next hop of a request as the core would route it (first Route not ours, else the
  // Request-URI), as written.
  static std::string_view nextHopOf(const transaction::PreprocessedRoute& route);
  bool namesSelf(const sip::Uri& uri);
  void trimMemory(runtime::Clock::time_point now);

  // ---- next hops by host name (next_hop_dns.cpp) ----
  // Whether the request's targets can go now: true when every next hop is numeric or its name's
  // answer is known (a target whose name has no address then fails as a 503 branch, or the
  // request gets 478/503 when no target is left). False when the request was parked until an
  // answer comes (then resume() runs on this worker) or answered.
  bool nextHopsKnown(transaction::TransactionId id, const std::vector<transaction::Target>& targets,
                     const std::function<ParkedRequests::Resume()>& resume);
  // How the host of a next hop's URI is looked up; nullopt for a numeric host, one of ours, or
  // not a name at all.
  std::optional<transport::DnsQuery> nextHopQuery(const sip::Uri& uri) const;
  // Looks the name up with the request parked until the answer comes (kParked), or refuses the
  // request with 503 when a bound is reached (kRefused); kAnswered: the answer came meanwhile
  // and is in `answer`.
  enum class Parking : uint8_t { kParked, kRefused, kAnswered };
  Parking parkUntilAnswered(transaction::TransactionId id, transport::DnsQuery query,
                            const std::function<ParkedRequests::Resume()>& resume,
                            std::optional<transport::Resolution>& answer);
  // Starts a lookup whose answer runs `then` on this worker.
  transport::LookupStart lookUpOnWorker(
      const transport::DnsQuery& query,
      std::function<void(const transport::DnsQuery&, const transport::Resolution&)> then);
  // The ACK of a 2xx whose next hop names a host not known yet: forwarded once it is; false
  // when it can go (or be dropped) now.
  bool ackWaitsForName(const std::string& text, const transaction::PreprocessedRoute& route);
  // 478 for a name without an address, 503 when the name servers failed.
  void answerUnresolvable(transaction::TransactionId id, const transport::Resolution& failure);
  std::optional<transport::Resolution> resolutionOf(const transport::DnsQuery& query) const;
  void onNextHopAnswer(const transport::DnsQuery& query, const transport::Resolution& answer);
  void sweepParked(runtime::Clock::time_point now);
  // The injected clock in the nanoseconds role::TargetSet counts hold-downs in.
  int64_t nowNs() const { return clock_.now().time_since_epoch().count(); }
  static int64_t toNs(std::chrono::milliseconds d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  }
  void storeFailed(transaction::TransactionId id);
  // Runs fn with the request of a live server transaction (parsed again from its copy).
  bool withRequest(transaction::TransactionId id,
                   const std::function<void(const sip::Message&)>& fn);

  // ---- in-dialog requests (in_dialog.cpp) ----
  void onDialogsLoaded(transaction::TransactionId id,
                       const std::vector<store::DialogRecord>& dialogs);
  // A request of a known dialog: a BYE removes the record, a re-offer goes through the relay
  // the record names.
  void forwardInDialog(transaction::TransactionId id, const sip::Message& req,
                       const store::DialogRecord& dialog);
  void removeDialog(const store::DialogRecord& dialog);
  // A re-INVITE whose Contact moves its sender's remote target (a peer app that took the call
  // over, a phone that changed address): the record to write when its 2xx comes, so that the
  // other party's requests to the new target pass the dialog's hop check.
  void noteTargetRefresh(transaction::TransactionId id, const sip::Message& req,
                         const store::DialogRecord& dialog);
  void applyTargetRefresh(transaction::TransactionId server);
  // An ACK of a 2xx, once its dialog was looked up.
  void onAckDialogs(const std::string& ack, const std::vector<store::DialogRecord>& dialogs);

  // ---- dialog recording (dialog_records.cpp) ----
  // Early dialogs (a 1xx with a To tag) of the INVITEs this worker forwards: their PRACK/UPDATE
  // are validated against them until the INVITE ends.
  void noteEarlyDialog(transaction::TransactionId server, const sip::Message& response);
  const std::vector<store::DialogRecord>* earlyDialogs(std::string_view callId) const;
  // The dialog record of a 2xx to the initial INVITE of `server` (nullopt: not an initial INVITE).
  std::optional<store::DialogRecord> dialogRecordOf(transaction::TransactionId server,
                                                    const sip::Message& response);
  // Writes the record, then lets the 2xx go upstream: an ACK or BYE sent at once finds it.
  void recordDialog(transaction::TransactionId client, store::DialogRecord rec, std::string text);

  // ---- the registrar (registration.cpp) ----
  void handleRegister(transaction::TransactionId id, const sip::Message& req,
                      const transport::Source& src);
  // The registrar's rules over the AOR's current bindings: a refusal, or the writes.
  void planRegistration(transaction::TransactionId id, const std::string& aor,
                        const std::string& received, const std::vector<store::Binding>& current);
  // Stores a registration's bindings and answers with all of them.
  void applyRegisterPlan(transaction::TransactionId id, const std::string& aor, RegisterPlan plan,
                         std::string pathLines, store::TimePoint now);

  // ---- initial requests (initial_routing.cpp) ----
  void handleInitial(transaction::TransactionId id, const sip::Message& req);
  void routeInitial(transaction::TransactionId id);
  // A service number: its mailbox (if it names one) must be a subscriber, then the app.
  void routeToService(transaction::TransactionId id, const ServiceNumber& number);
  void routeToApp(transaction::TransactionId id, const ServiceNumber& number,
                  const sip::Message& req);
  // ---- failover between apps (app_failover.cpp; retarget above) ----
  // alternatives: other apps could take the request (it may fail over after appTimeout).
  transaction::Target appTarget(role::Target& app, bool alternatives) const;
  // A response on a branch towards an app: the app is alive.
  void noteAppResponse(transaction::TransactionId client);
  // A local user without bindings: 480 (a subscriber) or 404 (nobody) to an authenticated
  // caller; 480 without a credential lookup to anyone else.
  void answerUnreachable(transaction::TransactionId id, const std::string& user);

  // ---- authentication (authentication.cpp) ----
  // Who must prove what before an initial request is routed.
  enum class InitialAccess { kOpen, kAuthenticate, kRelayDenied, kServiceDenied };
  InitialAccess initialAccess(const sip::Message& req, const sip::Uri& ruri,
                              const sip::Uri& from) const;
  // Verifies the request's credentials for `user`; challenges, refuses or calls onOk.
  void authenticate(transaction::TransactionId id, const sip::Message& req, std::string user,
                    std::function<void()> onOk);
  void applyAuthOutcome(transaction::TransactionId id, sip::Method method,
                        const auth::AuthOutcome& outcome, const std::function<void()>& onOk);
  void challenge(transaction::TransactionId id, sip::Method method, bool stale);
  // A final answer to a source that has proven nothing: sent once, never retransmitted.
  void refuse(transaction::TransactionId id, int code, std::string_view reason,
              std::string_view extraHeaders = {});

  // ---- credentials from the api (credential_fetch.cpp) ----
  void fetchCredentials(const std::string& domain, const std::string& user,
                        std::function<void(auth::CredentialLookup)> done);
  auth::CredentialLookup credentialsOf(const tl::expected<control::HttpResponse, std::string>& r);

  // ---- media anchoring (media_anchoring.cpp) ----
  // Forwards, first having the call's relay rewrite the SDP offer when `mode` says so.
  void forwardWithMedia(transaction::TransactionId id, std::vector<transaction::Target> targets,
                        transaction::ForwardOptions options, MediaMode mode);
  // No relay up for an offer that wants one: `nat` goes on unanchored, `always` gets 503.
  void forwardWithoutRelay(transaction::TransactionId id, PendingForward fwd, MediaMode mode,
                           bool relaysConfigured);
  // The offer of `m`; natSource: the NATed caller's address the edge saw (empty: not NATed).
  static MediaOffer offerOf(const sip::Message& m, bool initial, std::string_view natSource);
  void sendOffer(transaction::TransactionId id, PendingForward fwd, MediaOffer offer,
                 RelayChoice relay);
  void onOfferReply(transaction::TransactionId id, PendingForward fwd, MediaOffer offer,
                    RelayChoice relay, const Result<bencode::Value>& reply);
  // Holds the failed relay down and sends the offer to the next one; false when none is left.
  bool offerElsewhere(transaction::TransactionId id, PendingForward& fwd, MediaOffer& offer,
                      const RelayChoice& failed, bool silent);
  void answerMedia(transaction::TransactionId client, std::string text,
                   std::optional<store::DialogRecord> rec);
  void onAnswerReply(transaction::TransactionId client, std::string text,
                     std::optional<store::DialogRecord> rec, const Result<bencode::Value>& reply);
  void deleteMedia(const std::string& relayUri, const std::string& callId,
                   const std::string& fromTag);
  // A delete and how long it may still be retried.
  struct MediaDelete {
    std::string relayUri, callId, fromTag;
    runtime::Clock::time_point giveUpAt;
    runtime::Clock::time_point dueAt;  // its next attempt (while it waits in deleteRetries_)
  };
  void sendDelete(MediaDelete d);
  void onDeleteReply(MediaDelete d, const Result<bencode::Value>& reply);
  void retryDeletes(runtime::Clock::time_point now);

  RouterShared& shared_;
  boost::asio::io_context& io_;
  control::HttpConnectionPool apiPool_;  // keep-alive connections to the api role
  std::unique_ptr<store::Store> store_;
  const runtime::Clock& clock_;
  std::unique_ptr<StoreNonceCounts> nonceCounts_;
  auth::CredentialCache credentials_;
  auth::Authenticator authenticator_;
  transaction::ProxyCore proxy_;
  NgClient ng_;
  // Calls whose offer went through a relay, by Call-ID, until their INVITE transaction ends (and
  // a while after, for retransmitted 2xx): the answer in a 183/2xx goes to the same relay.
  struct MediaCall {
    std::string relayUri;  // as the media set names it; stored in the dialog record
    transport::Endpoint relay;
    std::string fromTag;
    bool initial = true;  // an initial INVITE (a failure deletes the relay session)
    runtime::Clock::time_point forgetAt = runtime::Clock::time_point::max();
  };
  std::unordered_map<std::string, MediaCall> mediaCalls_;
  std::unordered_map<uint64_t, std::string> mediaByServer_;  // server transaction -> Call-ID
  runtime::Clock::time_point nextMediaSweep_{};
  // Deletes a silent relay left unanswered, due in order (one interval for all), at most
  // kMaxDeleteRetries per worker: only calls this platform anchored get there.
  std::deque<MediaDelete> deleteRetries_;
  static constexpr size_t kMaxDeleteRetries = 4096;
  // Early dialogs by Call-ID, and the INVITE server transaction they belong to.
  struct EarlyDialogs {
    uint64_t server = 0;
    std::vector<store::DialogRecord> dialogs;
  };
  std::unordered_map<std::string, EarlyDialogs> early_;
  std::unordered_map<uint64_t, std::string> earlyByServer_;
  // Target refreshes forwarded, by server transaction: the dialog record their 2xx writes.
  std::unordered_map<uint64_t, store::DialogRecord> refreshes_;
  // Requests forwarded to an app, by server transaction, while they may fail over: the app
  // they went to and when, and how many apps they tried.
  struct AppRequest {
    std::string callId;
    size_t app = SIZE_MAX;  // index in the app set
    std::string uri;        // of that app (the set may be replaced meanwhile)
    int64_t sentNs = 0;
    size_t attempt = 1;
  };
  std::unordered_map<uint64_t, AppRequest> appRequests_;
  // Requests waiting for a next hop's DNS answer; the answer being delivered to them (it may
  // have left the resolver's cache meanwhile).
  ParkedRequests parked_;
  const std::pair<transport::DnsQuery, transport::Resolution>* delivered_ = nullptr;
  runtime::Clock::time_point nextParkSweep_{};
  size_t acksWaiting_ = 0;     // ACKs of 2xx waiting for their next hop's name
  size_t bytesHighWater_ = 0;  // transaction memory since the last trim
  runtime::Clock::time_point nextTrim_{};
  RouterCounters counters_;
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

}  // namespace evosip::router
