// Next hops named by a host name (RFC 3263 client side): a request whose next hop (a Route, else
// its Request-URI) names a host goes on at once when the name's answer is cached; otherwise it
// waits, parked on its worker, for a lookup on the next-hop resolver's threads. No worker ever
// waits for DNS: the answer is posted back to the worker that parked the request.
#include <boost/asio/post.hpp>

#include <evosip/base/strings.hpp>
#include <evosip/router/router.hpp>
#include <evosip/sip/address.hpp>

namespace evosip::router {

using transaction::TransactionId;

namespace {

// A name whose servers failed is asked for again after dns.min_ttl_s; its callers retry then.
constexpr std::string_view kRetryAfter = "Retry-After: 5\r\n";

// A name a DNS query can carry: at most 253 characters, labels of 1..63.
bool fitsDns(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) {
        return false;
      }
      label = 0;
    } else if (++label > 63) {
      return false;
    }
  }
  return true;
}

// The next hop of each target as the core will choose it (RFC 3261 16.6 items 6-7), when that
// is a URI: the target's first Route, else the request's, else the target's or request's URI.
struct RequestHops {
  std::string nextRoute;
  std::string requestUri;
};

Result<sip::Uri> hopUriOf(const transaction::Target& t, const RequestHops& request) {
  if (!t.routeSet.empty()) {
    return sip::parseHopUri(t.routeSet.front(), sip::HopText::kRoute);
  }
  if (!request.nextRoute.empty()) {
    return sip::parseHopUri(request.nextRoute, sip::HopText::kRoute);
  }
  return sip::parseHopUri(t.uri.empty() ? request.requestUri : t.uri, sip::HopText::kUri);
}

}  // namespace

std::optional<transport::DnsQuery> Router::nextHopQuery(const sip::Uri& uri) const {
  if (!uri.isSip() || uri.hostType != sip::HostType::kDomain || proxy_.isSelf(uri) ||
      shared_.isLocal(uri)) {
    return std::nullopt;
  }
  transport::DnsQuery q;
  q.host = transport::canonicalName(uri.host);
  q.port = uri.portOrDefault();
  if (uri.port == 0 && !uri.params.has("maddr")) {
    // RFC 3263 4.2: SRV for the transport the URI asks for (4.1: UDP when it names none).
    const auto transport = uri.params.get("transport");
    if (uri.scheme == sip::UriScheme::kSips || (transport && iequals(*transport, "tls"))) {
      q.service = "_sips._tcp";
    } else if (transport && iequals(*transport, "tcp")) {
      q.service = "_sip._tcp";
    } else {
      q.service = "_sip._udp";
    }
  }
  return q;
}

std::optional<transport::Resolution> Router::resolutionOf(const transport::DnsQuery& query) const {
  if (delivered_ != nullptr && delivered_->first == query) {
    return delivered_->second;
  }
  const auto* resolver = shared_.nextHops();
  return resolver != nullptr ? resolver->cached(query) : std::nullopt;
}

std::optional<transport::Destination> Router::resolve(const sip::Uri& uri) {
  if (uri.hostType != sip::HostType::kDomain) {
    return ProxyUser::resolve(uri);
  }
  auto query = nextHopQuery(uri);
  if (!query) {
    return std::nullopt;
  }
  auto answer = resolutionOf(*query);
  if (!answer || answer->hops.empty()) {
    return std::nullopt;
  }
  // The first address in RFC 3263 order, with the URI's transport.
  const transport::Endpoint& hop = answer->hops.front().endpoint;
  const std::string host = hop.ip.to_string();
  sip::Uri numeric = uri;
  numeric.host = host;
  numeric.hostType = hop.ip.is_v4() ? sip::HostType::kIpv4 : sip::HostType::kIpv6;
  numeric.port = hop.port;
  return ProxyUser::resolve(numeric);
}

bool Router::nextHopsKnown(TransactionId id, const std::vector<transaction::Target>& targets,
                           const std::function<ParkedRequests::Resume()>& resume) {
  if (shared_.nextHops() == nullptr) {
    return true;
  }
  RequestHops request;
  const bool needRequest = std::any_of(targets.begin(), targets.end(), [](const auto& t) {
    return !t.nextHop && t.routeSet.empty();
  });
  if (needRequest) {
    withRequest(id, [&](const sip::Message& m) {
      const auto route = proxy_.preprocessedRoute(m);
      request.nextRoute = std::string(route.nextRoute);
      request.requestUri = std::string(route.requestUri);
    });
  }
  size_t named = 0;
  size_t usable = 0;  // targets the core can send to (or decides about itself)
  std::optional<transport::Resolution> failure;
  for (const auto& t : targets) {
    std::optional<transport::DnsQuery> query;
    if (!t.nextHop) {
      auto uri = hopUriOf(t, request);
      if (uri && uri->hostType == sip::HostType::kDomain) {
        query = nextHopQuery(*uri);
      }
    }
    if (!query) {
      ++usable;  // a numeric next hop, or nothing DNS can help with
      continue;
    }
    ++named;
    auto answer = fitsDns(query->host) ? resolutionOf(*query) : transport::Resolution{};
    if (!answer) {
      switch (parkUntilAnswered(id, std::move(*query), resume, answer)) {
        case Parking::kParked:
        case Parking::kRefused:
          return false;
        case Parking::kAnswered:
          break;
      }
    }
    if (answer && answer->hops.empty()) {
      failure = std::move(answer);
    } else {
      ++usable;
    }
  }
  if (named == 0) {
    return true;
  }
  if (usable == 0 && failure) {
    answerUnresolvable(id, *failure);
    return false;
  }
  RouterCounters::bump(delivered_ != nullptr ? counters_.dnsFound : counters_.dnsCached);
  return true;
}

Router::Parking Router::parkUntilAnswered(TransactionId id, transport::DnsQuery query,
                                          const std::function<ParkedRequests::Resume()>& resume,
                                          std::optional<transport::Resolution>& answer) {
  auto refuse = [this, id] {
    RouterCounters::bump(counters_.dnsBusy);
    proxy_.respond(id, 503, "Too Many DNS Lookups", kRetryAfter);
    return Parking::kRefused;
  };
  if (parked_.size() >= parked_.capacity()) {
    return refuse();  // before the lookup: a full room starts none
  }
  auto* resolver = shared_.nextHops();
  const auto start =
      lookUpOnWorker(query, [this](const transport::DnsQuery& q, const transport::Resolution& r) {
        onNextHopAnswer(q, r);
      });
  switch (start) {
    case transport::LookupStart::kBusy:
      return refuse();
    case transport::LookupStart::kQueued:
      if (!parked_.park(id.value, std::move(query), clock_.now() + shared_.settings().dnsTimeout,
                        resume())) {
        return refuse();
      }
      counters_.dnsParked.store(parked_.size(), std::memory_order_relaxed);
      return Parking::kParked;
    case transport::LookupStart::kCached:
      break;
  }
  answer = resolver->cached(query);  // answered since resolutionOf looked
  return Parking::kAnswered;
}

transport::LookupStart Router::lookUpOnWorker(
    const transport::DnsQuery& query,
    std::function<void(const transport::DnsQuery&, const transport::Resolution&)> then) {
  return shared_.nextHops()->lookup(
      query, [&io = io_, alive = std::weak_ptr<char>(alive_), then = std::move(then)](
                 const transport::DnsQuery& q, const transport::Resolution& r) {
        boost::asio::post(io, [alive, then, q, r] {
          if (!alive.expired()) {
            then(q, r);
          }
        });
      });
}

bool Router::ackWaitsForName(const std::string& text, const transaction::PreprocessedRoute& route) {
  if (shared_.nextHops() == nullptr) {
    return false;
  }
  auto uri = route.nextHopUri();
  auto query = uri && uri->hostType == sip::HostType::kDomain ? nextHopQuery(*uri) : std::nullopt;
  // An ACK has no transaction to park: it waits in its lookup's callback, as many at once as
  // requests may wait (beyond, or when the lookup cannot start, it is dropped as before).
  if (!query || !fitsDns(query->host) || resolutionOf(*query) ||
      acksWaiting_ >= parked_.capacity()) {
    return false;
  }
  const auto start = lookUpOnWorker(
      *query, [this, text](const transport::DnsQuery& q, const transport::Resolution& r) {
        --acksWaiting_;
        auto ack = sip::Message::parse(text);
        const std::pair<transport::DnsQuery, transport::Resolution> delivered{q, r};
        delivered_ = &delivered;
        if (!ack || !proxy_.forwardAck(*ack, forwardOptions())) {
          counters_.reject(Rejection::kAckDropped);
        }
        delivered_ = nullptr;
      });
  if (start != transport::LookupStart::kQueued) {
    return false;
  }
  ++acksWaiting_;
  return true;
}

void Router::answerUnresolvable(TransactionId id, const transport::Resolution& failure) {
  // No target left with an address: the lookup's verdict is the answer. 478 is not one of
  // RFC 3261's codes but the one SER, Kamailio and OpenSIPS send for a name that does not
  // resolve; a client that does not know it takes it as a 400 (RFC 3261 8.1.3.2).
  if (failure.error.empty()) {
    RouterCounters::bump(counters_.dnsNoAddress);
    proxy_.respond(id, 478, "Unresolvable Destination");
  } else {
    RouterCounters::bump(counters_.dnsFailed);
    proxy_.respond(id, 503, "DNS Failure", kRetryAfter);
  }
}

void Router::onNextHopAnswer(const transport::DnsQuery& query,
                             const transport::Resolution& answer) {
  const std::pair<transport::DnsQuery, transport::Resolution> delivered{query, answer};
  delivered_ = &delivered;
  for (auto& p : parked_.take(query)) {
    const auto* st = proxy_.layer().server(TransactionId{p.server});
    if (st == nullptr || st->lastStatus() >= 200) {
      RouterCounters::bump(counters_.dnsCancelled);  // CANCELled (487) or gone meanwhile
      continue;
    }
    p.resume();
  }
  delivered_ = nullptr;
  counters_.dnsParked.store(parked_.size(), std::memory_order_relaxed);
}

void Router::sweepParked(runtime::Clock::time_point now) {
  if (parked_.size() == 0) {
    return;
  }
  for (auto& p : parked_.takeExpired(now)) {
    const auto* st = proxy_.layer().server(TransactionId{p.server});
    if (st == nullptr || st->lastStatus() >= 200) {
      RouterCounters::bump(counters_.dnsCancelled);
      continue;
    }
    RouterCounters::bump(counters_.dnsTimeout);
    proxy_.respond(TransactionId{p.server}, 503, "DNS Timeout", kRetryAfter);
  }
  if (now >= nextParkSweep_) {
    // A parked INVITE that was CANCELled (the core answered it 487) leaves the room at once.
    nextParkSweep_ = now + std::chrono::milliseconds(100);
    const size_t gone = parked_.dropIf([this](uint64_t server) {
      const auto* st = proxy_.layer().server(TransactionId{server});
      return st == nullptr || st->lastStatus() >= 200;
    });
    for (size_t i = 0; i < gone; ++i) {
      RouterCounters::bump(counters_.dnsCancelled);
    }
  }
  counters_.dnsParked.store(parked_.size(), std::memory_order_relaxed);
}

}  // namespace evosip::router
