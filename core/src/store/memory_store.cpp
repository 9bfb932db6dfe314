#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <evosip/store/memory_store.hpp>

#include "memory_values.hpp"
#include "order.hpp"

namespace evosip::store {

TimePoint systemNow() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

struct MemoryDatabase::Shard {
  struct NonceCount {
    uint32_t nc = 0;
    TimePoint expires;
  };
  std::mutex mutex;
  // by AoR; a stored Binding's own `aor` is left empty (the key holds it; getBindings fills it)
  std::map<std::string, std::vector<Binding>, std::less<>> bindings;
  std::map<std::string, std::vector<DialogRecord>, std::less<>> dialogs;  // by Call-ID
  std::unordered_map<std::string, NonceCount> nonces;
};

namespace {

// Cursor of the memory backend: "<shard>:<last key returned>"; "" starts at shard 0.
struct Cursor {
  size_t shard = 0;
  std::string after;
  bool resume = false;  // false: from the beginning of the shard
};

Result<Cursor> parseCursor(const std::string& text, size_t shards) {
  Cursor c;
  if (text.empty()) {
    return c;
  }
  auto colon = text.find(':');
  if (colon == std::string::npos) {
    return makeError(Errc::kInvalid, "bad cursor");
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + colon, c.shard);
  if (ec != std::errc() || end != text.data() + colon || c.shard >= shards) {
    return makeError(Errc::kInvalid, "bad cursor");
  }
  c.after = text.substr(colon + 1);
  c.resume = true;
  return c;
}

// Drops the expired elements of one entry; true when some remain.
template <typename T>
bool pruneExpired(std::vector<T>& v, TimePoint now) {
  std::erase_if(v, [now](const T& x) { return x.expires <= now; });
  return !v.empty();
}

// One page over the ordered maps `member` of the shards, resuming after the cursor's key.
// collect(key, entry, items) appends the page items of one live entry.
template <typename Item, typename Shards, typename Member, typename Collect>
Result<Page<Item>> walk(Shards& shards, Member member, const std::string& cursorText, size_t count,
                        TimePoint now, Collect collect) {
  auto cursor = parseCursor(cursorText, shards.size());
  if (!cursor) {
    return tl::unexpected(cursor.error());
  }
  count = std::max<size_t>(count, 1);
  Page<Item> page;
  for (size_t s = cursor->shard; s < shards.size(); ++s) {
    auto& shard = *shards[s];
    std::lock_guard lock(shard.mutex);
    auto& map = shard.*member;
    auto it = (s == cursor->shard && cursor->resume) ? map.upper_bound(cursor->after) : map.begin();
    while (it != map.end()) {
      if (!pruneExpired(it->second, now)) {
        it = map.erase(it);
        continue;
      }
      if (page.items.size() >= count) {
        return page;  // page.next already names the last key taken
      }
      collect(it->first, it->second, page.items);
      page.next = std::to_string(s) + ":" + it->first;
      ++it;
    }
  }
  page.next.clear();
  return page;
}

template <typename T>
void insertOrReplace(std::vector<T>& v, T item, const auto& same) {
  auto it = std::find_if(v.begin(), v.end(), same);
  if (it != v.end()) {
    *it = std::move(item);
  } else {
    v.push_back(std::move(item));
  }
}

}  // namespace

MemoryDatabase::MemoryDatabase(MemorySettings settings) : settings_(std::move(settings)) {
  settings_.shards = std::max<size_t>(settings_.shards, 1);
  shards_.reserve(settings_.shards);
  for (size_t i = 0; i < settings_.shards; ++i) {
    shards_.push_back(std::make_unique<Shard>());
  }
  values_ = std::make_unique<Values>();
}

MemoryDatabase::~MemoryDatabase() = default;

TimePoint MemoryDatabase::now() const {
  return settings_.now ? settings_.now() : systemNow();
}

MemoryDatabase::Shard& MemoryDatabase::shardFor(const std::string& key) {
  return *shards_[std::hash<std::string>{}(key) % shards_.size()];
}

Result<void> MemoryDatabase::putBinding(Binding binding) {
  if (binding.aor.empty() || binding.contact.empty()) {
    return makeError(Errc::kInvalid, "binding without AoR or contact");
  }
  auto& shard = shardFor(binding.aor);
  const TimePoint t = now();
  std::lock_guard lock(shard.mutex);
  auto it = shard.bindings.find(binding.aor);
  if (binding.expires <= t) {
    if (it != shard.bindings.end()) {
      std::erase_if(it->second, [&](const Binding& b) { return b.contact == binding.contact; });
      if (!pruneExpired(it->second, t)) {
        shard.bindings.erase(it);
      }
    }
    return {};
  }
  if (it == shard.bindings.end()) {
    it = shard.bindings.try_emplace(binding.aor).first;
  }
  std::string().swap(binding.aor);  // one copy of the AoR per record, not two (frees it)
  const std::string contact = binding.contact;
  insertOrReplace(it->second, std::move(binding),
                  [&](const Binding& b) { return b.contact == contact; });
  pruneExpired(it->second, t);
  it->second.shrink_to_fit();
  return {};
}

Result<void> MemoryDatabase::removeBinding(const std::string& aor, const std::string& contact) {
  auto& shard = shardFor(aor);
  std::lock_guard lock(shard.mutex);
  auto it = shard.bindings.find(aor);
  if (it == shard.bindings.end()) {
    return {};
  }
  std::erase_if(it->second, [&](const Binding& b) { return b.contact == contact; });
  if (it->second.empty()) {
    shard.bindings.erase(it);
  }
  return {};
}

Result<void> MemoryDatabase::removeBindings(const std::string& aor) {
  auto& shard = shardFor(aor);
  std::lock_guard lock(shard.mutex);
  shard.bindings.erase(aor);
  return {};
}

Result<std::vector<Binding>> MemoryDatabase::getBindings(const std::string& aor) {
  auto& shard = shardFor(aor);
  const TimePoint t = now();
  std::vector<Binding> out;
  {
    std::lock_guard lock(shard.mutex);
    auto it = shard.bindings.find(aor);
    if (it == shard.bindings.end()) {
      return out;
    }
    if (!pruneExpired(it->second, t)) {
      shard.bindings.erase(it);
      return out;
    }
    out = it->second;
  }
  for (Binding& b : out) {
    b.aor = aor;
  }
  sortBindings(out);
  return out;
}

Result<Page<std::string>> MemoryDatabase::listAors(const std::string& cursor, size_t count) {
  return walk<std::string>(shards_, &Shard::bindings, cursor, count, now(),
                           [](const std::string& aor, const std::vector<Binding>&,
                              std::vector<std::string>& items) { items.push_back(aor); });
}

Result<void> MemoryDatabase::putDialog(DialogRecord record) {
  if (record.id.callId.empty()) {
    return makeError(Errc::kInvalid, "dialog without Call-ID");
  }
  auto& shard = shardFor(record.id.callId);
  const TimePoint t = now();
  std::lock_guard lock(shard.mutex);
  auto it = shard.dialogs.find(record.id.callId);
  if (record.expires <= t) {
    if (it != shard.dialogs.end()) {
      std::erase_if(it->second, [&](const DialogRecord& d) { return d.id == record.id; });
      if (!pruneExpired(it->second, t)) {
        shard.dialogs.erase(it);
      }
    }
    return {};
  }
  if (it == shard.dialogs.end()) {
    it = shard.dialogs.try_emplace(record.id.callId).first;
  }
  const DialogId id = record.id;
  insertOrReplace(it->second, std::move(record), [&](const DialogRecord& d) { return d.id == id; });
  pruneExpired(it->second, t);
  it->second.shrink_to_fit();
  return {};
}

Result<DialogRecord> MemoryDatabase::getDialog(const DialogId& id) {
  auto& shard = shardFor(id.callId);
  const TimePoint t = now();
  std::lock_guard lock(shard.mutex);
  auto it = shard.dialogs.find(id.callId);
  if (it != shard.dialogs.end()) {
    if (!pruneExpired(it->second, t)) {
      shard.dialogs.erase(it);
    } else {
      for (const auto& d : it->second) {
        if (d.id == id) {
          return d;
        }
      }
    }
  }
  return makeError(Errc::kNotFound, "no such dialog");
}

Result<std::vector<DialogRecord>> MemoryDatabase::getDialogs(const std::string& callId) {
  auto& shard = shardFor(callId);
  const TimePoint t = now();
  std::vector<DialogRecord> out;
  {
    std::lock_guard lock(shard.mutex);
    auto it = shard.dialogs.find(callId);
    if (it == shard.dialogs.end()) {
      return out;
    }
    if (!pruneExpired(it->second, t)) {
      shard.dialogs.erase(it);
      return out;
    }
    out = it->second;
  }
  sortDialogs(out);
  return out;
}

Result<void> MemoryDatabase::removeDialog(const DialogId& id) {
  auto& shard = shardFor(id.callId);
  std::lock_guard lock(shard.mutex);
  auto it = shard.dialogs.find(id.callId);
  if (it == shard.dialogs.end()) {
    return {};
  }
  std::erase_if(it->second, [&](const DialogRecord& d) { return d.id == id; });
  if (it->second.empty()) {
    shard.dialogs.erase(it);
  }
  return {};
}

Result<Page<DialogRecord>> MemoryDatabase::listDialogs(const std::string& cursor, size_t count) {
  return walk<DialogRecord>(shards_, &Shard::dialogs, cursor, count, now(),
                            [](const std::string&, const std::vector<DialogRecord>& dialogs,
                               std::vector<DialogRecord>& items) {
                              auto first = items.size();
                              items.insert(items.end(), dialogs.begin(), dialogs.end());
                              std::vector<DialogRecord> tail(items.begin() + first, items.end());
                              sortDialogs(tail);
                              std::move(tail.begin(), tail.end(), items.begin() + first);
                            });
}

Result<bool> MemoryDatabase::checkAndSetNonceCount(const std::string& nonce, uint32_t nc,
                                                   std::chrono::milliseconds ttl) {
  if (nonce.empty()) {
    return makeError(Errc::kInvalid, "empty nonce");
  }
  auto& shard = shardFor(nonce);
  const TimePoint t = now();
  std::lock_guard lock(shard.mutex);
  auto [it, inserted] = shard.nonces.try_emplace(nonce);
  if (!inserted && it->second.expires > t && nc <= it->second.nc) {
    return false;
  }
  it->second.nc = nc;
  it->second.expires = t + ttl;
  if (ttl.count() <= 0) {
    shard.nonces.erase(it);
  }
  return true;
}

size_t MemoryDatabase::sweep() {
  const TimePoint t = now();
  size_t dropped = 0;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    for (auto it = shard->bindings.begin(); it != shard->bindings.end();) {
      auto before = it->second.size();
      bool live = pruneExpired(it->second, t);
      dropped += before - it->second.size();
      it = live ? std::next(it) : shard->bindings.erase(it);
    }
    for (auto it = shard->dialogs.begin(); it != shard->dialogs.end();) {
      auto before = it->second.size();
      bool live = pruneExpired(it->second, t);
      dropped += before - it->second.size();
      it = live ? std::next(it) : shard->dialogs.erase(it);
    }
    dropped += std::erase_if(shard->nonces, [t](const auto& e) { return e.second.expires <= t; });
  }
  return dropped + sweepValues(t);
}

void MemoryDatabase::sweepIfDue() {
  const int64_t steadyNow = std::chrono::steady_clock::now().time_since_epoch().count();
  const int64_t interval = std::chrono::nanoseconds(settings_.sweepInterval).count();
  int64_t last = lastSweep_.load();
  if (steadyNow - last < interval) {
    return;
  }
  if (lastSweep_.compare_exchange_strong(last, steadyNow)) {
    sweep();
  }
}

MemoryDatabase::Counts MemoryDatabase::counts() const {
  Counts c;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    c.aors += shard->bindings.size();
    for (const auto& [aor, bindings] : shard->bindings) {
      c.bindings += bindings.size();
    }
    for (const auto& [callId, dialogs] : shard->dialogs) {
      c.dialogs += dialogs.size();
    }
    c.nonces += shard->nonces.size();
  }
  return c;
}

// The periodic sweep of one store: a timer on the store's executor. Handlers hold a weak
// reference, so a timer that fires after the store is gone does nothing.
struct MemoryStore::Sweeper : std::enable_shared_from_this<Sweeper> {
  Sweeper(std::shared_ptr<MemoryDatabase> db, const boost::asio::any_io_executor& ex)
      : database(std::move(db)), timer(ex) {}

  void schedule() {
    timer.expires_after(database->settings().sweepInterval);
    timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) {
        return;
      }
      self->database->sweepIfDue();
      self->schedule();
    });
  }

  std::shared_ptr<MemoryDatabase> database;
  boost::asio::steady_timer timer;
};

MemoryStore::MemoryStore(std::shared_ptr<MemoryDatabase> database,
                         boost::asio::any_io_executor executor)
    : database_(std::move(database)),
      executor_(std::move(executor)),
      sweeper_(std::make_shared<Sweeper>(database_, executor_)) {
  ioExecutor_ = executor_.target<boost::asio::io_context::executor_type>();
  if (database_->settings().sweepInterval.count() > 0) {
    sweeper_->schedule();
  }
}

MemoryStore::~MemoryStore() {
  sweeper_->timer.cancel();
}

template <typename T>
void MemoryStore::complete(Callback<T> done, Result<T> result) {
  if (ioExecutor_ != nullptr && ioExecutor_->running_in_this_thread()) {
    done(std::move(result));
    return;
  }
  boost::asio::post(executor_, [done = std::move(done), result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

void MemoryStore::putBinding(Binding binding, Callback<void> done) {
  complete(std::move(done), database_->putBinding(std::move(binding)));
}

void MemoryStore::removeBinding(std::string aor, std::string contact, Callback<void> done) {
  complete(std::move(done), database_->removeBinding(aor, contact));
}

void MemoryStore::removeBindings(std::string aor, Callback<void> done) {
  complete(std::move(done), database_->removeBindings(aor));
}

void MemoryStore::getBindings(std::string aor, Callback<std::vector<Binding>> done) {
  complete(std::move(done), database_->getBindings(aor));
}

void MemoryStore::listAors(std::string cursor, size_t count, Callback<Page<std::string>> done) {
  complete(std::move(done), database_->listAors(cursor, count));
}

void MemoryStore::putDialog(DialogRecord record, Callback<void> done) {
  complete(std::move(done), database_->putDialog(std::move(record)));
}

void MemoryStore::getDialog(DialogId id, Callback<DialogRecord> done) {
  complete(std::move(done), database_->getDialog(id));
}

void MemoryStore::getDialogs(std::string callId, Callback<std::vector<DialogRecord>> done) {
  complete(std::move(done), database_->getDialogs(callId));
}

void MemoryStore::removeDialog(DialogId id, Callback<void> done) {
  complete(std::move(done), database_->removeDialog(id));
}

void MemoryStore::listDialogs(std::string cursor, size_t count, Callback<Page<DialogRecord>> done) {
  complete(std::move(done), database_->listDialogs(cursor, count));
}

void MemoryStore::checkAndSetNonceCount(std::string nonce, uint32_t nc,
                                        std::chrono::milliseconds ttl, Callback<bool> done) {
  complete(std::move(done), database_->checkAndSetNonceCount(nonce, nc, ttl));
}

void MemoryStore::putValue(std::string key, std::string value, std::chrono::milliseconds ttl,
                           bool onlyIfAbsent, Callback<bool> done) {
  complete(std::move(done), database_->putValue(key, std::move(value), ttl, onlyIfAbsent));
}

void MemoryStore::putValueIf(std::string key, std::string value, std::chrono::milliseconds ttl,
                             std::vector<std::string> expected, Callback<bool> done) {
  complete(std::move(done), database_->putValueIf(key, std::move(value), ttl, expected));
}

void MemoryStore::getValue(std::string key, Callback<std::string> done) {
  complete(std::move(done), database_->getValue(key));
}

void MemoryStore::removeValue(std::string key, Callback<void> done) {
  complete(std::move(done), database_->removeValue(key));
}

void MemoryStore::listValues(std::string prefix, std::string cursor, size_t count,
                             Callback<Page<KeyValue>> done) {
  complete(std::move(done), database_->listValues(prefix, cursor, count));
}

void MemoryStore::ping(Callback<void> done) {
  complete(std::move(done), Result<void>{});
}

}  // namespace evosip::store
