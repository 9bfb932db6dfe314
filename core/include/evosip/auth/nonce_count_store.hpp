#pragma once
// Nonce-count replay protection (RFC 7616 3.3, 3.4): with qop=auth each request carries nc,
// which the client increments for every request made with the same nonce. A response is
// accepted only when its nc is greater than the last one accepted for that nonce.
//
// Asynchronous interface: a router backs it by the shared store (every router must see the
// counts of every other one), so the answer comes later through a callback. The in-memory
// implementation answers inline.
//
// How a store-backed implementation plugs in:
//   - key "nc:<nonce>", value the last accepted nc, TTL `ttl` (the nonce's remaining lifetime
//     plus a margin; after that the nonce itself is stale, so the record is useless);
//   - check-and-set must be atomic across routers, e.g. in Redis one EVAL of
//       local v = tonumber(redis.call('GET', KEYS[1]) or '0')
//       if tonumber(ARGV[1]) <= v then return 0 end
//       redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1
//   - the callback runs on the thread that called checkAndSet (post the reply back to the
//     worker that asked); kUnavailable when the store cannot answer (the router replies 503).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <evosip/runtime/clock.hpp>

namespace evosip::auth {

enum class NonceCountVerdict {
  kFresh,        // nc is greater than any accepted before: recorded, request may proceed
  kReplay,       // nc was already used (or is lower): refuse
  kUnavailable,  // the backing store could not answer
};

class NonceCountStore {
 public:
  using Callback = std::function<void(NonceCountVerdict)>;
  virtual ~NonceCountStore() = default;

  // Accepts `nc` for `nonce` only if it is greater than the last accepted one, and records it.
  // `ttl`: how long the record must be kept (the nonce's remaining validity plus a margin).
  // `done` is called exactly once, possibly before checkAndSet returns.
  virtual void checkAndSet(std::string_view nonce, uint32_t nc, std::chrono::seconds ttl,
                           Callback done) = 0;
};

// One process (tests, `evosip up`, a single router). Bounded: at most maxEntries nonces; when
// full, the record that expires first is dropped, and from then on a nonce that is not in the
// table and would have expired no later than the dropped one is refused as a replay (it may be
// the dropped one; two seconds of slack cover the rounding of `ttl`): memory pressure costs clients
// one extra challenge, never opens a replay window.
//
// One instance per process, shared by all workers, behind a mutex: a replayed request may carry
// another Call-ID and land on another worker, so per-worker tables would miss replays. The
// critical section is one hash lookup; production routers use the shared store instead.
class MemoryNonceCountStore final : public NonceCountStore {
 public:
  struct Settings {
    size_t maxEntries = 100'000;
  };
  MemoryNonceCountStore(Settings settings, const runtime::Clock& clock);

  void checkAndSet(std::string_view nonce, uint32_t nc, std::chrono::seconds ttl,
                   Callback done) override;
  // The same, answered directly (the in-memory store never defers).
  NonceCountVerdict checkAndSet(std::string_view nonce, uint32_t nc, std::chrono::seconds ttl);

  size_t size() const;

 private:
  using TimePoint = runtime::Clock::time_point;
  struct Entry {
    uint32_t lastNc = 0;
    std::multimap<TimePoint, std::string>::iterator byExpiry;
  };
  void dropExpired(TimePoint now);

  Settings settings_;
  const runtime::Clock& clock_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::multimap<TimePoint, std::string> byExpiry_;
  static constexpr std::chrono::seconds kExpirySlack{2};
  // Latest expiry of a record dropped while unexpired; see the class comment.
  bool evicted_ = false;
  TimePoint evictedUntil_{};
};

}  // namespace evosip::auth
