#pragma once
// The shared store of bindings, dialogs and nonce counts (DESIGN.md section 3). One interface,
// two backends: memory (one process) and redis (production). Code outside this folder holds a
// Store& and never learns which backend it is.
//
// A Store is bound to one executor (a worker's io_context): every operation may be called from
// any thread, and its callback runs on that executor: later, or - memory backend, called on the
// executor's own thread - inside the call (a post would cost the worker another trip through
// its event loop per operation). Callers must not rely on either. Each callback is called
// exactly once. Operations never block the caller.
//
// Errors: kUnavailable when the backend cannot be reached (redis down or reconnecting: the
// answer is immediate), kTimeout when it did not answer in time, kInvalid for a request the
// store refuses (e.g. an empty key), kNotFound from getDialog, kParse for a stored value that
// does not decode, kIo for an error reported by the backend.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include <evosip/base/result.hpp>
#include <evosip/store/types.hpp>

namespace evosip::store {

template <typename T>
using Callback = std::function<void(Result<T>)>;

class Store {
 public:
  virtual ~Store() = default;

  // --- Location (bindings per address-of-record) ---
  // Inserts or replaces the binding (aor, contact); it expires at binding.expires. A binding
  // that has already expired is removed instead.
  virtual void putBinding(Binding binding, Callback<void> done) = 0;
  // Removes one contact of an AoR (no error when absent).
  virtual void removeBinding(std::string aor, std::string contact, Callback<void> done) = 0;
  // Removes every contact of an AoR ("Contact: *" with Expires: 0).
  virtual void removeBindings(std::string aor, Callback<void> done) = 0;
  // The unexpired bindings of an AoR, highest q first, then by contact. Empty when none.
  virtual void getBindings(std::string aor, Callback<std::vector<Binding>> done) = 0;
  // The AoRs that have bindings, one page at a time; cursor "" starts the listing.
  virtual void listAors(std::string cursor, size_t count, Callback<Page<std::string>> done) = 0;

  // --- Dialogs ---
  // Inserts or replaces the dialog with record.id; it expires at record.expires.
  virtual void putDialog(DialogRecord record, Callback<void> done) = 0;
  // The dialog with exactly these Call-ID and tags; kNotFound when absent or expired.
  virtual void getDialog(DialogId id, Callback<DialogRecord> done) = 0;
  // Every unexpired dialog of a call (several after a forked INVITE), ordered by tags. A router
  // that sees an in-dialog request from the callee (tags swapped) finds its dialog here.
  virtual void getDialogs(std::string callId, Callback<std::vector<DialogRecord>> done) = 0;
  virtual void removeDialog(DialogId id, Callback<void> done) = 0;
  virtual void listDialogs(std::string cursor, size_t count, Callback<Page<DialogRecord>> done) = 0;

  // --- Digest nonce counts (RFC 7616 3.4) ---
  // Atomically: true and records nc when nc is greater than the last accepted nc of this nonce
  // (or the nonce is new); false otherwise. The record lives `ttl` after the last acceptance.
  virtual void checkAndSetNonceCount(std::string nonce, uint32_t nc, std::chrono::milliseconds ttl,
                                     Callback<bool> done) = 0;

  // --- Values: small records of other roles (a relay's media sessions, heartbeats, locks) ---
  // Stores `value` under `key` for `ttl`. With onlyIfAbsent it is written only when the key holds
  // no unexpired value (a lock: redis SET NX PX); the callback says whether it was written.
  virtual void putValue(std::string key, std::string value, std::chrono::milliseconds ttl,
                        bool onlyIfAbsent, Callback<bool> done) = 0;
  // Stores `value` under `key` for `ttl` only when the key holds no unexpired value or holds one
  // of `expected` (compare-and-set, atomically: a lease its holder renews and nobody else can
  // overwrite); the callback says whether it was written.
  virtual void putValueIf(std::string key, std::string value, std::chrono::milliseconds ttl,
                          std::vector<std::string> expected, Callback<bool> done) = 0;
  // The unexpired value of `key`; kNotFound when there is none.
  virtual void getValue(std::string key, Callback<std::string> done) = 0;
  virtual void removeValue(std::string key, Callback<void> done) = 0;
  // The unexpired values whose keys start with `prefix`, one page at a time; cursor "" starts.
  virtual void listValues(std::string prefix, std::string cursor, size_t count,
                          Callback<Page<KeyValue>> done) = 0;

  // Succeeds when the backend answers (readiness, health checks).
  virtual void ping(Callback<void> done) = 0;
};

// --- Backends and their settings (read by the wiring layer only) ---

struct MemorySettings {
  size_t shards = 16;  // independently locked parts
  // How often expired entries are swept (reads skip expired entries anyway: the sweep only
  // gives memory back, and walking every binding and nonce each second was 3 % of a router's CPU).
  std::chrono::milliseconds sweepInterval{10000};
  NowFn now;  // empty: system clock
};

struct RedisSettings {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  std::optional<std::string> password;  // AUTH when set
  int db = 0;                           // SELECT when not 0
  std::chrono::milliseconds connectTimeout{1000};
  std::chrono::milliseconds commandTimeout{1000};  // no answer within it -> kTimeout
  std::chrono::milliseconds reconnectMin{100};     // back-off doubles from here...
  std::chrono::milliseconds reconnectMax{5000};    // ...up to here
  std::string keyPrefix = "evosip:";
  NowFn now;  // empty: system clock (used to filter expired entries and to compute TTLs)
};

struct Settings {
  std::string backend = "memory";  // memory | redis
  MemorySettings memory;
  RedisSettings redis;
};

// Opens one Store per executor (one per worker). The memory backend's stores all share the data
// of their factory; the redis backend opens one connection per store.
class StoreFactory {
 public:
  virtual ~StoreFactory() = default;
  // The store must be destroyed on its executor's thread, or after the executor has stopped.
  virtual std::unique_ptr<Store> open(boost::asio::any_io_executor executor) = 0;
};

// Throws std::invalid_argument naming store.backend for an unknown backend.
std::shared_ptr<StoreFactory> makeStoreFactory(const Settings& settings);

}  // namespace evosip::store
