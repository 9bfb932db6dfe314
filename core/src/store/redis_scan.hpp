#pragma once
// Listing keys one page at a time with SCAN (location.list, dialog.list).

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <evosip/base/result.hpp>

#include "redis_connection.hpp"

namespace evosip::store::detail {

// Pages through SCAN until `count` keys matching `pattern` are collected or the scan is done,
// then calls finish(keys, nextCursor) on the connection's thread.
struct Scan : std::enable_shared_from_this<Scan> {
  using Finish = std::function<void(Result<std::pair<std::vector<std::string>, std::string>>)>;

  // Starts a scan at `cursor` ("": from the beginning) for at least one key.
  static void start(std::shared_ptr<RedisConnection> connection, std::string pattern,
                    const std::string& cursor, size_t count, Finish finish);

  std::shared_ptr<RedisConnection> connection;
  std::string pattern;
  size_t count = 1;
  std::string cursor;
  std::vector<std::string> keys;
  Finish finish;

  void step();
  // One SCAN reply: collect its keys, then finish or scan on.
  void onReply(const redisReply& r);
};

}  // namespace evosip::store::detail
