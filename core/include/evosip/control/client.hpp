#pragma once
// A small synchronous HTTP/1.1 client for the control server: used by `evosip ctl` and tests.
// Every call opens one connection, sends one request and waits at most timeout for the whole
// exchange. Errors are returned as one line of text, never thrown.

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <boost/json/value.hpp>
#include <tl/expected.hpp>

namespace evosip::control {

struct HttpResponse {
  unsigned status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  // The first header of that name (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

// Sends method (e.g. "GET") to http://hostPort/path with the body and, when token is not empty,
// "Authorization: Bearer <token>". Any status is a successful exchange.
tl::expected<HttpResponse, std::string> httpRequest(
    const std::string& hostPort, const std::string& method, const std::string& path,
    const std::string& token, const std::string& body, std::chrono::milliseconds timeout);

// Calls one JSON-RPC method on POST /rpc; returns its result, or an error line: the transport
// error, "HTTP 401 ...", or "RPC error -32601: Method not found: 'x'".
tl::expected<boost::json::value, std::string> callRpc(const std::string& hostPort,
                                                      const std::string& token,
                                                      const std::string& method,
                                                      const boost::json::value& params,
                                                      std::chrono::milliseconds timeout);

// GET path; returns the body on 200, otherwise an error line "HTTP 503: not ready".
tl::expected<std::string, std::string> httpGet(const std::string& hostPort, const std::string& path,
                                               const std::string& token,
                                               std::chrono::milliseconds timeout);

}  // namespace evosip::control
