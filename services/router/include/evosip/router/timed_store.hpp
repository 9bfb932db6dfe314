#pragma once
// A Store that measures how long each operation takes (evosip_router_store_latency_seconds)
// around the real backend; nothing else changes.

#include <array>
#include <chrono>
#include <memory>

#include <prometheus/histogram.h>

#include <evosip/store/store.hpp>

namespace evosip::router {

class TimedStore final : public store::Store {
 public:
  enum Op { kBindings, kDialogs, kNonce, kPing, kOpCount };
  using Histograms = std::array<prometheus::Histogram*, kOpCount>;

  TimedStore(std::unique_ptr<store::Store> inner, Histograms histograms)
      : inner_(std::move(inner)), histograms_(histograms) {}

  void putBinding(store::Binding b, store::Callback<void> done) override {
    inner_->putBinding(std::move(b), timed(kBindings, std::move(done)));
  }
  void removeBinding(std::string aor, std::string contact, store::Callback<void> done) override {
    inner_->removeBinding(std::move(aor), std::move(contact), timed(kBindings, std::move(done)));
  }
  void removeBindings(std::string aor, store::Callback<void> done) override {
    inner_->removeBindings(std::move(aor), timed(kBindings, std::move(done)));
  }
  void getBindings(std::string aor, store::Callback<std::vector<store::Binding>> done) override {
    inner_->getBindings(std::move(aor), timed(kBindings, std::move(done)));
  }
  void listAors(std::string cursor, size_t count,
                store::Callback<store::Page<std::string>> done) override {
    inner_->listAors(std::move(cursor), count, timed(kBindings, std::move(done)));
  }
  void putDialog(store::DialogRecord r, store::Callback<void> done) override {
    inner_->putDialog(std::move(r), timed(kDialogs, std::move(done)));
  }
  void getDialog(store::DialogId id, store::Callback<store::DialogRecord> done) override {
    inner_->getDialog(std::move(id), timed(kDialogs, std::move(done)));
  }
  void getDialogs(std::string callId,
                  store::Callback<std::vector<store::DialogRecord>> done) override {
    inner_->getDialogs(std::move(callId), timed(kDialogs, std::move(done)));
  }
  void removeDialog(store::DialogId id, store::Callback<void> done) override {
    inner_->removeDialog(std::move(id), timed(kDialogs, std::move(done)));
  }
  void listDialogs(std::string cursor, size_t count,
                   store::Callback<store::Page<store::DialogRecord>> done) override {
    inner_->listDialogs(std::move(cursor), count, timed(kDialogs, std::move(done)));
  }
  void checkAndSetNonceCount(std::string nonce, uint32_t nc, std::chrono::milliseconds ttl,
                             store::Callback<bool> done) override {
    inner_->checkAndSetNonceCount(std::move(nonce), nc, ttl, timed(kNonce, std::move(done)));
  }
  void putValue(std::string key, std::string value, std::chrono::milliseconds ttl,
                bool onlyIfAbsent, store::Callback<bool> done) override {
    inner_->putValue(std::move(key), std::move(value), ttl, onlyIfAbsent, std::move(done));
  }
  void putValueIf(std::string key, std::string value, std::chrono::milliseconds ttl,
                  std::vector<std::string> expected, store::Callback<bool> done) override {
    inner_->putValueIf(std::move(key), std::move(value), ttl, std::move(expected), std::move(done));
  }
  void getValue(std::string key, store::Callback<std::string> done) override {
    inner_->getValue(std::move(key), std::move(done));
  }
  void removeValue(std::string key, store::Callback<void> done) override {
    inner_->removeValue(std::move(key), std::move(done));
  }
  void listValues(std::string prefix, std::string cursor, size_t count,
                  store::Callback<store::Page<store::KeyValue>> done) override {
    inner_->listValues(std::move(prefix), std::move(cursor), count, std::move(done));
  }
  void ping(store::Callback<void> done) override { inner_->ping(timed(kPing, std::move(done))); }

 private:
  template <typename T>
  store::Callback<T> timed(Op op, store::Callback<T> done) {
    return [h = histograms_[op], start = std::chrono::steady_clock::now(),
            done = std::move(done)](Result<T> r) {
      h->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      done(std::move(r));
    };
  }

  std::unique_ptr<store::Store> inner_;
  Histograms histograms_;
};

}  // namespace evosip::router
