#pragma once
// The nonce-count record of digest authentication, kept in the shared store.
#include <evosip/auth/nonce_count_store.hpp>
#include <evosip/router/router.hpp>
#include <evosip/store/store.hpp>

namespace evosip::router {

// Nonce counts in the shared store, so a replay is caught whichever router it reaches.
class Router::StoreNonceCounts final : public auth::NonceCountStore {
 public:
  explicit StoreNonceCounts(store::Store& s) : store_(s) {}
  void checkAndSet(std::string_view nonce, uint32_t nc, std::chrono::seconds ttl,
                   Callback done) override {
    store_.checkAndSetNonceCount(
        std::string(nonce), nc, std::chrono::duration_cast<std::chrono::milliseconds>(ttl),
        [done = std::move(done)](Result<bool> r) {
          done(!r ? auth::NonceCountVerdict::kUnavailable
                  : (*r ? auth::NonceCountVerdict::kFresh : auth::NonceCountVerdict::kReplay));
        });
  }

 private:
  store::Store& store_;
};

}  // namespace evosip::router
