#include <algorithm>

#include <openssl/crypto.h>

#include <evosip/auth/credential_cache.hpp>
#include <evosip/base/assert.hpp>
#include <evosip/base/strings.hpp>

namespace evosip::auth {

Credentials::~Credentials() {
  OPENSSL_cleanse(ha1Md5.data(), ha1Md5.size());
  OPENSSL_cleanse(ha1Sha256.data(), ha1Sha256.size());
}

size_t CredentialCache::KeyHash::operator()(const Key& k) const {
  const size_t h = std::hash<std::string>{}(k.domain);
  return h ^ (std::hash<std::string>{}(k.user) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

CredentialCache::CredentialCache(Settings settings, const runtime::Clock& clock, Fetcher fetcher)
    : settings_(settings), clock_(clock), fetcher_(std::move(fetcher)) {
  EVOSIP_RELEASE_ASSERT(settings_.maxEntries > 0, "credential cache needs room for one entry");
  EVOSIP_RELEASE_ASSERT(static_cast<bool>(fetcher_), "credential cache needs a fetcher");
}

CredentialCache::~CredentialCache() = default;

CredentialCache::Key CredentialCache::makeKey(std::string_view domain, std::string_view user) {
  Key k{std::string(domain), std::string(user)};
  for (char& c : k.domain) {
    c = asciiLower(c);
  }
  return k;
}

const CredentialCache::Entry* CredentialCache::findFresh(const Key& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    return nullptr;
  }
  if (clock_.now() >= it->second.expires) {
    erase(it);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return &it->second;
}

void CredentialCache::get(std::string_view domain, std::string_view user, Callback done) {
  Key key = makeKey(domain, user);
  if (const Entry* e = findFresh(key)) {
    ++stats_.hits;
    done(e->value);
    return;
  }
  if (auto it = pending_.find(key); it != pending_.end()) {
    ++stats_.coalesced;
    it->second->waiters.push_back(std::move(done));
    return;
  }
  auto pending = std::make_shared<Pending>();
  pending->waiters.push_back(std::move(done));
  pending_.emplace(key, pending);
  ++stats_.fetches;
  // The completion may run before fetcher_ returns, or after the cache is gone.
  std::weak_ptr<char> alive = alive_;
  fetcher_(key.domain, key.user, [this, alive, key, pending](CredentialLookup value) {
    if (alive.expired()) {
      return;
    }
    complete(key, pending, std::move(value));
  });
}

void CredentialCache::complete(const Key& key, const std::shared_ptr<Pending>& pending,
                               CredentialLookup value) {
  if (pending->completed) {
    return;  // completed twice: the fetcher broke its contract; the first answer stands
  }
  pending->completed = true;
  if (value.status == CredentialStatus::kUnavailable) {
    ++stats_.failures;
    value.credentials = Credentials{};
  }
  if (!pending->invalidated) {
    pending_.erase(key);
    if (value.status != CredentialStatus::kUnavailable) {
      store(key, value);
    }
  }
  // Waiters may call back into the cache (get, invalidate): take them out first.
  std::vector<Callback> waiters = std::move(pending->waiters);
  pending->waiters.clear();
  for (auto& w : waiters) {
    w(value);
  }
}

void CredentialCache::store(const Key& key, CredentialLookup value) {
  auto ttl = value.status == CredentialStatus::kFound ? settings_.ttl : settings_.negativeTtl;
  if (value.stale) {
    ttl = std::min(ttl, settings_.staleRetry);
  }
  if (auto it = entries_.find(key); it != entries_.end()) {
    erase(it);
  }
  if (ttl.count() <= 0) {
    return;
  }
  while (entries_.size() >= settings_.maxEntries) {
    erase(entries_.find(lru_.back()));
  }
  lru_.push_front(key);
  entries_.emplace(key, Entry{std::move(value), clock_.now() + ttl, lru_.begin()});
}

void CredentialCache::erase(std::unordered_map<Key, Entry, KeyHash>::iterator it) {
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

std::optional<CredentialLookup> CredentialCache::peek(std::string_view domain,
                                                      std::string_view user) {
  if (const Entry* e = findFresh(makeKey(domain, user))) {
    return e->value;
  }
  return std::nullopt;
}

void CredentialCache::invalidate(std::string_view domain, std::string_view user) {
  const Key key = makeKey(domain, user);
  if (auto it = entries_.find(key); it != entries_.end()) {
    erase(it);
  }
  if (auto it = pending_.find(key); it != pending_.end()) {
    it->second->invalidated = true;
    pending_.erase(it);
  }
}

void CredentialCache::invalidateAll() {
  entries_.clear();
  lru_.clear();
  for (auto& [key, pending] : pending_) {
    pending->invalidated = true;
  }
  pending_.clear();
}

}  // namespace evosip::auth
