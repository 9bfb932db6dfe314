#include <fmt/format.h>

#include <evosip/store/config.hpp>

namespace evosip::store {

Settings readSettings(config::Document& doc) {
  Settings s;
  s.backend = doc.getString("store.backend", "memory");
  if (s.backend != "memory" && s.backend != "redis") {
    throw config::ConfigError(fmt::format("store.backend: '{}' is not memory or redis", s.backend));
  }
  s.redis.host = doc.getString("store.redis.host", "127.0.0.1");
  s.redis.port = static_cast<uint16_t>(doc.getInt("store.redis.port", 6379, 1, 65535));
  if (auto pw = config::readSecret(doc.getString("store.redis.password", "")); !pw.empty()) {
    s.redis.password = pw;
  }
  s.redis.db = static_cast<int>(doc.getInt("store.redis.db", 0, 0, 1000));
  return s;
}

}  // namespace evosip::store
