#pragma once
// The redis backend: production, several routers sharing one Redis (or Cluster/Sentinel in
// front of it). hiredis' asynchronous API driven by the store's Asio executor; one connection
// per store, i.e. per worker io_context, so replies are read on the worker that asked and no
// lock is taken. Keys, scripts and failure behaviour: core/src/store/README.md.
//
// The connection is opened at construction and reopened with exponential back-off whenever it
// fails. While it is not established every operation completes at once with kUnavailable;
// an operation without a reply within commandTimeout completes with kTimeout and the connection
// is reopened (a server that stopped answering is treated as gone).

#include <memory>

#include <boost/asio/any_io_executor.hpp>

#include <evosip/store/store.hpp>

namespace evosip::store {

namespace detail {
class RedisConnection;
}

class RedisStore final : public Store {
 public:
  RedisStore(RedisSettings settings, boost::asio::any_io_executor executor);
  // Closes the connection: pending operations complete with kUnavailable. Call it on the
  // executor's thread or after the executor has stopped.
  ~RedisStore() override;

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

  // True while the connection is established (read on the executor's thread).
  bool connected() const;

 private:
  std::shared_ptr<detail::RedisConnection> connection_;
};

}  // namespace evosip::store
