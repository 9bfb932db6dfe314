// The router's request path (Router::onRequest: each step answers the request or passes it
// on), the steps that need no store or credentials (for the router itself, preloaded Route,
// drain), and the worker's housekeeping (timers, memory trim).
#include <malloc.h>

#include <openssl/rand.h>

#include <evosip/log/log.hpp>
#include <evosip/router/router.hpp>

#include "media_rules.hpp"
#include "store_nonce_counts.hpp"

namespace evosip::router {
namespace {

using transaction::TransactionId;

// Every layer (each worker of each router) mixes its own random seed into its branches, so no
// two make the same branch (RFC 3261 8.1.1.7: unique across space and time).
transaction::LayerSettings withRandomSeed(transaction::LayerSettings s, int32_t worker) {
  s.branchWorker = worker;
  unsigned char raw[8];
  RAND_bytes(raw, sizeof raw);
  for (unsigned char c : raw) {
    s.branchSeed = (s.branchSeed << 8) | c;
  }
  return s;
}

}  // namespace

std::string_view rejectionName(Rejection r) {
  static constexpr std::string_view kNames[] = {
      "no_dialog",     "foreign_hop",       "ack_dropped",   "for_self",          "loop",
      "too_many_hops", "too_many_contacts", "binding_bytes", "transaction_memory"};
  const auto i = static_cast<size_t>(r);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

Router::Router(RouterShared& shared, boost::asio::io_context& io,
               std::unique_ptr<store::Store> store, const runtime::Clock& clock, SendFn send,
               std::optional<transaction::ProxySettings> proxy, int32_t worker)
    : shared_(shared),
      io_(io),
      apiPool_(io, shared.settings().api),
      store_(std::move(store)),
      clock_(clock),
      nonceCounts_(std::make_unique<StoreNonceCounts>(*store_)),
      credentials_(shared.settings().credentials, clock,
                   [this](const std::string& domain, const std::string& user,
                          std::function<void(auth::CredentialLookup)> done) {
                     fetchCredentials(domain, user, std::move(done));
                   }),
      authenticator_(shared.verifier(), credentials_, *nonceCounts_, shared.settings().domain),
      proxy_(proxy ? std::move(*proxy) : shared.settings().proxy,
             withRandomSeed(shared.settings().layer, worker), clock, std::move(send), *this),
      ng_(io, shared.settings().ng),
      parked_(shared.settings().dnsMaxParked) {}

Router::~Router() {
  // The store first: a backend that completes pending operations as it closes calls back into
  // this Router, which must still be whole then.
  store_.reset();
}

void Router::onTick() {
  const auto now = clock_.now();
  proxy_.onTick(now);
  sweepParked(now);
  retryDeletes(now);
  // Finished calls are kept 32 s for retransmitted 2xx: swept once a second, not every tick.
  // So are requests to apps answered before they were forwarded (no relay, say).
  if (now >= nextMediaSweep_) {
    nextMediaSweep_ = now + std::chrono::seconds(1);
    std::erase_if(mediaCalls_, [now](const auto& kv) { return kv.second.forgetAt <= now; });
    std::erase_if(appRequests_, [this](const auto& kv) {
      return proxy_.layer().server(TransactionId{kv.first}) == nullptr;
    });
  }
  counters_.serverTransactions.store(proxy_.layer().serverCount(), std::memory_order_relaxed);
  counters_.clientTransactions.store(proxy_.layer().clientCount(), std::memory_order_relaxed);
  counters_.proxyContexts.store(proxy_.contextCount(), std::memory_order_relaxed);
  counters_.transactionBytes.store(proxy_.layer().bytes(), std::memory_order_relaxed);
  const auto& ps = proxy_.stats();
  counters_.rejected[static_cast<size_t>(Rejection::kLoop)].store(ps.loops + ps.selfBranches,
                                                                  std::memory_order_relaxed);
  counters_.rejected[static_cast<size_t>(Rejection::kTooManyHops)].store(ps.tooManyHops,
                                                                         std::memory_order_relaxed);
  counters_.rejected[static_cast<size_t>(Rejection::kTransactionMemory)].store(
      proxy_.layer().stats().rejectedFull, std::memory_order_relaxed);
  trimMemory(now);
}

void Router::trimMemory(runtime::Clock::time_point now) {
  // After a flood, the transactions are freed but the allocator keeps the pages (the process
  // raises M_TRIM_THRESHOLD for speed): hand them back once the table is well below its peak.
  const size_t bytes = proxy_.layer().bytes();
  bytesHighWater_ = std::max(bytesHighWater_, bytes);
  constexpr size_t kWorthTrimming = 4u << 20;
  if (now < nextTrim_ || bytesHighWater_ < kWorthTrimming + bytes || bytes > bytesHighWater_ / 4) {
    return;
  }
  nextTrim_ = now + std::chrono::seconds(5);
  bytesHighWater_ = bytes;
  ::malloc_trim(0);
  RouterCounters::bump(counters_.memoryTrims);
}

void Router::invalidate(std::string_view domain, std::string_view user) {
  credentials_.invalidate(domain, user);
}

void Router::invalidateAll() {
  credentials_.invalidateAll();
}

bool Router::withRequest(TransactionId id, const std::function<void(const sip::Message&)>& fn) {
  const auto* st = proxy_.layer().server(id);
  if (st == nullptr) {
    return false;
  }
  auto msg = sip::Message::parse(st->request());
  if (!msg) {
    return false;
  }
  fn(*msg);
  return true;
}

void Router::storeFailed(TransactionId id) {
  RouterCounters::bump(counters_.storeErrors);
  proxy_.respond(id, 503, "Store Unavailable", "Retry-After: 5\r\n");
}

// The request path: each step answers the request or passes it on, in this order.
void Router::onRequest(TransactionId id, const sip::Message& req, const transport::Source& src) {
  const transaction::PreprocessedRoute route =
      proxy_.preprocessedRoute(req);  // 16.4, once for every step
  if (answerForSelf(id, req, route)) {
    return;  // 1. for the router itself
  }
  if (!proxy_.checkRequest(id, req)) {
    return;  // 2. sanity: Max-Forwards, loops, Proxy-Require
  }
  if (auto to = req.to(); to && to->tag().has_value()) {
    validateInDialog(id, req, route);  // 3. in-dialog: only along a dialog we know
    return;
  }
  if (rejectPreloadedRoute(id, route) || rejectWhileDraining(id)) {
    return;  // 4. no preloaded Route, drain
  }
  if (req.method() == sip::Method::kRegister) {
    handleRegister(id, req, src);  // 5. registrar
    return;
  }
  handleInitial(id, req);  // 6. initial routing, 7. media anchoring, 8. forward
}

std::string_view Router::nextHopOf(const transaction::PreprocessedRoute& route) {
  return route.nextRoute.empty() ? route.requestUri : route.nextRoute;
}

bool Router::namesSelf(const sip::Uri& uri) {
  if (!uri.isSip()) {
    return false;
  }
  if (proxy_.isSelf(uri)) {
    return true;
  }
  auto to = resolve(uri);
  return to && proxy_.isSelfDestination(*to);
}

bool Router::answerForSelf(TransactionId id, const sip::Message& req,
                           const transaction::PreprocessedRoute& route) {
  if (req.method() == sip::Method::kRegister || !route.nextRoute.empty()) {
    // The registrar's, whichever of our names it uses; or on to the next Route (one of ours
    // under another name ends as a 482 branch).
    return false;
  }
  auto ruri = sip::parseUri(route.requestUri);
  if (!ruri || !ruri->isSip()) {
    return false;
  }
  auto to = req.to();
  const bool initial = !to || !to->tag().has_value();
  const bool options = req.method() == sip::Method::kOptions;
  if (initial && !options && !ruri->user.empty()) {
    return false;  // a user at our address is a user of the domain (an alias): the dialplan's
  }
  const bool self = namesSelf(*ruri);
  if (options && ruri->user.empty() && (self || shared_.isLocal(*ruri))) {
    // The edges' liveness probe (with any Max-Forwards, RFC 3261 11).
    RouterCounters::bump(counters_.optionsAnswered);
    proxy_.respond(id, 200, "OK",
                   "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, "
                   "PRACK, REFER, NOTIFY, SUBSCRIBE\r\nAccept: application/sdp\r\n");
    return true;
  }
  if (!self || (initial && !ruri->user.empty())) {
    return false;
  }
  if (proxy_.checkRequest(id, req)) {
    counters_.reject(Rejection::kForSelf);
    refuse(id, 404, "Not Found");
  }
  return true;
}

bool Router::rejectPreloadedRoute(TransactionId id, const transaction::PreprocessedRoute& route) {
  // Our own entries were popped; any other Route on an initial request was written by the
  // client: following it would send the request wherever the client likes.
  if (route.nextRoute.empty()) {
    return false;
  }
  counters_.reject(Rejection::kForeignHop);
  refuse(id, 403, "Preloaded Route Not Allowed");
  return true;
}

bool Router::rejectWhileDraining(TransactionId id) {
  if (!shared_.draining.load(std::memory_order_relaxed)) {
    return false;
  }
  RouterCounters::bump(counters_.drainRejected);
  // The edge tries the next router at once on this header (role::kDrainingHeader) and never
  // shows it to the caller.
  refuse(id, 503, "Draining", "Retry-After: 0\r\nX-Evosip-Draining: 1\r\n");
  return true;
}

transaction::ForwardOptions Router::forwardOptions() const {
  transaction::ForwardOptions o;
  o.recordRoute = shared_.settings().recordRoute;
  o.recordRouteTcp = shared_.settings().recordRouteTcp;
  o.dropHeaderPrefix = "X-Evosip-";  // only the router sets them (routeToApp adds its own)
  return o;
}

void Router::forward(TransactionId id, std::vector<transaction::Target> targets,
                     transaction::ForwardOptions options) {
  // A next hop by host name waits for its address (next_hop_dns.cpp); the closure that resumes
  // the request is made only then.
  if (!nextHopsKnown(id, targets, [&] {
        return [this, id, targets, options]() mutable {
          forward(id, std::move(targets), std::move(options));
        };
      })) {
    return;
  }
  proxy_.forward(id, std::move(targets), std::move(options));
}

}  // namespace evosip::router
