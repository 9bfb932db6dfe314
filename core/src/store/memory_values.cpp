// The values of the memory backend (Store::putValue ... listValues): one ordered map behind one
// mutex, so a listing by prefix is a range of the map. Values are few (a relay's sessions and
// heartbeats) and not on any forwarding path.
#include "memory_values.hpp"

#include <algorithm>

#include <evosip/store/memory_store.hpp>

namespace evosip::store {

Result<bool> MemoryDatabase::putValue(const std::string& key, std::string value,
                                      std::chrono::milliseconds ttl, bool onlyIfAbsent) {
  if (key.empty() || ttl.count() <= 0) {
    return makeError(Errc::kInvalid, "empty key or TTL");
  }
  const TimePoint t = now();
  std::lock_guard lock(values_->mutex);
  auto [it, inserted] = values_->map.try_emplace(key);
  if (!inserted && onlyIfAbsent && it->second.expires > t) {
    return false;
  }
  it->second.value = std::move(value);
  it->second.expires = t + ttl;
  return true;
}

Result<bool> MemoryDatabase::putValueIf(const std::string& key, std::string value,
                                        std::chrono::milliseconds ttl,
                                        const std::vector<std::string>& expected) {
  if (key.empty() || ttl.count() <= 0) {
    return makeError(Errc::kInvalid, "empty key or TTL");
  }
  const TimePoint t = now();
  std::lock_guard lock(values_->mutex);
  auto [it, inserted] = values_->map.try_emplace(key);
  if (!inserted && it->second.expires > t &&
      std::find(expected.begin(), expected.end(), it->second.value) == expected.end()) {
    return false;
  }
  it->second.value = std::move(value);
  it->second.expires = t + ttl;
  return true;
}

Result<std::string> MemoryDatabase::getValue(const std::string& key) {
  const TimePoint t = now();
  std::lock_guard lock(values_->mutex);
  auto it = values_->map.find(key);
  if (it == values_->map.end() || it->second.expires <= t) {
    return makeError(Errc::kNotFound, "no such value");
  }
  return it->second.value;
}

Result<void> MemoryDatabase::removeValue(const std::string& key) {
  std::lock_guard lock(values_->mutex);
  values_->map.erase(key);
  return {};
}

// The cursor is the last key returned.
Result<Page<KeyValue>> MemoryDatabase::listValues(const std::string& prefix,
                                                  const std::string& cursor, size_t count) {
  if (!cursor.empty() && cursor.compare(0, prefix.size(), prefix) != 0) {
    return makeError(Errc::kInvalid, "bad cursor");
  }
  const TimePoint t = now();
  Page<KeyValue> page;
  std::lock_guard lock(values_->mutex);
  auto it = cursor.empty() ? values_->map.lower_bound(prefix) : values_->map.upper_bound(cursor);
  for (; it != values_->map.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (it->second.expires <= t) {
      continue;
    }
    if (page.items.size() >= std::max<size_t>(count, 1)) {
      page.next = page.items.back().key;
      return page;
    }
    page.items.push_back({it->first, it->second.value});
  }
  return page;
}

size_t MemoryDatabase::sweepValues(TimePoint t) {
  std::lock_guard lock(values_->mutex);
  return std::erase_if(values_->map, [t](const auto& e) { return e.second.expires <= t; });
}

}  // namespace evosip::store
