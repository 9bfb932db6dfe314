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

#include "store_nonce_counts.hpp"

namespace evosip::router {
namespace {

using transaction::TransactionId;

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

std::string tagOf(const Result<sip::NameAddr>& na) {
  if (!na) {
    return {};
  }
  auto t = na->tag();
  return t ? std::string(*t) : std::string();
}

bool hasSdp(const sip::Message& m) {
  if (m.body().empty()) {
    return false;
  }
  const auto* ct = m.find(sip::HeaderId::kContentType);
  return ct != nullptr && istartsWith(trim(ct->value), "application/sdp");
}

// The caller is behind a NAT when the edge saw its requests come from elsewhere than its own
// Via says (received / rport on the UA's Via, the last one), or when its SDP names an address
// other than the one the edge saw.
bool natDetected(const sip::Message& m) {
  std::string_view last;
  for (const auto& h : m.headers()) {
    if (h.id == sip::HeaderId::kVia) {
      sip::ValueSplitter values(h.value);
      while (auto v = values.next()) {
        last = *v;
      }
    }
  }
  auto via = sip::parseVia(last);
  if (!via) {
    return false;
  }
  const auto received = via->received();
  if (received && *received != via->host) {
    return true;
  }
  if (auto rport = via->rport(); rport && !rport->empty()) {
    const uint16_t sentBy = via->port != 0 ? via->port : 5060;
    if (parseDecimal(*rport, 65535).value_or(sentBy) != sentBy) {
      return true;
    }
  }
  // c=IN IP4 <address> anywhere in the body, compared with what the edge saw.
  const std::string_view seen = received.value_or(via->host);
  const std::string_view body = m.body();
  for (size_t pos = body.find("c=IN IP"); pos != std::string_view::npos;
       pos = body.find("c=IN IP", pos + 1)) {
    std::string_view rest = body.substr(pos + 8);  // after "c=IN IP4"
    rest = trim(rest.substr(0, rest.find_first_of("\r\n")));
    rest = rest.substr(0, rest.find('/'));
    if (!rest.empty() && rest != seen && rest != "0.0.0.0" && rest != "::") {
      return true;
    }
  }
  return false;
}

int64_t steadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Offer/answer flags the router always sends: the relay's address in o= and c=, and no ICE
// candidates that would let the phones bypass it.
void addMediaFlags(bencode::Value& cmd) {
  bencode::Value replace = bencode::Value::makeList();
  replace.add("origin").add("session-connection");
  cmd.set("replace", std::move(replace));
  cmd.set("ICE", "remove");
}

Result<transport::Endpoint> relayEndpoint(std::string_view uri) {
  if (uri.starts_with("udp:")) {
    uri.remove_prefix(4);
  }
  return transport::parseEndpoint(uri, 2223);
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

void Router::onRequest(TransactionId id, const sip::Message& req, const transport::Source& src) {
  auto to = req.to();
  const bool inDialog = to && to->tag().has_value();
  if (inDialog) {
    forwardInDialog(id, req);
    return;
  }
  if (shared_.draining.load(std::memory_order_relaxed)) {
    RouterCounters::bump(counters_.drainRejected);
    proxy_.respond(id, 503, "Draining", "Retry-After: 0\r\n");
    return;
  }
  if (req.method() == sip::Method::kRegister) {
    handleRegister(id, req, src);
    return;
  }
  handleInitial(id, req);
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
        proxy_.respond(id, plan.code, plan.reason, plan.extraHeaders);
        return;
      }
      // Run the writes, then answer with every current binding (RFC 3261 10.3 step 8).
      struct Pending {
        size_t left = 0;
        bool failed = false;
      };
      auto pending = std::make_shared<Pending>();
      pending->left = plan.upserts.size() + plan.removals.size();
      auto answer = [this, id, now, pathLines,
                     resulting = plan.resulting](const std::shared_ptr<Pending>& p) {
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
    });
  });
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
  const transaction::ForwardOptions options{shared_.settings().recordRoute, {}};
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
  transaction::ForwardOptions options{shared_.settings().recordRoute, {}};
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

void Router::removeDialog(const sip::Message& req) {
  const std::string callId(req.callId());
  const std::string a = tagOf(req.from());
  const std::string b = tagOf(req.to());
  // The BYE may come from either side: the record is keyed caller tag first.
  store_->getDialogs(callId, [this, a, b](Result<std::vector<store::DialogRecord>> r) {
    if (!r) {
      RouterCounters::bump(counters_.storeErrors);
      return;
    }
    for (const auto& d : *r) {
      if ((d.id.fromTag == a && d.id.toTag == b) || (d.id.fromTag == b && d.id.toTag == a)) {
        if (!d.mediaRelay.empty()) {
          deleteMedia(d.mediaRelay, d.id.callId, d.id.fromTag);
        }
        store_->removeDialog(d.id, [this](Result<void> done) {
          RouterCounters::bump(done ? counters_.dialogsRemoved : counters_.storeErrors);
        });
      }
    }
  });
}

void Router::onResponse(TransactionId server, const sip::Message& response) {
  if (response.statusCode() < 200 || response.statusCode() >= 300) {
    return;
  }
  auto cseq = response.cseq();
  if (!cseq || cseq->method != sip::Method::kInvite) {
    return;
  }
  store::DialogRecord rec;
  bool initial = false;
  withRequest(server, [&](const sip::Message& req) {
    auto to = req.to();
    initial = to && !to->tag().has_value();
    if (auto c = req.find(sip::HeaderId::kContact)) {
      if (auto na = sip::parseNameAddr(c->value)) {
        rec.callerContact = std::string(na->uriText);
      }
    }
  });
  if (!initial) {
    return;  // a re-INVITE: the dialog exists
  }
  rec.id.callId = std::string(response.callId());
  rec.id.fromTag = tagOf(response.from());
  rec.id.toTag = tagOf(response.to());
  for (const auto& h : response.headers()) {
    if (h.id == sip::HeaderId::kRecordRoute) {
      sip::ValueSplitter values(h.value);
      while (auto v = values.next()) {
        rec.callerRouteSet.emplace_back(*v);
      }
    }
    if (h.id == sip::HeaderId::kContact && rec.calleeContact.empty()) {
      if (auto na = sip::parseNameAddr(h.value)) {
        rec.calleeContact = std::string(na->uriText);
      }
    }
  }
  rec.calleeRouteSet.assign(rec.callerRouteSet.rbegin(), rec.callerRouteSet.rend());
  rec.callerCseq = cseq->number;
  rec.owner = shared_.settings().instanceId;
  if (auto m = mediaCalls_.find(rec.id.callId); m != mediaCalls_.end()) {
    rec.mediaRelay = m->second.relayUri;  // any router can send the delete on BYE
  }
  rec.created = store::systemNow();
  rec.expires = rec.created + shared_.settings().dialogMaxDuration;
  store_->putDialog(std::move(rec), [this](Result<void> r) {
    RouterCounters::bump(r ? counters_.dialogsCreated : counters_.storeErrors);
  });
}

// ---- media anchoring (rtpengine's ng protocol, to `evosip media` or rtpengine) ----

void Router::forwardWithMedia(TransactionId id, std::vector<transaction::Target> targets,
                              transaction::ForwardOptions options, MediaMode mode) {
  // Nothing to decide without a relay to use (`nat` goes on unanchored then): no second parse
  // of the request on the way of every call.
  auto set = shared_.media();
  if (mode == MediaMode::kNever || (mode == MediaMode::kNat && set->size() == 0)) {
    proxy_.forward(id, std::move(targets), std::move(options));
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
    proxy_.forward(id, std::move(targets), std::move(options));
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
      proxy_.forward(id, std::move(targets), std::move(options));
      return;
    }
    RouterCounters::bump(counters_.mediaFailures);
    proxy_.respond(id, 503, "No Media Relay", "Retry-After: 5\r\n");
    return;
  }
  sendOffer(id, std::move(targets), std::move(options), set->at(pick).uri, set->at(pick).endpoint,
            true, pick);
}

void Router::forwardInDialog(TransactionId id, const sip::Message& req) {
  // The route set carries the way (the edge Record-Routes); any router serves the dialog.
  transaction::ForwardOptions options{shared_.settings().recordRoute, {}};
  if (req.method() == sip::Method::kBye) {
    removeDialog(req);
    mediaCalls_.erase(std::string(req.callId()));
  }
  if (req.method() != sip::Method::kInvite || !hasSdp(req)) {
    proxy_.forward(id, {transaction::Target{}}, std::move(options));
    return;
  }
  // A re-INVITE with an offer: through the relay of the dialog, if it has one.
  const std::string callId(req.callId());
  const std::string a = tagOf(req.from());
  const std::string b = tagOf(req.to());
  store_->getDialogs(callId, [this, id, a, b, options, alive = std::weak_ptr<char>(alive_)](
                                 Result<std::vector<store::DialogRecord>> r) mutable {
    if (alive.expired()) {
      return;
    }
    std::string relayUri;
    if (r) {
      for (const auto& d : *r) {
        if ((d.id.fromTag == a && d.id.toTag == b) || (d.id.fromTag == b && d.id.toTag == a)) {
          relayUri = d.mediaRelay;
        }
      }
    } else {
      RouterCounters::bump(counters_.storeErrors);
    }
    auto relay = relayEndpoint(relayUri);
    if (relayUri.empty() || !relay) {
      proxy_.forward(id, {transaction::Target{}}, std::move(options));
      return;
    }
    sendOffer(id, {transaction::Target{}}, std::move(options), relayUri, *relay, false, SIZE_MAX);
  });
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
        addMediaFlags(cmd);
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
        proxy_.forward(id, std::move(targets), std::move(options));
      });
}

bool Router::holdResponse(TransactionId client, const sip::Message& response) {
  const int code = response.statusCode();
  if (code <= 100 || code >= 300 || !hasSdp(response)) {
    return false;
  }
  auto cseq = response.cseq();
  if (!cseq || cseq->method != sip::Method::kInvite) {
    return false;
  }
  auto it = mediaCalls_.find(std::string(response.callId()));
  if (it == mediaCalls_.end()) {
    return false;
  }
  bencode::Value cmd = bencode::Value::makeDict();
  cmd.set("command", "answer")
      .set("call-id", response.callId())
      .set("from-tag", tagOf(response.from()))
      .set("to-tag", tagOf(response.to()))
      .set("sdp", response.body());
  if (auto via = response.topVia(); via && via->branch()) {
    cmd.set("via-branch", *via->branch());
  }
  addMediaFlags(cmd);
  std::string text(
      response.buffer().substr(response.startOffset(), response.size() - response.startOffset()));
  ng_.request(it->second.relay, cmd,
              [this, client, text = std::move(text),
               alive = std::weak_ptr<char>(alive_)](Result<bencode::Value> r) {
                if (alive.expired()) {
                  return;
                }
                const auto sdp = r ? r->string("sdp") : std::nullopt;
                auto m = sip::Message::parse(text);
                if (!sdp || !m) {
                  // The answer goes on as the callee wrote it: better one-way audio than none.
                  RouterCounters::bump(counters_.mediaFailures);
                  log::get("router")->warn("media relay refused an answer: {}",
                                           r ? "no sdp in the reply" : r.error().message);
                  proxy_.resumeResponse(client, text);
                  return;
                }
                RouterCounters::bump(counters_.mediaAnswers);
                sip::MessageEditor edit(*m);
                edit.replaceBody(*sdp);
                proxy_.resumeResponse(client, edit.str());
              });
  return true;
}

void Router::onContextDone(TransactionId server, bool answered) {
  auto it = mediaByServer_.find(server.value);
  if (it == mediaByServer_.end()) {
    return;
  }
  const std::string callId = std::move(it->second);
  mediaByServer_.erase(it);
  auto call = mediaCalls_.find(callId);
  if (call == mediaCalls_.end()) {
    return;
  }
  if (!answered && call->second.initial) {
    // Failed, cancelled or timed out: the relay's session has no use.
    deleteMedia(call->second.relayUri, callId, call->second.fromTag);
    mediaCalls_.erase(call);
    return;
  }
  // Kept a while for retransmitted 2xx (Timer L, 64*T1), whose SDP is rewritten again.
  call->second.forgetAt = clock_.now() + std::chrono::seconds(32);
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
