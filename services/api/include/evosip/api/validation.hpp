#pragma once
// Validation of what API clients send: domain names, user names, passwords and paging. Every
// failure names the field, so the API can answer 400 {"error": ..., "field": ...}.

#include <cstdint>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace evosip::api {

struct FieldError {
  std::string field;    // "username"
  std::string message;  // "username: at most 64 characters"
};

inline constexpr std::size_t kMaxUsernameLength = 64;
inline constexpr std::size_t kMinPasswordLength = 6;
inline constexpr std::size_t kMaxPasswordLength = 128;
inline constexpr int64_t kDefaultPerPage = 50;
inline constexpr int64_t kMaxPerPage = 1000;

// A DNS name (labels of letters, digits and '-', not starting or ending with '-', at most 63
// characters each, 253 in all) returned in lower case: SIP compares hosts case-insensitively.
tl::expected<std::string, FieldError> normalizeDomain(std::string_view name,
                                                      const std::string& field = "name");

// The user part of a SIP URI without escapes: letters, digits and - _ . ! ~ * ' ( ) & = + $ , ;
// 1 to 64 characters. Case is kept (SIP user parts are case-sensitive).
tl::expected<std::string, FieldError> validateUsername(std::string_view username);

// 6 to 128 bytes of UTF-8 without control characters.
tl::expected<std::string, FieldError> validatePassword(std::string_view password);

struct Paging {
  int64_t page = 1;  // from 1
  int64_t perPage = kDefaultPerPage;
  int64_t offset() const { return (page - 1) * perPage; }
};

// page: 1 to 1,000,000 (default 1); per_page: 1 to 1000 (default 50). "" means the default.
tl::expected<Paging, FieldError> parsePaging(std::string_view page, std::string_view perPage);

}  // namespace evosip::api
