#pragma once
// Reading hiredis replies: their text, what to say about an unexpected one, and the records
// (JSON values, json.hpp) held in a hash.

#include <cstddef>
#include <hiredis/hiredis.h>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/base/result.hpp>
#include <evosip/log/log.hpp>
#include <evosip/store/types.hpp>

namespace evosip::store::detail {

inline std::string_view text(const redisReply& r) {
  return {r.str, r.len};
}

// The reply's text for errors, strings and statuses; its type otherwise.
std::string describe(const redisReply& r);
Error unexpectedReply(const redisReply& r);

// For commands whose reply carries nothing (any non-error reply is success).
inline Result<void> expectOk(const redisReply&) {
  return {};
}

// Values of HGETALL (every second element) or HVALS (every element) decoded; expired and
// undecodable records are left out.
template <typename T, typename Decode>
std::vector<T> decodeRecords(const redisReply& r, size_t first, size_t step, TimePoint now,
                             Decode decode) {
  std::vector<T> out;
  if (r.type != REDIS_REPLY_ARRAY) {
    return out;
  }
  for (size_t i = first; i < r.elements; i += step) {
    const redisReply* e = r.element[i];
    if (e->type != REDIS_REPLY_STRING) {
      continue;
    }
    auto record = decode(text(*e));
    if (!record) {
      log::get("store")->warn("skipping a stored record: {}", record.error().message);
      continue;
    }
    if (record->expires > now) {
      out.push_back(std::move(*record));
    }
  }
  return out;
}

}  // namespace evosip::store::detail
