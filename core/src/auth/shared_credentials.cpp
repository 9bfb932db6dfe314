#include <algorithm>

#include <evosip/auth/shared_credentials.hpp>
#include <evosip/base/strings.hpp>

namespace evosip::auth {

SharedCredentials::SharedCredentials(CredentialCache::Settings settings,
                                     const runtime::Clock& clock)
    : settings_(settings),
      clock_(clock),
      maxPerShard_(std::max<size_t>(1, (settings.maxEntries + kShards - 1) / kShards)) {}

std::string SharedCredentials::makeKey(std::string_view domain, std::string_view user) {
  std::string key;
  key.reserve(domain.size() + 1 + user.size());
  for (char c : domain) {
    key.push_back(asciiLower(c));
  }
  key.push_back('\0');
  key.append(user);
  return key;
}

SharedCredentials::Shard& SharedCredentials::shardOf(const std::string& key) const {
  return shards_[std::hash<std::string>{}(key) % kShards];
}

std::optional<CredentialLookup> SharedCredentials::find(std::string_view domain,
                                                        std::string_view user) const {
  return lookup(domain, user, false);
}

std::optional<CredentialLookup> SharedCredentials::findStale(std::string_view domain,
                                                             std::string_view user) const {
  return lookup(domain, user, true);
}

std::optional<CredentialLookup> SharedCredentials::lookup(std::string_view domain,
                                                          std::string_view user,
                                                          bool staleToo) const {
  const std::string key = makeKey(domain, user);
  Shard& shard = shardOf(key);
  const auto now = clock_.now();
  std::lock_guard lock(shard.mutex);
  auto it = shard.entries.find(key);
  if (it == shard.entries.end()) {
    return std::nullopt;
  }
  const Entry& e = it->second;
  if (now < e.expires) {
    return e.value;
  }
  if (now >= e.keep) {
    shard.entries.erase(it);
    return std::nullopt;
  }
  if (!staleToo || e.value.status != CredentialStatus::kFound) {
    return std::nullopt;
  }
  CredentialLookup stale = e.value;
  stale.stale = true;
  return stale;
}

void SharedCredentials::put(std::string_view domain, std::string_view user,
                            const CredentialLookup& value, uint64_t generation) {
  if (value.status == CredentialStatus::kUnavailable) {
    return;
  }
  const auto ttl = value.status == CredentialStatus::kFound ? settings_.ttl : settings_.negativeTtl;
  if (ttl.count() <= 0) {
    return;
  }
  std::string key = makeKey(domain, user);
  Shard& shard = shardOf(key);
  const auto now = clock_.now();
  std::lock_guard lock(shard.mutex);
  // Checked under the shard lock: invalidate() bumps the generation before it takes the lock,
  // so an invalidation either sees this entry (and erases it) or makes this check fail.
  if (generation != generation_.load(std::memory_order_acquire)) {
    return;
  }
  if (shard.entries.size() >= maxPerShard_ && shard.entries.find(key) == shard.entries.end()) {
    // Full: drop what is past keeping, then what has expired, else an arbitrary entry (it is
    // fetched again when needed).
    std::erase_if(shard.entries, [now](const auto& kv) { return now >= kv.second.keep; });
    if (shard.entries.size() >= maxPerShard_) {
      std::erase_if(shard.entries, [now](const auto& kv) { return now >= kv.second.expires; });
    }
    if (shard.entries.size() >= maxPerShard_) {
      shard.entries.erase(shard.entries.begin());
    }
  }
  const auto keep =
      now + ttl + (value.status == CredentialStatus::kFound ? settings_.staleIfError : ttl.zero());
  CredentialLookup stored = value;
  stored.stale = false;
  shard.entries.insert_or_assign(std::move(key), Entry{std::move(stored), now + ttl, keep});
}

void SharedCredentials::invalidate(std::string_view domain, std::string_view user) {
  generation_.fetch_add(1, std::memory_order_acq_rel);
  const std::string key = makeKey(domain, user);
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mutex);
  shard.entries.erase(key);
}

void SharedCredentials::invalidateAll() {
  generation_.fetch_add(1, std::memory_order_acq_rel);
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    shard.entries.clear();
  }
}

size_t SharedCredentials::size() const {
  size_t n = 0;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    n += shard.entries.size();
  }
  return n;
}

}  // namespace evosip::auth
