#include <stdexcept>
#include <utility>

#include <evosip/store/memory_store.hpp>
#include <evosip/store/redis_store.hpp>
#include <evosip/store/store.hpp>

namespace evosip::store {

namespace {

class MemoryFactory final : public StoreFactory {
 public:
  explicit MemoryFactory(const MemorySettings& settings)
      : database_(std::make_shared<MemoryDatabase>(settings)) {}
  std::unique_ptr<Store> open(boost::asio::any_io_executor executor) override {
    return std::make_unique<MemoryStore>(database_, std::move(executor));
  }

 private:
  std::shared_ptr<MemoryDatabase> database_;
};

class RedisFactory final : public StoreFactory {
 public:
  explicit RedisFactory(RedisSettings settings) : settings_(std::move(settings)) {}
  std::unique_ptr<Store> open(boost::asio::any_io_executor executor) override {
    return std::make_unique<RedisStore>(settings_, std::move(executor));
  }

 private:
  RedisSettings settings_;
};

}  // namespace

std::shared_ptr<StoreFactory> makeStoreFactory(const Settings& settings) {
  if (settings.backend == "memory") {
    return std::make_shared<MemoryFactory>(settings.memory);
  }
  if (settings.backend == "redis") {
    return std::make_shared<RedisFactory>(settings.redis);
  }
  throw std::invalid_argument("store.backend: unknown backend '" + settings.backend +
                              "' (memory | redis)");
}

}  // namespace evosip::store
