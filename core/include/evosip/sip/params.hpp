#pragma once
// Generic ";name=value" parameter lists and comma-separated header values, as views.

#include <optional>
#include <string_view>

namespace evosip::sip {

// A parameter list as written, starting after the first ';' (e.g. "lr;transport=tcp;q=0.5").
// Names compare case-insensitively. A parameter without '=' has an empty value.
class ParamList {
 public:
  ParamList() = default;
  explicit ParamList(std::string_view raw) : raw_(raw) {}

  std::string_view raw() const { return raw_; }
  bool empty() const { return raw_.empty(); }
  bool has(std::string_view name) const;
  // nullopt when absent; "" when present without a value. Quotes are kept as written.
  std::optional<std::string_view> get(std::string_view name) const;

  struct Param {
    std::string_view name;
    std::string_view value;
    bool hasValue = false;
  };
  // Calls fn(Param) for each parameter in order; stops early when fn returns false.
  template <typename Fn>
  void forEach(Fn&& fn) const;

 private:
  static bool next(std::string_view& rest, Param& out);
  std::string_view raw_;
};

template <typename Fn>
void ParamList::forEach(Fn&& fn) const {
  std::string_view rest = raw_;
  Param p;
  while (next(rest, p)) {
    if (!fn(p)) {
      return;
    }
  }
}

// Splits a header value on top-level commas: commas inside "quoted strings" (with \-escapes) and
// inside <...> do not split. Empty elements are skipped. Each element is trimmed.
// Usage: for (auto it = ValueSplitter(v); auto e = it.next();) { ... *e ... }
class ValueSplitter {
 public:
  explicit ValueSplitter(std::string_view value) : rest_(value) {}
  std::optional<std::string_view> next();
  // False once a syntax error was found (unterminated quote or '<').
  bool ok() const { return ok_; }

 private:
  std::string_view rest_;
  bool ok_ = true;
};

// Removes surrounding quotes of a quoted-string view ("abc" -> abc). Escapes are left in place:
// callers that need the resolved text (digest) use unquote() of auth.hpp.
std::string_view stripQuotes(std::string_view v);

}  // namespace evosip::sip
