#pragma once
// The memory backend: one process (`evosip up`, tests). A MemoryDatabase holds the data and is
// shared by the MemoryStore of every worker. It is thread-safe: its maps are split into shards,
// each behind its own mutex, so workers rarely wait for each other (the store is not on the
// forwarding path). Expired entries are dropped when read and by a periodic sweep, so memory is
// bounded by what is unexpired.

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <evosip/store/store.hpp>

namespace evosip::store {

class MemoryDatabase {
 public:
  explicit MemoryDatabase(MemorySettings settings = {});
  ~MemoryDatabase();
  MemoryDatabase(const MemoryDatabase&) = delete;
  MemoryDatabase& operator=(const MemoryDatabase&) = delete;

  // The synchronous operations behind MemoryStore; same meaning as in Store.
  Result<void> putBinding(Binding binding);
  Result<void> removeBinding(const std::string& aor, const std::string& contact);
  Result<void> removeBindings(const std::string& aor);
  Result<std::vector<Binding>> getBindings(const std::string& aor);
  Result<Page<std::string>> listAors(const std::string& cursor, size_t count);

  Result<void> putDialog(DialogRecord record);
  Result<DialogRecord> getDialog(const DialogId& id);
  Result<std::vector<DialogRecord>> getDialogs(const std::string& callId);
  Result<void> removeDialog(const DialogId& id);
  Result<Page<DialogRecord>> listDialogs(const std::string& cursor, size_t count);

  Result<bool> checkAndSetNonceCount(const std::string& nonce, uint32_t nc,
                                     std::chrono::milliseconds ttl);

  // Values (memory_values.cpp).
  Result<bool> putValue(const std::string& key, std::string value, std::chrono::milliseconds ttl,
                        bool onlyIfAbsent);
  Result<bool> putValueIf(const std::string& key, std::string value, std::chrono::milliseconds ttl,
                          const std::vector<std::string>& expected);
  Result<std::string> getValue(const std::string& key);
  Result<void> removeValue(const std::string& key);
  Result<Page<KeyValue>> listValues(const std::string& prefix, const std::string& cursor,
                                    size_t count);

  // Drops every expired entry now; returns how many.
  size_t sweep();
  // sweep() when the last one is at least sweepInterval old (steady time); called by the stores'
  // timers, so the database is swept once per interval however many workers there are.
  void sweepIfDue();

  struct Counts {
    size_t aors = 0;
    size_t bindings = 0;
    size_t dialogs = 0;
    size_t nonces = 0;
  };
  // Entries held, expired or not.
  Counts counts() const;

  const MemorySettings& settings() const { return settings_; }

 private:
  struct Shard;
  struct Values;
  TimePoint now() const;
  size_t sweepValues(TimePoint now);
  Shard& shardFor(const std::string& key);

  MemorySettings settings_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<Values> values_;
  std::atomic<int64_t> lastSweep_{0};  // steady clock, ns since its epoch
};

class MemoryStore final : public Store {
 public:
  // Shares `database` with the other stores of the process; callbacks run on `executor`, which
  // also runs the periodic sweep.
  MemoryStore(std::shared_ptr<MemoryDatabase> database, boost::asio::any_io_executor executor);
  ~MemoryStore() override;

  void putBinding(Binding binding, Callback<void> done) override;
  void removeBinding(std::string aor, std::string contact, Callback<void> done) override;
  void removeBindings(std::string aor, Callback<void> done) override;
  void getBindings(std::string aor, Callback<std::vector<Binding>> done) override;
  void listAors(std::string cursor, size_t count, Callback<Page<std::string>> done) override;

  void putDialog(DialogRecord record, Callback<void> done) override;
  void getDialog(DialogId id, Callback<DialogRecord> done) override;
  void getDialogs(std::string callId, Callback<std::vector<DialogRecord>> done) override;
  void removeDialog(DialogId id, Callback<void> done) override;
  void listDialogs(std::string cursor, size_t count, Callback<Page<DialogRecord>> done) override;

  void checkAndSetNonceCount(std::string nonce, uint32_t nc, std::chrono::milliseconds ttl,
                             Callback<bool> done) override;
  void putValue(std::string key, std::string value, std::chrono::milliseconds ttl,
                bool onlyIfAbsent, Callback<bool> done) override;
  void putValueIf(std::string key, std::string value, std::chrono::milliseconds ttl,
                  std::vector<std::string> expected, Callback<bool> done) override;
  void getValue(std::string key, Callback<std::string> done) override;
  void removeValue(std::string key, Callback<void> done) override;
  void listValues(std::string prefix, std::string cursor, size_t count,
                  Callback<Page<KeyValue>> done) override;
  void ping(Callback<void> done) override;

 private:
  template <typename T>
  void complete(Callback<T> done, Result<T> result);

  struct Sweeper;
  std::shared_ptr<MemoryDatabase> database_;
  boost::asio::any_io_executor executor_;
  // The io_context behind executor_ (nullptr for another kind): lets complete() run a callback
  // inline when called on that io_context's thread.
  const boost::asio::io_context::executor_type* ioExecutor_ = nullptr;
  std::shared_ptr<Sweeper> sweeper_;
};

}  // namespace evosip::store
