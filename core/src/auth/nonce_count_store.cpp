#include <evosip/auth/nonce_count_store.hpp>
#include <evosip/base/assert.hpp>

namespace evosip::auth {

MemoryNonceCountStore::MemoryNonceCountStore(Settings settings, const runtime::Clock& clock)
    : settings_(settings), clock_(clock) {
  EVOSIP_RELEASE_ASSERT(settings_.maxEntries > 0, "nonce-count store needs room for one entry");
}

void MemoryNonceCountStore::checkAndSet(std::string_view nonce, uint32_t nc,
                                        std::chrono::seconds ttl, Callback done) {
  done(checkAndSet(nonce, nc, ttl));
}

NonceCountVerdict MemoryNonceCountStore::checkAndSet(std::string_view nonce, uint32_t nc,
                                                     std::chrono::seconds ttl) {
  const std::lock_guard lock(mutex_);
  const TimePoint now = clock_.now();
  dropExpired(now);
  const TimePoint expiry = now + ttl;

  auto it = entries_.find(std::string(nonce));
  if (it != entries_.end()) {
    if (nc <= it->second.lastNc) {
      return NonceCountVerdict::kReplay;
    }
    it->second.lastNc = nc;
    if (expiry > it->second.byExpiry->first) {
      byExpiry_.erase(it->second.byExpiry);
      it->second.byExpiry = byExpiry_.emplace(expiry, it->first);
    }
    return NonceCountVerdict::kFresh;
  }

  // Unknown nonce: either first use, or its record was dropped for room. A record's expiry is
  // derived from whole seconds of wall time, so the same nonce may come back with an expiry a
  // little later than the one it was stored with: hence the slack.
  if (evicted_ && expiry <= evictedUntil_ + kExpirySlack) {
    return NonceCountVerdict::kReplay;
  }
  if (nc == 0) {
    return NonceCountVerdict::kReplay;  // nc starts at 1 (RFC 7616 3.4)
  }
  while (entries_.size() >= settings_.maxEntries) {
    auto oldest = byExpiry_.begin();
    evictedUntil_ = evicted_ ? std::max(evictedUntil_, oldest->first) : oldest->first;
    evicted_ = true;
    entries_.erase(oldest->second);
    byExpiry_.erase(oldest);
  }
  std::string key(nonce);
  auto pos = byExpiry_.emplace(expiry, key);
  entries_.emplace(std::move(key), Entry{nc, pos});
  return NonceCountVerdict::kFresh;
}

size_t MemoryNonceCountStore::size() const {
  const std::lock_guard lock(mutex_);
  return entries_.size();
}

void MemoryNonceCountStore::dropExpired(TimePoint now) {
  while (!byExpiry_.empty() && byExpiry_.begin()->first <= now) {
    entries_.erase(byExpiry_.begin()->second);
    byExpiry_.erase(byExpiry_.begin());
  }
}

}  // namespace evosip::auth
