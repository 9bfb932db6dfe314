#pragma once
// The process-wide second level behind the per-worker CredentialCache. A user's requests reach
// whichever worker owns their Call-ID, so with per-worker caches alone every worker fetched the
// same user from the api once per TTL (N fetches per user with N workers). A worker's cache
// asks this table before it fetches, and stores what the api answered here, so the process
// fetches a user once per TTL.
//
// Threading: any worker, any time. Sharded, one mutex per shard, taken only on a miss of the
// worker's own cache (not on the message path of a warm cache). Invalidation bumps a generation:
// an answer fetched before an invalidation is not stored afterwards (put() compares it), so a
// password change is never undone by a fetch that was already in flight.
//
// Nothing here logs. HA1 values are wiped when an entry is dropped (Credentials' destructor).

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <evosip/auth/credential_cache.hpp>
#include <evosip/runtime/clock.hpp>

namespace evosip::auth {

class SharedCredentials {
 public:
  // ttl / negativeTtl / maxEntries as in the per-worker caches.
  SharedCredentials(CredentialCache::Settings settings, const runtime::Clock& clock);
  SharedCredentials(const SharedCredentials&) = delete;
  SharedCredentials& operator=(const SharedCredentials&) = delete;

  // Read before fetching; hand the value to put() with the answer.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // A fresh answer (found or unknown user), or nullopt.
  std::optional<CredentialLookup> find(std::string_view domain, std::string_view user) const;
  // For when the API cannot be asked: as find(), and also a found user's credentials past
  // their ttl but within staleIfError of it (marked stale).
  std::optional<CredentialLookup> findStale(std::string_view domain, std::string_view user) const;
  // Stores an answer of the api fetched when generation() was `generation`. kUnavailable
  // answers are not stored. Ignored when an invalidation happened since.
  void put(std::string_view domain, std::string_view user, const CredentialLookup& value,
           uint64_t generation);

  void invalidate(std::string_view domain, std::string_view user);
  void invalidateAll();

  size_t size() const;

 private:
  struct Entry {
    CredentialLookup value;
    runtime::Clock::time_point expires;  // fresh until
    runtime::Clock::time_point keep;     // dropped after (expires + staleIfError when found)
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, Entry> entries;  // "domain(lower-cased)\0user"
  };
  static constexpr size_t kShards = 16;

  std::optional<CredentialLookup> lookup(std::string_view domain, std::string_view user,
                                         bool staleToo) const;
  static std::string makeKey(std::string_view domain, std::string_view user);
  Shard& shardOf(const std::string& key) const;

  CredentialCache::Settings settings_;
  const runtime::Clock& clock_;
  size_t maxPerShard_;
  mutable std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace evosip::auth
