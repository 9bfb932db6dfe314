#include <malloc.h>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <openssl/rand.h>

#include <evosip/auth/challenge.hpp>
#include <evosip/base/hash.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/control/client.hpp>
#include <evosip/log/log.hpp>
#include <evosip/router/router.hpp>
#include <evosip/sip/auth.hpp>
#include <evosip/sip/params.hpp>

#include "router_util.hpp"
#include "store_nonce_counts.hpp"

namespace evosip::router {
namespace {

using transaction::TransactionId;
using namespace detail;

// Percent-encodes a path segment (RFC 3986 unreserved characters pass).
std::string pathSegment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

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

int64_t steadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

RouterShared::RouterShared(RouterSettings settings, auth::NonceCodec::Settings nonces,
                           Dialplan dialplan, std::shared_ptr<role::TargetSet> apps,
                           const runtime::Clock& clock)
    : settings_(std::move(settings)),
      nonces_(std::move(nonces)),
      verifier_(nonces_, {.requireQop = settings_.requireQop,
                          .algorithms = settings_.challengeAlgorithms,
                          .opaque = {}}),
      dialplan_(std::move(dialplan)),
      credentialTable_(settings_.credentials, clock),
      apps_(std::move(apps)),
      media_(*role::TargetSet::build({})) {
  // "host" matches any port; "host:port" ([v6]:port) only that port (5060 when the URI has
  // none): another UA on the platform's IP is not the platform. Parsed once, here.
  for (const auto& a : settings_.aliases) {
    std::string_view host = a;
    uint16_t port = 0;
    const auto colon = host.rfind(':');
    const bool bracketed = !host.empty() && host.front() == '[';
    if (colon != std::string_view::npos &&
        (bracketed ? host[colon - 1] == ']' : host.find(':') == colon)) {
      auto p = parseDecimal(host.substr(colon + 1), 65535);
      port = p ? static_cast<uint16_t>(*p) : 0;
      host = host.substr(0, colon);
    }
    if (bracketed && host.size() > 2) {
      host = host.substr(1, host.size() - 2);
    }
    aliases_.emplace_back(std::string(host), port);
  }
}

bool RouterShared::isLocal(const sip::Uri& uri) const {
  if (iequals(uri.host, settings_.domain)) {
    return true;
  }
  for (const auto& [host, port] : aliases_) {
    if (iequals(uri.host, host) && (port == 0 || uri.portOrDefault() == port)) {
      return true;
    }
  }
  return false;
}

std::shared_ptr<role::TargetSet> RouterShared::apps() const {
  std::lock_guard lock(appsMutex_);
  return apps_;
}

void RouterShared::setApps(std::shared_ptr<role::TargetSet> apps) {
  std::lock_guard lock(appsMutex_);
  apps->inheritFrom(*apps_);
  apps_ = std::move(apps);
}

std::shared_ptr<role::TargetSet> RouterShared::media() const {
  std::lock_guard lock(appsMutex_);
  return media_;
}

void RouterShared::setMedia(std::shared_ptr<role::TargetSet> media) {
  std::lock_guard lock(appsMutex_);
  media->inheritFrom(*media_);
  media_ = std::move(media);
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
      credentials_(
          shared.settings().credentials, clock,
          [this](const std::string& domain, const std::string& user,
                 std::function<void(auth::CredentialLookup)> done) {
            // Another worker may have fetched this user already.
            auto& table = shared_.credentialTable();
            if (auto hit = table.find(domain, user)) {
              done(std::move(*hit));
              return;
            }
            const uint64_t generation = table.generation();
            const auto& s = shared_.settings();
            apiPool_.request(
                "GET", "/internal/v1/credentials/" + pathSegment(domain) + "/" + pathSegment(user),
                s.apiToken, "", s.apiTimeout,
                [this, done = std::move(done), alive = std::weak_ptr<char>(alive_), domain, user,
                 generation](tl::expected<control::HttpResponse, std::string> r) {
                  if (alive.expired()) {
                    return;
                  }
                  auth::CredentialLookup lookup;
                  if (r && r->status == 404) {
                    lookup.status = auth::CredentialStatus::kUnknownUser;
                    RouterCounters::bump(counters_.apiUnknown);
                  } else if (r && r->status == 200) {
                    boost::system::error_code ec;
                    auto v = boost::json::parse(r->body, ec);
                    const auto* o = ec ? nullptr : v.if_object();
                    const auto* md5 = o ? o->if_contains("ha1_md5") : nullptr;
                    const auto* sha = o ? o->if_contains("ha1_sha256") : nullptr;
                    if (md5 && sha && md5->is_string() && sha->is_string()) {
                      lookup.status = auth::CredentialStatus::kFound;
                      lookup.credentials = auth::Credentials(std::string(md5->as_string()),
                                                             std::string(sha->as_string()));
                      RouterCounters::bump(counters_.apiFound);
                    } else {
                      RouterCounters::bump(counters_.apiFailed);
                    }
                  } else {
                    RouterCounters::bump(counters_.apiFailed);
                  }
                  shared_.credentialTable().put(domain, user, lookup, generation);
                  done(std::move(lookup));
                });
          }),
      authenticator_(shared.verifier(), credentials_, *nonceCounts_, shared.settings().domain),
      proxy_(proxy ? std::move(*proxy) : shared.settings().proxy,
             withRandomSeed(shared.settings().layer, worker), clock, std::move(send), *this),
      ng_(io, shared.settings().ng) {}

Router::~Router() {
  // The store first: a backend that completes pending operations as it closes calls back into
  // this Router, which must still be whole then.
  store_.reset();
}

void Router::onTick() {
  const auto now = clock_.now();
  proxy_.onTick(now);
  // Finished calls are kept 32 s for retransmitted 2xx: swept once a second, not every tick.
  if (now >= nextMediaSweep_) {
    nextMediaSweep_ = now + std::chrono::seconds(1);
    std::erase_if(mediaCalls_, [now](const auto& kv) { return kv.second.forgetAt <= now; });
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
  const transaction::RouteInfo route = proxy_.routeInfo(req);  // 16.4, once for every step
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

std::string_view Router::nextHopOf(const transaction::RouteInfo& route) {
  return route.nextRoute.empty() ? route.requestUri : route.nextRoute;
}

bool Router::namesSelf(std::string_view uriOrRoute) {
  auto na = sip::parseNameAddr(uriOrRoute);
  if (!na || !na->uri.isSip()) {
    return false;
  }
  if (proxy_.isSelf(na->uri)) {
    return true;
  }
  auto to = resolve(na->uri);
  return to && proxy_.isSelfDestination(*to);
}

bool Router::answerForSelf(TransactionId id, const sip::Message& req,
                           const transaction::RouteInfo& route) {
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
  const bool self = namesSelf(route.requestUri);
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

bool Router::rejectPreloadedRoute(TransactionId id, const transaction::RouteInfo& route) {
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
  o.dropHeaderPrefix = "X-Evosip-";  // only the router sets them (routeToApp adds its own)
  return o;
}

void Router::forward(TransactionId id, std::vector<transaction::Target> targets,
                     transaction::ForwardOptions options) {
  proxy_.forward(id, std::move(targets), std::move(options));
}

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
  authenticate(id, req, user, [this, id, aor, received] {
    store_->getBindings(aor, [this, id, aor, received](Result<std::vector<store::Binding>> cur) {
      if (!cur) {
        storeFailed(id);
        return;
      }
      const auto now = store::systemNow();
      RegisterPlan plan;
      std::string pathLines;
      if (!withRequest(id, [&](const sip::Message& m) {
            plan = planRegister(m, aor, *cur, shared_.settings().registrar, now,
                                shared_.settings().instanceId, received);
            for (const auto& h : m.headers()) {
              if (h.id == sip::HeaderId::kPath) {
                pathLines.append("Path: ").append(h.value).append("\r\n");
              }
            }
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
    });
  });
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

void Router::handleInitial(TransactionId id, const sip::Message& req) {
  auto ruri = sip::parseUri(req.requestUri());
  auto from = req.from();
  if (!ruri || !from) {
    refuse(id, 400, "Bad Request-URI or From");
    return;
  }
  if (!ruri->isSip()) {
    refuse(id, 416, "Unsupported URI Scheme");
    return;
  }
  switch (initialAccess(req, *ruri, from->uri)) {
    case InitialAccess::kRelayDenied:
      refuse(id, 403, "Relaying Denied");
      return;
    case InitialAccess::kServiceDenied:
      RouterCounters::bump(counters_.serviceUnauthenticated);
      refuse(id, 403, "Service For Subscribers Only");
      return;
    case InitialAccess::kAuthenticate:
      authenticate(id, req, std::string(from->uri.user), [this, id] { routeInitial(id); });
      return;
    case InitialAccess::kOpen:
      break;
  }
  routeInitial(id);
}

void Router::routeInitial(TransactionId id) {
  std::string user;
  bool local = false;
  withRequest(id, [&](const sip::Message& m) {
    auto ruri = sip::parseUri(m.requestUri());
    local = ruri && shared_.isLocal(*ruri);
    user = ruri ? std::string(ruri->user) : std::string();
  });
  const transaction::ForwardOptions options = forwardOptions();
  if (!local) {
    // An authenticated subscriber calling out: the core routes by the Request-URI.
    forwardWithMedia(id, {transaction::Target{}}, options, shared_.settings().mediaMode);
    return;
  }
  const std::string aor = user + "@" + shared_.settings().domain;
  store_->getBindings(aor, [this, id, user, options](Result<std::vector<store::Binding>> r) {
    if (!r) {
      storeFailed(id);
      return;
    }
    if (!r->empty()) {
      std::vector<transaction::Target> targets;
      for (const auto& b : *r) {
        transaction::Target t;
        t.uri = b.contact;
        t.routeSet = b.path;
        t.q = b.q;
        targets.push_back(std::move(t));
      }
      forwardWithMedia(id, std::move(targets), options, shared_.settings().mediaMode);
      return;
    }
    if (const auto* number = shared_.dialplan().find(user)) {
      routeToService(id, *number);
      return;
    }
    answerUnreachable(id, user);
  });
}

void Router::routeToApp(TransactionId id, const ServiceNumber& number, const sip::Message& req) {
  auto apps = shared_.apps();
  const int64_t nowNs = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
  size_t pick = apps->pick(req.callId(), nowNs);
  if (pick == SIZE_MAX) {
    proxy_.respond(id, 503, "No Application Server", "Retry-After: 5\r\n");
    return;
  }
  auto from = req.from();
  auto to = req.to();
  const std::string headers = Dialplan::headerLines(
      number, from ? from->uri.user : std::string_view(), to ? to->uri.user : std::string_view());
  transaction::Target t;
  t.nextHop = transaction::Destination{transport::Protocol::kUdp, apps->at(pick).endpoint, {}};
  apps->at(pick).forwarded.fetch_add(1, std::memory_order_relaxed);
  transaction::ForwardOptions options = forwardOptions();
  options.editBranch = [headers](size_t, const transaction::Target&, sip::MessageEditor& edit) {
    // One edit of the whole block: the lines go in just before the blank line.
    std::string_view rest = headers;
    while (!rest.empty()) {
      auto eol = rest.find("\r\n");
      auto line = rest.substr(0, eol);
      auto colon = line.find(':');
      edit.appendHeader(line.substr(0, colon), trim(line.substr(colon + 1)));
      rest.remove_prefix(eol + 2);
    }
  };
  forwardWithMedia(id, {std::move(t)}, std::move(options),
                   number.media.value_or(shared_.settings().mediaMode));
}

// ---- media anchoring (rtpengine's ng protocol, to `evosip media` or rtpengine) ----

void Router::forwardWithMedia(TransactionId id, std::vector<transaction::Target> targets,
                              transaction::ForwardOptions options, MediaMode mode) {
  // Nothing to decide without a relay to use (`nat` goes on unanchored then): no second parse
  // of the request on the way of every call.
  auto set = shared_.media();
  if (mode == MediaMode::kNever || (mode == MediaMode::kNat && set->size() == 0)) {
    forward(id, std::move(targets), std::move(options));
    return;
  }
  bool want = false;
  std::string callId;
  withRequest(id, [&](const sip::Message& m) {
    if (m.method() != sip::Method::kInvite || !hasSdp(m)) {
      return;  // no offer in the request (a delayed offer is not anchored)
    }
    want = mode == MediaMode::kAlways || natDetected(m);
    callId = std::string(m.callId());
  });
  if (!want) {
    forward(id, std::move(targets), std::move(options));
    return;
  }
  const size_t pick = set->pick(callId, steadyNowNs());
  if (pick == SIZE_MAX) {
    // `nat` is best effort (no relay configured or none up: the call goes on unanchored);
    // `always` means the call must not bypass a relay.
    if (mode == MediaMode::kNat) {
      if (set->size() != 0) {
        RouterCounters::bump(counters_.mediaFailures);
      }
      forward(id, std::move(targets), std::move(options));
      return;
    }
    RouterCounters::bump(counters_.mediaFailures);
    proxy_.respond(id, 503, "No Media Relay", "Retry-After: 5\r\n");
    return;
  }
  sendOffer(id, std::move(targets), std::move(options), set->at(pick).uri, set->at(pick).endpoint,
            true, pick);
}

void Router::sendOffer(TransactionId id, std::vector<transaction::Target> targets,
                       transaction::ForwardOptions options, std::string relayUri,
                       transport::Endpoint relay, bool initial, size_t tried) {
  bencode::Value cmd = bencode::Value::makeDict();
  std::string callId;
  std::string fromTag;
  if (!withRequest(id, [&](const sip::Message& m) {
        callId = std::string(m.callId());
        fromTag = tagOf(m.from());
        cmd.set("command", "offer").set("call-id", callId).set("from-tag", fromTag);
        if (!initial) {
          cmd.set("to-tag", tagOf(m.to()));
        }
        if (auto via = m.topVia(); via && via->branch()) {
          cmd.set("via-branch", *via->branch());
        }
        cmd.set("sdp", m.body());
        addMediaFlags(cmd, natDetected(m) ? sourceAddress(m) : std::string_view{});
      })) {
    return;
  }
  ng_.request(
      relay, cmd,
      [this, id, targets = std::move(targets), options = std::move(options),
       relayUri = std::move(relayUri), relay, initial, tried, callId, fromTag,
       alive = std::weak_ptr<char>(alive_)](Result<bencode::Value> r) mutable {
        if (alive.expired()) {
          return;
        }
        const auto sdp = r ? r->string("sdp") : std::nullopt;
        if (!sdp) {
          RouterCounters::bump(counters_.mediaFailures);
          log::get("router")->warn("call {}: media relay {} refused the offer: {}", callId,
                                   relayUri, r ? "no sdp in the reply" : r.error().message);
          if (initial && tried != SIZE_MAX && !r && r.error().code == Errc::kTimeout) {
            // A relay that does not answer: hold it down for a while, try the next one once.
            auto set = shared_.media();
            const int64_t now = steadyNowNs();
            if (tried < set->size() && set->at(tried).uri == relayUri) {
              set->at(tried).downUntilNs.store(now + 10'000'000'000, std::memory_order_relaxed);
              set->at(tried).timeouts.fetch_add(1, std::memory_order_relaxed);
            }
            const size_t next = set->pick(callId, now, tried);
            if (next != SIZE_MAX && set->at(next).uri != relayUri) {
              sendOffer(id, std::move(targets), std::move(options), set->at(next).uri,
                        set->at(next).endpoint, true, SIZE_MAX);
              return;
            }
          }
          proxy_.respond(id, 503, "Media Relay Unavailable", "Retry-After: 5\r\n");
          return;
        }
        RouterCounters::bump(counters_.mediaOffers);
        const auto* st = proxy_.layer().server(id);
        if (st == nullptr || st->lastStatus() >= 200) {
          // Cancelled (or timed out) while the relay answered: nothing will use the session.
          if (initial) {
            deleteMedia(relayUri, callId, fromTag);
          }
          return;
        }
        MediaCall call;
        call.relayUri = relayUri;
        call.relay = relay;
        call.fromTag = fromTag;
        call.initial = initial;
        mediaCalls_[callId] = std::move(call);
        mediaByServer_[id.value] = callId;
        auto edit = std::move(options.editBranch);
        options.editBranch = [edit = std::move(edit), body = std::string(*sdp)](
                                 size_t i, const transaction::Target& t, sip::MessageEditor& e) {
          if (edit) {
            edit(i, t, e);
          }
          e.replaceBody(body);
        };
        forward(id, std::move(targets), std::move(options));
      });
}

void Router::deleteMedia(const std::string& relayUri, const std::string& callId,
                         const std::string& fromTag) {
  auto relay = relayEndpoint(relayUri);
  if (!relay) {
    RouterCounters::bump(counters_.mediaFailures);
    return;
  }
  bencode::Value cmd = bencode::Value::makeDict();
  cmd.set("command", "delete").set("call-id", callId).set("from-tag", fromTag);
  ng_.request(*relay, cmd, [this, alive = std::weak_ptr<char>(alive_)](Result<bencode::Value> r) {
    if (alive.expired()) {
      return;
    }
    RouterCounters::bump(r ? counters_.mediaDeletes : counters_.mediaFailures);
  });
}

}  // namespace evosip::router
