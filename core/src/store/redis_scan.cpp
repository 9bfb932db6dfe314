#include "redis_scan.hpp"

#include <algorithm>

#include "redis_reply.hpp"

namespace evosip::store::detail {

void Scan::start(std::shared_ptr<RedisConnection> connection, std::string pattern,
                 const std::string& cursor, size_t count, Finish finish) {
  auto scan = std::make_shared<Scan>();
  scan->connection = std::move(connection);
  scan->pattern = std::move(pattern);
  scan->count = std::max<size_t>(count, 1);
  scan->cursor = cursor.empty() ? "0" : cursor;
  scan->finish = std::move(finish);
  scan->step();
}

void Scan::step() {
  connection->command(
      {"SCAN", cursor, "MATCH", pattern, "COUNT", std::to_string(std::max<size_t>(count, 10))},
      [self = shared_from_this()](Result<const redisReply*> reply) {
        if (!reply) {
          self->finish(tl::unexpected(reply.error()));
          return;
        }
        self->onReply(**reply);
      });
}

void Scan::onReply(const redisReply& r) {
  if (r.type != REDIS_REPLY_ARRAY || r.elements != 2 || r.element[0]->type != REDIS_REPLY_STRING ||
      r.element[1]->type != REDIS_REPLY_ARRAY) {
    finish(tl::unexpected(unexpectedReply(r)));
    return;
  }
  cursor = std::string(text(*r.element[0]));
  const redisReply& found = *r.element[1];
  for (size_t i = 0; i < found.elements; ++i) {
    if (found.element[i]->type == REDIS_REPLY_STRING) {
      keys.emplace_back(text(*found.element[i]));
    }
  }
  if (cursor == "0") {
    finish(std::pair{std::move(keys), std::string()});
  } else if (keys.size() >= count) {
    finish(std::pair{std::move(keys), cursor});
  } else {
    step();
  }
}

}  // namespace evosip::store::detail
