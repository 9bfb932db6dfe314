#pragma once
// Plain HTTP request and response values shared by the HTTP server, its handlers and the client.
// They carry no Beast types, so code that handles requests does not compile Beast.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evosip::control {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // "GET", "POST", ... as sent
  std::string target;  // the request target as sent: "/v1/subscribers?domain=a.example"
  std::string path;    // target without the query: "/v1/subscribers"
  std::string body;
  HttpHeaders headers;

  // The first header of that name (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

struct HttpResponse {
  unsigned status = 0;
  std::string body;
  HttpHeaders headers;

  // The first header of that name (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

// A response with a Content-Type header (none when contentType is empty).
HttpResponse makeHttpResponse(unsigned status, std::string body,
                              std::string_view contentType = "text/plain; charset=utf-8");

// True when the request carries "Authorization: Bearer <token>" with exactly that token, or when
// token is empty. The comparison takes the same time whatever part of a guess matches.
bool bearerTokenMatches(const HttpRequest& request, std::string_view token);

// 401 with a WWW-Authenticate challenge; says "invalid_token" when the request tried a token.
HttpResponse unauthorizedResponse(const HttpRequest& request);

}  // namespace evosip::control
