#pragma once
// The key layout of the redis backend (README.md, "Keys"): <prefix><kind><id>, the field of a
// dialog in its call's hash, and the SCAN patterns and cursors of the listings.

#include <string>
#include <string_view>

#include <evosip/store/types.hpp>

#include "redis_connection.hpp"

namespace evosip::store::detail {

inline std::string key(const RedisConnection& c, std::string_view kind, std::string_view id) {
  std::string k = c.settings().keyPrefix;
  k.append(kind).append(id);
  return k;
}

// The field of a dialog in the hash of its call: ["fromTag","toTag"].
std::string dialogField(const DialogId& id);

// s with the SCAN MATCH wildcards (* ? [ ] \) escaped.
std::string globEscape(std::string_view s);

// A SCAN cursor: decimal digits, at most 20.
bool isCursor(const std::string& s);

}  // namespace evosip::store::detail
