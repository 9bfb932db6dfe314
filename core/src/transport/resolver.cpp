// The resolver's thread: blocking libresolv lookups (res_nmkquery + res_nsend on a private
// res_state), one name at a time, each when its answer's TTL runs out.

#include <algorithm>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <array>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <strings.h>
#include <thread>

#include <fmt/format.h>

#include <evosip/log/log.hpp>
#include <evosip/transport/resolver.hpp>

namespace evosip::transport {

namespace {

using Clock = std::chrono::steady_clock;

// One res_state, used by the resolver's thread only.
class DnsClient {
 public:
  explicit DnsClient(const ResolverSettings& settings) {
    std::memset(&state_, 0, sizeof(state_));
    ready_ = res_ninit(&state_) == 0;
    if (!ready_) {
      return;
    }
    if (!settings.servers.empty()) {
      setServers(settings.servers);
    }
    state_.retrans = std::max(1, settings.timeoutS);
    state_.retry = std::max(1, settings.attempts);
  }
  ~DnsClient() {
    if (ready_) {
      res_nclose(&state_);  // frees the IPv6 server addresses too (glibc's __res_iclose)
    }
  }
  DnsClient(const DnsClient&) = delete;
  DnsClient& operator=(const DnsClient&) = delete;

  // The server's answer (any rcode it sends back), or why there is none.
  Result<DnsAnswer> query(const std::string& name, int type) {
    if (!ready_) {
      return makeError(Errc::kUnavailable, "the resolver configuration cannot be read");
    }
    std::array<u_char, NS_PACKETSZ> q{};
    const int qlen = res_nmkquery(&state_, ns_o_query, name.c_str(), ns_c_in, type, nullptr, 0,
                                  nullptr, q.data(), static_cast<int>(q.size()));
    if (qlen < 0) {
      return makeError(Errc::kInvalid, fmt::format("'{}' cannot be looked up", name));
    }
    std::vector<u_char> answer(65535);
    const int n =
        res_nsend(&state_, q.data(), qlen, answer.data(), static_cast<int>(answer.size()));
    if (n < 0) {
      return makeError(Errc::kUnavailable,
                       fmt::format("no answer for '{}' (timeout or server failure)", name));
    }
    return parseDnsAnswer(std::span<const uint8_t>(answer.data(), static_cast<size_t>(n)));
  }

 private:
  // The configured servers in place of resolv.conf's. An IPv4 server goes into nsaddr_list; an
  // IPv6 one, which does not fit there, into glibc's extension slot of the same index
  // (_u._ext.nsaddrs, a malloc'd sockaddr_in6 that res_nclose frees), with the nsaddr_list
  // entry's family 0 so that res_nsend takes the extension's address.
  void setServers(const std::vector<Endpoint>& servers) {
    const size_t n = std::min<size_t>(servers.size(), MAXNS);
    for (size_t i = 0; i < MAXNS; ++i) {
      std::free(state_._u._ext.nsaddrs[i]);
      state_._u._ext.nsaddrs[i] = nullptr;
    }
    for (size_t i = 0; i < n; ++i) {
      const Endpoint& server = servers[i];
      if (server.ip.is_v4()) {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_port = htons(server.port);
        const auto bytes = server.ip.to_v4().to_bytes();
        std::memcpy(&sin.sin_addr, bytes.data(), bytes.size());
        state_.nsaddr_list[i] = sin;
        continue;
      }
      auto* sin6 = static_cast<sockaddr_in6*>(std::calloc(1, sizeof(sockaddr_in6)));
      if (sin6 == nullptr) {
        throw std::bad_alloc();
      }
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(server.port);
      const auto v6 = server.ip.to_v6();
      const auto bytes = v6.to_bytes();
      std::memcpy(&sin6->sin6_addr, bytes.data(), bytes.size());
      sin6->sin6_scope_id = static_cast<uint32_t>(v6.scope_id());
      state_._u._ext.nsaddrs[i] = sin6;
      std::memset(&state_.nsaddr_list[i], 0, sizeof(state_.nsaddr_list[i]));
    }
    state_.nscount = static_cast<int>(n);
    state_._u._ext.nscount = 0;  // res_nsend takes its private copy of the list anew
  }

  struct __res_state state_;
  bool ready_ = false;
};

// A and AAAA records of a name; an error only when neither lookup got an answer.
Result<std::vector<boost::asio::ip::address>> lookupAddresses(DnsClient& dns,
                                                              const std::string& name,
                                                              uint32_t& ttl) {
  std::vector<boost::asio::ip::address> out;
  std::string error;
  int answered = 0;
  for (int type : {ns_t_a, ns_t_aaaa}) {
    auto answer = dns.query(name, type);
    if (!answer) {
      error = answer.error().message;
      continue;
    }
    if (answer->rcode != ns_r_noerror && answer->rcode != ns_r_nxdomain) {
      error = fmt::format("'{}': the server answered rcode {}", name, answer->rcode);
      continue;
    }
    ++answered;
    for (const auto& a : addressesOf(*answer, name, ttl)) {
      out.push_back(a);
    }
  }
  if (answered == 0) {
    return makeError(Errc::kUnavailable, error);
  }
  return out;
}

// RFC 3263 4.2: the SRV records of the name, each target's addresses from the additional section
// or looked up. nullopt when the name has no SRV records (then its A/AAAA records count).
Result<std::optional<std::vector<ResolvedHop>>> lookupService(DnsClient& dns, const DnsQuery& query,
                                                              uint32_t& ttl) {
  const std::string service = query.service + "." + query.host;
  auto answer = dns.query(service, ns_t_srv);
  if (!answer) {
    return tl::unexpected(answer.error());
  }
  if (answer->rcode != ns_r_noerror && answer->rcode != ns_r_nxdomain) {
    return makeError(Errc::kUnavailable,
                     fmt::format("'{}': the server answered rcode {}", service, answer->rcode));
  }
  std::vector<DnsRecord> records;
  for (const auto& rec : answer->answers) {
    if (rec.type == DnsRecord::Type::kSrv && rec.name == service) {
      records.push_back(rec);
    }
  }
  if (records.empty()) {
    return std::nullopt;
  }
  std::vector<ResolvedHop> hops;
  for (const auto& rec : records) {
    ttl = std::min(ttl, rec.ttl);
    if (rec.target.empty()) {
      continue;  // "." : the service is not offered at this name (RFC 2782)
    }
    auto addresses = addressesOf(*answer, rec.target, ttl);
    if (addresses.empty()) {
      auto looked = lookupAddresses(dns, rec.target, ttl);
      if (!looked) {
        return tl::unexpected(looked.error());
      }
      addresses = std::move(*looked);
    }
    for (const auto& a : addresses) {
      hops.push_back(ResolvedHop{Endpoint{a, rec.port}, rec.priority, rec.weight});
    }
  }
  return hops;
}

bool hopOrder(const ResolvedHop& a, const ResolvedHop& b) {
  if (a.priority != b.priority) {
    return a.priority < b.priority;
  }
  if (a.weight != b.weight) {
    return a.weight > b.weight;
  }
  return a.endpoint.str() < b.endpoint.str();
}

// The addresses of a name in the hosts file (every line that names it), read anew each time.
std::vector<boost::asio::ip::address> hostsFileAddresses(const std::string& name) {
  std::vector<boost::asio::ip::address> out;
  auto add = [&out](int family, const char* bytes) {
    boost::asio::ip::address a;
    if (family == AF_INET) {
      boost::asio::ip::address_v4::bytes_type b{};
      std::memcpy(b.data(), bytes, b.size());
      a = boost::asio::ip::address_v4(b);
    } else {
      boost::asio::ip::address_v6::bytes_type b{};
      std::memcpy(b.data(), bytes, b.size());
      a = boost::asio::ip::address_v6(b);
    }
    if (std::find(out.begin(), out.end(), a) == out.end()) {
      out.push_back(a);
    }
  };
  auto named = [&name](const hostent& h) {
    if (strcasecmp(h.h_name, name.c_str()) == 0) {
      return true;
    }
    for (char** alias = h.h_aliases; alias != nullptr && *alias != nullptr; ++alias) {
      if (strcasecmp(*alias, name.c_str()) == 0) {
        return true;
      }
    }
    return false;
  };
  // gethostent_r walks the hosts file through glibc's own parser; only this thread walks it.
  sethostent(0);
  hostent entry{};
  hostent* found = nullptr;
  std::array<char, 8192> buf{};
  int err = 0;
  for (int lines = 0;
       lines < 100000 && gethostent_r(&entry, buf.data(), buf.size(), &found, &err) == 0 &&
       found != nullptr;
       ++lines) {
    if ((entry.h_addrtype == AF_INET || entry.h_addrtype == AF_INET6) && named(entry)) {
      for (char** a = entry.h_addr_list; a != nullptr && *a != nullptr; ++a) {
        add(entry.h_addrtype, *a);
      }
    }
  }
  endhostent();
  return out;
}

Resolution lookupName(DnsClient& dns, const DnsQuery& query, const ResolverSettings& settings) {
  Resolution r;
  r.answered = true;
  const auto minTtl =
      static_cast<uint32_t>(std::chrono::ceil<std::chrono::seconds>(settings.minTtl).count());
  if (auto files = hostsFileAddresses(query.host); !files.empty()) {
    for (const auto& a : files) {
      r.hops.push_back(ResolvedHop{Endpoint{a, query.port}, 0, 0});
    }
    std::sort(r.hops.begin(), r.hops.end(), hopOrder);
    r.ttl = minTtl;
    return r;
  }
  uint32_t ttl = UINT32_MAX;
  std::optional<std::vector<ResolvedHop>> hops;
  if (!query.service.empty()) {
    auto service = lookupService(dns, query, ttl);
    if (!service) {
      r.error = service.error().message;
      return r;
    }
    hops = std::move(*service);
  }
  if (!hops) {
    auto addresses = lookupAddresses(dns, query.host, ttl);
    if (!addresses) {
      r.error = addresses.error().message;
      return r;
    }
    hops.emplace();
    for (const auto& a : *addresses) {
      hops->push_back(ResolvedHop{Endpoint{a, query.port}, 0, 0});
    }
  }
  std::sort(hops->begin(), hops->end(), hopOrder);
  hops->erase(std::unique(hops->begin(), hops->end(),
                          [](const ResolvedHop& a, const ResolvedHop& b) {
                            return a.endpoint == b.endpoint;
                          }),
              hops->end());
  r.hops = std::move(*hops);
  // No record (a name that does not exist, or has no address): asked again after minTtl.
  r.ttl = ttl == UINT32_MAX ? minTtl : ttl;
  return r;
}

}  // namespace

std::string DnsQuery::str() const {
  return service.empty() ? fmt::format("{}:{}", host, port)
                         : fmt::format("{}.{} (SRV, else {}:{})", service, host, host, port);
}

struct Resolver::State {
  ResolverSettings settings;
  OnChange onChange;
  std::mutex mutex;
  std::condition_variable cv;
  std::map<DnsQuery, Resolution> wanted;
  bool stop = false;
  bool inCallback = false;

  // On-demand names: the cache (most recently used at the front of `recent`), the names queued
  // for a lookup thread, and the callbacks of every name queued or in progress.
  struct Cached {
    Resolution resolution;
    Clock::time_point expires{};
    std::list<DnsQuery>::iterator recent;
  };
  std::map<DnsQuery, Cached> cache;
  std::list<DnsQuery> recent;
  std::deque<DnsQuery> queue;
  std::map<DnsQuery, std::vector<OnResolved>> inProgress;
  std::condition_variable queueCv;
  int lookupThreads = 0;
  int callbacksRunning = 0;

  void run();
  void runLookups();
  // Takes an on-demand answer into the cache (evicting the least recently used names).
  void remember(const DnsQuery& query, Resolution fresh);
  // Takes a finished lookup into the cache; true when the name's hops changed (or it was
  // answered for the first time).
  bool store(const DnsQuery& query, Resolution fresh);
};

bool Resolver::State::store(const DnsQuery& query, Resolution fresh) {
  auto it = wanted.find(query);
  if (it == wanted.end()) {
    return false;  // no longer wanted
  }
  Resolution& known = it->second;
  const bool first = !known.answered;
  const auto now = Clock::now();
  if (!fresh.error.empty()) {
    // Keep the last good answer; try again after minTtl.
    log::get("dns")->warn("{}: {}; keeping {} known address(es)", query.str(), fresh.error,
                          known.hops.size());
    known.answered = true;
    known.error = std::move(fresh.error);
    known.refreshAt = now + settings.minTtl;
    return first;
  }
  const auto ttl = std::clamp<std::chrono::milliseconds>(std::chrono::seconds(fresh.ttl),
                                                         settings.minTtl, settings.maxTtl);
  fresh.refreshAt = now + ttl;
  fresh.succeeded = true;
  const bool changed = first || fresh.hops != known.hops;
  if (changed) {
    log::get("dns")->info("{}: {} address(es), ttl {} s", query.str(), fresh.hops.size(),
                          fresh.ttl);
  }
  known = std::move(fresh);
  return changed;
}

void Resolver::State::run() {
  DnsClient dns(settings);
  std::unique_lock lock(mutex);
  while (!stop) {
    const auto now = Clock::now();
    auto due = wanted.end();
    for (auto it = wanted.begin(); it != wanted.end(); ++it) {
      if (due == wanted.end() || it->second.refreshAt < due->second.refreshAt) {
        due = it;
      }
    }
    if (due == wanted.end()) {
      cv.wait(lock);
      continue;
    }
    if (due->second.refreshAt > now) {
      cv.wait_until(lock, due->second.refreshAt);
      continue;
    }
    const DnsQuery query = due->first;
    lock.unlock();
    Resolution fresh = lookupName(dns, query, settings);
    lock.lock();
    if (stop) {
      break;
    }
    const bool changed = store(query, std::move(fresh));
    cv.notify_all();
    if (changed && onChange) {
      inCallback = true;
      lock.unlock();
      onChange(query);
      lock.lock();
      inCallback = false;
      cv.notify_all();
    }
  }
}

void Resolver::State::remember(const DnsQuery& query, Resolution fresh) {
  const auto now = Clock::now();
  auto it = cache.find(query);
  if (!fresh.error.empty()) {
    // A failure is remembered minTtl: the name servers are not asked again for it meanwhile.
    if (it != cache.end() && !it->second.resolution.hops.empty()) {
      it->second.resolution.error = std::move(fresh.error);
      it->second.expires = now + settings.minTtl;
      return;
    }
    fresh.hops.clear();
    fresh.ttl = 0;
  } else {
    fresh.succeeded = true;
    if (fresh.hops.size() > settings.maxHops) {
      fresh.hops.resize(settings.maxHops);
    }
  }
  const auto ttl = fresh.error.empty()
                       ? std::clamp<std::chrono::milliseconds>(std::chrono::seconds(fresh.ttl),
                                                               settings.minTtl, settings.maxTtl)
                       : settings.minTtl;
  fresh.refreshAt = now + ttl;
  if (it == cache.end()) {
    if (settings.maxCached == 0) {
      return;
    }
    while (cache.size() >= settings.maxCached && !recent.empty()) {
      cache.erase(recent.back());
      recent.pop_back();
    }
    recent.push_front(query);
    it = cache.emplace(query, Cached{{}, {}, recent.begin()}).first;
  } else {
    recent.splice(recent.begin(), recent, it->second.recent);
  }
  it->second.resolution = std::move(fresh);
  it->second.expires = now + ttl;
}

void Resolver::State::runLookups() {
  DnsClient dns(settings);
  std::unique_lock lock(mutex);
  while (!stop) {
    if (queue.empty()) {
      queueCv.wait(lock);
      continue;
    }
    const DnsQuery query = queue.front();
    queue.pop_front();
    lock.unlock();
    Resolution fresh = lookupName(dns, query, settings);
    lock.lock();
    if (stop) {
      break;
    }
    remember(query, fresh);
    auto it = inProgress.find(query);
    if (it == inProgress.end()) {
      continue;
    }
    std::vector<OnResolved> callbacks = std::move(it->second);
    inProgress.erase(it);
    auto c = cache.find(query);
    const Resolution result = c != cache.end() ? c->second.resolution : fresh;
    ++callbacksRunning;
    lock.unlock();
    for (auto& done : callbacks) {
      done(query, result);
    }
    callbacks.clear();
    lock.lock();
    --callbacksRunning;
    cv.notify_all();
  }
}

Resolver::Resolver(ResolverSettings settings, OnChange onChange)
    : state_(std::make_shared<State>()) {
  state_->settings = std::move(settings);
  state_->onChange = std::move(onChange);
  std::thread([state = state_] {
    pthread_setname_np(pthread_self(), "evosip-dns");
    state->run();
  }).detach();
}

Resolver::~Resolver() {
  std::unique_lock lock(state_->mutex);
  state_->stop = true;
  state_->cv.notify_all();
  // A lookup in progress ends on its own (the thread owns a reference to the state); a callback
  // in progress may use what its owner is about to destroy, so wait for it.
  state_->queueCv.notify_all();
  state_->cv.wait(lock, [this] { return !state_->inCallback && state_->callbacksRunning == 0; });
  state_->onChange = nullptr;
  state_->inProgress.clear();
  state_->queue.clear();
}

void Resolver::setWanted(const std::vector<DnsQuery>& queries) {
  std::lock_guard lock(state_->mutex);
  std::map<DnsQuery, Resolution> next;
  for (const auto& q : queries) {
    auto it = state_->wanted.find(q);
    next[q] = it != state_->wanted.end() ? it->second : Resolution{};
  }
  state_->wanted = std::move(next);
  state_->cv.notify_all();
}

std::optional<Resolution> Resolver::get(const DnsQuery& query) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->wanted.find(query);
  if (it == state_->wanted.end()) {
    return std::nullopt;
  }
  return it->second;
}

void Resolver::waitAnswered(std::chrono::milliseconds limit) const {
  std::unique_lock lock(state_->mutex);
  state_->cv.wait_for(lock, limit, [this] {
    return std::all_of(state_->wanted.begin(), state_->wanted.end(),
                       [](const auto& entry) { return entry.second.answered; });
  });
}

std::optional<Resolution> Resolver::cached(const DnsQuery& query) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->cache.find(query);
  if (it == state_->cache.end() || it->second.expires <= Clock::now()) {
    return std::nullopt;
  }
  state_->recent.splice(state_->recent.begin(), state_->recent, it->second.recent);
  return it->second.resolution;
}

LookupStart Resolver::lookup(const DnsQuery& query, OnResolved done) {
  std::lock_guard lock(state_->mutex);
  if (auto it = state_->cache.find(query);
      it != state_->cache.end() && it->second.expires > Clock::now()) {
    return LookupStart::kCached;
  }
  if (auto it = state_->inProgress.find(query); it != state_->inProgress.end()) {
    it->second.push_back(std::move(done));
    return LookupStart::kQueued;
  }
  if (state_->inProgress.size() >= state_->settings.maxLookups) {
    return LookupStart::kBusy;
  }
  state_->inProgress[query].push_back(std::move(done));
  state_->queue.push_back(query);
  if (state_->lookupThreads < std::max(1, state_->settings.lookupThreads)) {
    ++state_->lookupThreads;
    std::thread([state = state_] {
      pthread_setname_np(pthread_self(), "evosip-dns-hop");
      state->runLookups();
    }).detach();
  }
  state_->queueCv.notify_one();
  return LookupStart::kQueued;
}

size_t Resolver::cachedCount() const {
  std::lock_guard lock(state_->mutex);
  return state_->cache.size();
}

size_t Resolver::lookupsInProgress() const {
  std::lock_guard lock(state_->mutex);
  return state_->inProgress.size();
}

}  // namespace evosip::transport
