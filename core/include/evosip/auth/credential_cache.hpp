#pragma once
// Router-side cache of the credentials (HA1 values) the `api` role serves (DESIGN.md 3): a TTL
// for known users, a shorter one for unknown users, a bound on the number of entries (least
// recently used dropped first), invalidation of one user or of everything (`auth.invalidate`
// RPC), and one fetch per key at a time: requests for a user whose fetch is in flight wait for
// that fetch instead of starting another.
//
// Threading: one cache per worker, used only from that worker's thread, hence no locks. The
// fetcher's completion must run on the same worker (post it back to the worker's io_context).
// The `auth.invalidate` RPC posts invalidate()/invalidateAll() to every worker. A cache
// destroyed while fetches are in flight drops their completions: its waiters are never called.
//
// Nothing here logs. HA1 values are wiped from memory when an entry is dropped.

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <evosip/auth/digest.hpp>
#include <evosip/runtime/clock.hpp>

namespace evosip::auth {

// The HA1 values of one user, lower-case hex; either may be empty when the API has none.
struct Credentials {
  std::string ha1Md5;
  std::string ha1Sha256;

  Credentials() = default;
  Credentials(std::string md5, std::string sha256)
      : ha1Md5(std::move(md5)), ha1Sha256(std::move(sha256)) {}
  Credentials(const Credentials&) = default;
  Credentials(Credentials&&) noexcept = default;
  Credentials& operator=(const Credentials&) = default;
  Credentials& operator=(Credentials&&) noexcept = default;
  ~Credentials();

  std::string_view ha1(DigestAlgorithm a) const {
    return a == DigestAlgorithm::kMd5 ? ha1Md5 : ha1Sha256;
  }
};

enum class CredentialStatus {
  kFound,
  kUnknownUser,  // the API answered: no such subscriber (cached for negativeTtl)
  kUnavailable,  // the API could not be asked or failed (not cached; the router answers 503)
};

struct CredentialLookup {
  CredentialStatus status = CredentialStatus::kUnavailable;
  Credentials credentials;  // kFound only
  // kFound past its ttl, given because the API could not be asked (Settings::staleIfError):
  // a worker's cache keeps it for staleRetry only, then asks again.
  bool stale = false;
};

class CredentialCache {
 public:
  struct Settings {
    std::chrono::seconds ttl{300};
    std::chrono::seconds negativeTtl{30};
    size_t maxEntries = 100'000;
    // How long past its ttl a found user's credentials still answer while the API cannot be
    // asked (down, unreachable, failing): registered phones keep registering and calling
    // through an API outage. 0: never (an outage answers 503 once the ttl ran out).
    std::chrono::seconds staleIfError{3600};
    std::chrono::seconds staleRetry{10};
  };
  struct Stats {
    uint64_t hits = 0;       // answered from the cache (found or unknown)
    uint64_t fetches = 0;    // fetches started
    uint64_t coalesced = 0;  // requests that joined a fetch in flight
    uint64_t failures = 0;   // fetches that ended kUnavailable
  };

  using Callback = std::function<void(const CredentialLookup&)>;
  // Asks the API for (domain, user) and calls `done` exactly once, on this cache's worker,
  // possibly before returning.
  using Fetcher = std::function<void(const std::string& domain, const std::string& user,
                                     std::function<void(CredentialLookup)> done)>;

  CredentialCache(Settings settings, const runtime::Clock& clock, Fetcher fetcher);
  ~CredentialCache();
  CredentialCache(const CredentialCache&) = delete;
  CredentialCache& operator=(const CredentialCache&) = delete;

  // Domains compare case-insensitively, users exactly. A cached answer is delivered before
  // get() returns; otherwise once the (possibly shared) fetch completes.
  void get(std::string_view domain, std::string_view user, Callback done);

  // The cached answer, without fetching: nullopt when missing or expired.
  std::optional<CredentialLookup> peek(std::string_view domain, std::string_view user);

  // Drops the entry; a fetch in flight for it still answers its waiters but is not cached,
  // and later requests start a new fetch (the API may have answered with the old profile).
  void invalidate(std::string_view domain, std::string_view user);
  void invalidateAll();

  size_t size() const { return entries_.size(); }
  size_t inFlight() const { return pending_.size(); }
  const Stats& stats() const { return stats_; }

 private:
  using TimePoint = runtime::Clock::time_point;
  struct Key {
    std::string domain;  // lower-cased
    std::string user;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Entry {
    CredentialLookup value;
    TimePoint expires;
    std::list<Key>::iterator lru;
  };
  struct Pending {
    std::vector<Callback> waiters;
    bool invalidated = false;
    bool completed = false;
  };

  static Key makeKey(std::string_view domain, std::string_view user);
  const Entry* findFresh(const Key& key);
  void store(const Key& key, CredentialLookup value);
  void erase(std::unordered_map<Key, Entry, KeyHash>::iterator it);
  void complete(const Key& key, const std::shared_ptr<Pending>& pending, CredentialLookup value);

  Settings settings_;
  const runtime::Clock& clock_;
  Fetcher fetcher_;
  std::unordered_map<Key, Entry, KeyHash> entries_;
  std::list<Key> lru_;  // most recently used first
  std::unordered_map<Key, std::shared_ptr<Pending>, KeyHash> pending_;
  Stats stats_;
  // Completions of fetches hold a weak reference: they do nothing once the cache is gone.
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

}  // namespace evosip::auth
