#include <algorithm>

#include <evosip/base/strings.hpp>
#include <evosip/control/http_message.hpp>

namespace evosip::control {

namespace {

std::string findHeader(const HttpHeaders& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) {
      return value;
    }
  }
  return {};
}

// Compares without an early exit, so the time taken does not tell how much of a guess matched.
bool constantTimeEquals(std::string_view a, std::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0U : 1U;
  for (size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  return findHeader(headers, name);
}

std::string HttpResponse::header(std::string_view name) const {
  return findHeader(headers, name);
}

HttpResponse makeHttpResponse(unsigned status, std::string body, std::string_view contentType) {
  HttpResponse res;
  res.status = status;
  if (!contentType.empty() && (!body.empty() || status != 204)) {
    res.headers.emplace_back("Content-Type", std::string(contentType));
  }
  res.body = std::move(body);
  return res;
}

bool bearerTokenMatches(const HttpRequest& request, std::string_view token) {
  if (token.empty()) {
    return true;
  }
  const std::string header = request.header("authorization");
  std::string_view value = trim(header);
  constexpr std::string_view kScheme = "bearer ";
  if (!istartsWith(value, kScheme)) {
    return false;
  }
  return constantTimeEquals(trim(value.substr(kScheme.size())), token);
}

HttpResponse unauthorizedResponse(const HttpRequest& request) {
  HttpResponse res = makeHttpResponse(401, "unauthorized\n");
  const bool tried = !request.header("authorization").empty();
  res.headers.emplace_back(
      "WWW-Authenticate",
      tried ? "Bearer realm=\"evosip\", error=\"invalid_token\"" : "Bearer realm=\"evosip\"");
  return res;
}

}  // namespace evosip::control
