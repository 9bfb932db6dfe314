#include "redis_reply.hpp"

namespace evosip::store::detail {

std::string describe(const redisReply& r) {
  if (r.type == REDIS_REPLY_ERROR || r.type == REDIS_REPLY_STRING || r.type == REDIS_REPLY_STATUS) {
    return std::string(text(r));
  }
  return "reply of type " + std::to_string(r.type);
}

Error unexpectedReply(const redisReply& r) {
  return Error{Errc::kIo, "redis: unexpected " + describe(r)};
}

}  // namespace evosip::store::detail
