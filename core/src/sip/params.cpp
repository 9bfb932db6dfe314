#include <evosip/base/byte_scan.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/sip/params.hpp>

#include "lex.hpp"

namespace evosip::sip {

// Finds the next ';' outside a quoted string. Returns s.size() when none.
static size_t findParamEnd(std::string_view s) {
  size_t i = 0;
  while ((i = findAnyOf<'"', ';'>(s, i)) < s.size()) {
    if (s[i] == ';') {
      return i;
    }
    auto q = lex::quotedLength(s.substr(i));
    if (!q) {
      return s.size();
    }
    i += *q;
  }
  return s.size();
}

bool ParamList::next(std::string_view& rest, Param& out) {
  while (!rest.empty()) {
    const size_t end = findParamEnd(rest);
    std::string_view item = rest.substr(0, end);
    rest = end < rest.size() ? rest.substr(end + 1) : std::string_view{};
    item = lex::trimLws(item);
    if (item.empty()) {
      continue;
    }
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      out = Param{item, {}, false};
    } else {
      out = Param{lex::trimLws(item.substr(0, eq)), lex::trimLws(item.substr(eq + 1)), true};
    }
    return true;
  }
  return false;
}

bool ParamList::has(std::string_view name) const {
  return get(name).has_value();
}

std::optional<std::string_view> ParamList::get(std::string_view name) const {
  std::optional<std::string_view> found;
  forEach([&](const Param& p) {
    if (iequals(p.name, name)) {
      found = p.value;
      return false;
    }
    return true;
  });
  return found;
}

std::optional<std::string_view> ValueSplitter::next() {
  while (ok_ && !rest_.empty()) {
    size_t i = 0;
    int angle = 0;
    bool split = false;
    while ((i = findAnyOf<'"', '<', '>', ','>(rest_, i)) < rest_.size()) {
      const char c = rest_[i];
      if (c == '"') {
        auto q = lex::quotedLength(rest_.substr(i));
        if (!q) {
          ok_ = false;
          return std::nullopt;
        }
        i += *q;
        continue;
      }
      if (c == '<') {
        ++angle;
      } else if (c == '>') {
        if (angle > 0) {
          --angle;
        }
      } else if (angle == 0) {
        split = true;
        break;
      }
      ++i;
    }
    if (angle != 0) {
      ok_ = false;
      return std::nullopt;
    }
    std::string_view item = lex::trimLws(rest_.substr(0, i));
    rest_ = split ? rest_.substr(i + 1) : std::string_view{};
    if (!item.empty()) {
      return item;
    }
  }
  return std::nullopt;
}

std::string_view stripQuotes(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
    return v.substr(1, v.size() - 2);
  }
  return v;
}

}  // namespace evosip::sip
