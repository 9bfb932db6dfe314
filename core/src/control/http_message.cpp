#include <openssl/crypto.h>
#include <openssl/sha.h>

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

// Compares SHA-256 digests with CRYPTO_memcmp: the time taken tells neither how much of a guess
// matched nor how long the token is.
bool constantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char da[SHA256_DIGEST_LENGTH];
  unsigned char db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof da) == 0;
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
