#pragma once
// A small HTTP/1.1 client for control servers: used by `evosip ctl`, tests and (asynchronously)
// by roles that call other roles.
// Every call opens one connection, sends one request and waits at most timeout for the whole
// exchange (HttpConnectionPool keeps connections for repeated requests). Errors are returned as
// one line of text, never thrown.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json/value.hpp>
#include <tl/expected.hpp>

#include <evosip/control/http_message.hpp>

namespace evosip::control {

struct HostPort {
  std::string host;  // without brackets
  std::string port;
};

// "127.0.0.1:8060", "[::1]:8060", "localhost:8060" -> host and port. A bare IPv6 address needs
// brackets. Returns what is wrong as one line.
tl::expected<HostPort, std::string> splitHostPort(std::string_view text);

// True for "localhost" and the loopback addresses (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104); false
// for any other address, the wildcard addresses and host names, which may resolve to anything.
bool isLoopbackHost(std::string_view host);
// The same for a listen address "host:port" / "[v6]:port"; false when it cannot be parsed.
bool isLoopbackListen(std::string_view listen);

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

// The body of a JSON-RPC request (id 1; params left out when null).
std::string rpcRequestBody(const std::string& method, const boost::json::value& params);
// The result of a JSON-RPC answer, or an error line as callRpc returns it.
tl::expected<boost::json::value, std::string> rpcReplyResult(const HttpResponse& response);

// GET path; returns the body on 200, otherwise an error line "HTTP 503: not ready".
// The same exchange without blocking: runs on io (whatever thread runs it) and calls done there
// once, with the response or an error line, at the latest after timeout.
using HttpCallback = std::function<void(tl::expected<HttpResponse, std::string>)>;
void asyncHttpRequest(boost::asio::io_context& io, const std::string& hostPort,
                      const std::string& method, const std::string& path, const std::string& token,
                      const std::string& body, std::chrono::milliseconds timeout,
                      HttpCallback done);

// Keep-alive connections to one HTTP server for one event loop (a worker's io_context): a
// request reuses an idle connection (no resolve, no TCP handshake, no accept on the server) and
// up to maxIdle connections are kept. A request whose reused connection the server had closed
// meanwhile is sent once more on a new connection. Call request() from the io_context's thread
// only; `done` runs there, once, at the latest after timeout. Errors as asyncHttpRequest.
class HttpConnectionPool {
 public:
  HttpConnectionPool(boost::asio::io_context& io, std::string hostPort, size_t maxIdle = 16);
  ~HttpConnectionPool();
  HttpConnectionPool(const HttpConnectionPool&) = delete;
  HttpConnectionPool& operator=(const HttpConnectionPool&) = delete;

  void request(const std::string& method, const std::string& path, const std::string& token,
               const std::string& body, std::chrono::milliseconds timeout, HttpCallback done);

  size_t idle() const;
  uint64_t connectionsOpened() const;

  struct Impl;  // opaque: the Beast types stay in http.cpp

 private:
  std::shared_ptr<Impl> impl_;
};

tl::expected<std::string, std::string> httpGet(const std::string& hostPort, const std::string& path,
                                               const std::string& token,
                                               std::chrono::milliseconds timeout);

}  // namespace evosip::control
