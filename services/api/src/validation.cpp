#include <evosip/api/validation.hpp>
#include <evosip/base/strings.hpp>

namespace evosip::api {

namespace {

tl::unexpected<FieldError> fail(const std::string& field, std::string_view what) {
  return tl::unexpected(FieldError{field, field + ": " + std::string(what)});
}

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

tl::expected<std::string, FieldError> normalizeDomain(std::string_view name,
                                                      const std::string& field) {
  if (name.empty()) {
    return fail(field, "a domain name is required");
  }
  if (name.size() > 253) {
    return fail(field, "at most 253 characters");
  }
  std::string out;
  out.reserve(name.size());
  size_t labelStart = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      const std::string_view label = name.substr(labelStart, i - labelStart);
      if (label.empty()) {
        return fail(field, "empty label (two dots, or a dot at the start or end)");
      }
      if (label.size() > 63) {
        return fail(field, "a label has more than 63 characters");
      }
      if (label.front() == '-' || label.back() == '-') {
        return fail(field, "a label starts or ends with '-'");
      }
      labelStart = i + 1;
      if (i < name.size()) {
        out.push_back('.');
      }
      continue;
    }
    const char c = name[i];
    if (!isAlnum(c) && c != '-') {
      return fail(field, "only letters, digits, '-' and '.' are allowed");
    }
    out.push_back(asciiLower(c));
  }
  return out;
}

tl::expected<std::string, FieldError> validateUsername(std::string_view username) {
  if (username.empty()) {
    return fail("username", "a user name is required");
  }
  if (username.size() > kMaxUsernameLength) {
    return fail("username", "at most 64 characters");
  }
  constexpr std::string_view kAllowed = "-_.!~*'()&=+$,;";
  for (char c : username) {
    if (!isAlnum(c) && kAllowed.find(c) == std::string_view::npos) {
      return fail("username", "only letters, digits and - _ . ! ~ * ' ( ) & = + $ , ; are allowed");
    }
  }
  return std::string(username);
}

tl::expected<std::string, FieldError> validatePassword(std::string_view password) {
  if (password.size() < kMinPasswordLength) {
    return fail("password", "at least 6 characters");
  }
  if (password.size() > kMaxPasswordLength) {
    return fail("password", "at most 128 bytes");
  }
  for (char c : password) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return fail("password", "control characters are not allowed");
    }
  }
  return std::string(password);
}

tl::expected<Paging, FieldError> parsePaging(std::string_view page, std::string_view perPage) {
  Paging p;
  if (!page.empty()) {
    auto v = parseDecimal(page, 1000000);
    if (!v || *v == 0) {
      return fail("page", "a number from 1 to 1000000");
    }
    p.page = static_cast<int64_t>(*v);
  }
  if (!perPage.empty()) {
    auto v = parseDecimal(perPage, kMaxPerPage);
    if (!v || *v == 0) {
      return fail("per_page", "a number from 1 to 1000");
    }
    p.perPage = static_cast<int64_t>(*v);
  }
  return p;
}

}  // namespace evosip::api
