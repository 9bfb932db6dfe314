#include "redis_keys.hpp"

#include <algorithm>
#include <cctype>

#include <boost/json.hpp>

namespace evosip::store::detail {

std::string dialogField(const DialogId& id) {
  return boost::json::serialize(boost::json::array{id.fromTag.c_str(), id.toTag.c_str()});
}

std::string globEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out;
}

bool isCursor(const std::string& s) {
  return !s.empty() && s.size() <= 20 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

}  // namespace evosip::store::detail
