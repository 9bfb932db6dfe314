// Everything that includes Boost.Beast lives in this file: the control server and its client.
// Beast is slow to compile, so keeping it in one translation unit keeps rebuilds short.

#include <array>
#include <atomic>
#include <exception>
#include <stdexcept>
#include <thread>
#include <unordered_set>

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/base/strings.hpp>
#include <evosip/control/client.hpp>
#include <evosip/control/server.hpp>
#include <evosip/log/log.hpp>

namespace evosip::control {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto kAwaitTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxHeaderBytes = 16 * 1024;
constexpr std::size_t kMaxResponseBytes = 64 * 1024 * 1024;
constexpr std::size_t kMaxLingerBytes = 8 * 1024 * 1024;
constexpr auto kLingerTime = 2s;

struct HostPort {
  std::string host;
  std::string port;
};

// "127.0.0.1:8060", "[::1]:8060", "localhost:8060". A bare IPv6 address needs brackets.
tl::expected<HostPort, std::string> splitHostPort(std::string_view text) {
  HostPort result;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return tl::unexpected(std::string("missing ']'"));
    }
    result.host = std::string(text.substr(1, close - 1));
    rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return tl::unexpected(std::string("expected ':port' after ']'"));
    }
    rest.remove_prefix(1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return tl::unexpected(std::string("expected host:port"));
    }
    result.host = std::string(text.substr(0, colon));
    if (result.host.find(':') != std::string::npos) {
      return tl::unexpected(std::string("an IPv6 address must be written in brackets"));
    }
    rest = text.substr(colon + 1);
  }
  if (result.host.empty()) {
    return tl::unexpected(std::string("missing host"));
  }
  if (!parseDecimal(rest, 65535)) {
    return tl::unexpected(std::string("the port must be a number from 0 to 65535"));
  }
  result.port = std::string(rest);
  return result;
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

void logException(std::exception_ptr error) {
  if (!error) {
    return;
  }
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    log::get("control")->error("control server task failed: {}", e.what());
  } catch (...) {
    log::get("control")->error("control server task failed");
  }
}

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

Response makeResponse(http::status status, unsigned version, std::string body,
                      std::string_view contentType = "text/plain; charset=utf-8") {
  Response res{status, version};
  res.set(http::field::server, "evosip");
  if (!body.empty() || status != http::status::no_content) {
    res.set(http::field::content_type, contentType);
  }
  res.body() = std::move(body);
  return res;
}

// Holds one of the server's connection slots; released when the session's coroutine frame is
// destroyed, however the session ends (including with the io_context at shutdown).
class ConnectionSlot {
 public:
  explicit ConnectionSlot(std::size_t& connections) : connections_(&connections) {
    ++*connections_;
  }
  ConnectionSlot(ConnectionSlot&& other) noexcept
      : connections_(std::exchange(other.connections_, nullptr)) {}
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  ~ConnectionSlot() {
    if (connections_ != nullptr) {
      --*connections_;
    }
  }

 private:
  std::size_t* connections_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Server

struct ControlServer::Impl {
  ServerSettings settings;
  RpcRegistry& rpc;
  metrics::Registry& metrics;
  std::function<bool()> ready;
  std::shared_ptr<spdlog::logger> log = log::get("control");
  prometheus::Counter& refused =
      metrics
          .counterFamily("evosip_control_connections_refused_total",
                         "Control connections closed at once because the limit was reached")
          .Add({});

  // Touched on the server thread only.
  std::size_t connections = 0;
  std::unordered_set<beast::tcp_stream*> streams;

  std::atomic<uint16_t> port{0};
  bool stopped = false;

  // Declared after the state above: destroying the io_context destroys suspended sessions,
  // whose destructors update that state.
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;

  Impl(ServerSettings s, RpcRegistry& r, metrics::Registry& m, std::function<bool()> f)
      : settings(std::move(s)), rpc(r), metrics(m), ready(std::move(f)) {}

  asio::awaitable<void> acceptLoop();
  asio::awaitable<void> session(beast::tcp_stream stream, ConnectionSlot slot);
  Response route(const Request& req);
  bool authorized(const Request& req) const;
};

namespace {

// After an error response the client may still be sending a body we refused. Closing at once
// would reset the connection and could destroy our response in the client's receive buffer, so
// stop sending, then read and discard for a short while (as HTTP servers commonly do).
asio::awaitable<void> lingeringClose(beast::tcp_stream& stream) {
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.expires_after(kLingerTime);
  std::array<char, 16 * 1024> scratch;
  std::size_t total = 0;
  while (total < kMaxLingerBytes) {
    auto [error, n] = co_await stream.async_read_some(asio::buffer(scratch), kAwaitTuple);
    if (error) {
      break;
    }
    total += n;
  }
  stream.socket().close(ec);
}

}  // namespace

asio::awaitable<void> ControlServer::Impl::acceptLoop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kAwaitTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
        co_return;
      }
      // Typically out of file descriptors: back off instead of spinning.
      log->warn("control server accept failed: {}", ec.message());
      asio::steady_timer pause(ioc, 100ms);
      co_await pause.async_wait(kAwaitTuple);
      continue;
    }
    if (connections >= kMaxConnections) {
      refused.Increment();
      log->debug("control server at its limit of {} connections; refusing one", kMaxConnections);
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    asio::co_spawn(ioc, session(beast::tcp_stream(std::move(socket)), ConnectionSlot(connections)),
                   logException);
  }
}

asio::awaitable<void> ControlServer::Impl::session(beast::tcp_stream stream, ConnectionSlot slot) {
  // Registered so that stop() can close it; the frame keeps the stream at a fixed address.
  streams.insert(&stream);
  struct Untrack {
    std::unordered_set<beast::tcp_stream*>& set;
    beast::tcp_stream* stream;
    ~Untrack() { set.erase(stream); }
  } untrack{streams, &stream};

  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kMaxBodyBytes);
    parser.header_limit(kMaxHeaderBytes);

    stream.expires_after(std::chrono::seconds(kRequestTimeoutSeconds));
    auto [readError, headerBytes] =
        co_await http::async_read_header(stream, buffer, parser, kAwaitTuple);
    if (!readError && !parser.is_done()) {
      const Request& head = parser.get();
      if (beast::iequals(head[http::field::expect], "100-continue")) {
        http::response<http::empty_body> proceed{http::status::continue_, head.version()};
        auto [writeError, written] = co_await http::async_write(stream, proceed, kAwaitTuple);
        if (writeError) {
          co_return;
        }
      }
      std::tie(readError, headerBytes) =
          co_await http::async_read(stream, buffer, parser, kAwaitTuple);
    }

    if (readError) {
      std::optional<Response> refusal;
      if (readError == http::error::body_limit) {
        refusal =
            makeResponse(http::status::payload_too_large, 11,
                         fmt::format("request body too large (limit {} bytes)\n", kMaxBodyBytes));
      } else if (readError == http::error::header_limit) {
        refusal = makeResponse(http::status::request_header_fields_too_large, 11,
                               "request header too large\n");
      } else if (readError.category() ==
                     http::make_error_code(http::error::bad_method).category() &&
                 readError != http::error::end_of_stream &&
                 readError != http::error::partial_message) {
        refusal = makeResponse(http::status::bad_request, 11, "malformed HTTP request\n");
      }
      if (!refusal) {
        // Closed by the peer, timed out or stopped: nothing to answer.
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
      refusal->keep_alive(false);
      refusal->prepare_payload();
      stream.expires_after(std::chrono::seconds(kRequestTimeoutSeconds));
      auto [writeError, written] = co_await http::async_write(stream, *refusal, kAwaitTuple);
      if (!writeError) {
        co_await lingeringClose(stream);
      }
      co_return;
    }

    const Request& req = parser.get();
    Response res = route(req);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    stream.expires_after(std::chrono::seconds(kRequestTimeoutSeconds));
    auto [writeError, written] = co_await http::async_write(stream, res, kAwaitTuple);
    if (writeError) {
      co_return;
    }
    if (!res.keep_alive()) {
      boost::system::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
  }
}

bool ControlServer::Impl::authorized(const Request& req) const {
  if (settings.token.empty()) {
    return true;
  }
  std::string_view value = trim(req[http::field::authorization]);
  constexpr std::string_view kScheme = "bearer ";
  if (!istartsWith(value, kScheme)) {
    return false;
  }
  return constantTimeEquals(trim(value.substr(kScheme.size())), settings.token);
}

Response ControlServer::Impl::route(const Request& req) {
  const unsigned version = req.version();
  std::string_view path = req.target();
  path = path.substr(0, path.find('?'));

  auto methodNotAllowed = [&](std::string_view allow) {
    Response res = makeResponse(http::status::method_not_allowed, version,
                                fmt::format("method not allowed; use {}\n", allow));
    res.set(http::field::allow, allow);
    return res;
  };
  auto unauthorized = [&] {
    Response res = makeResponse(http::status::unauthorized, version, "unauthorized\n");
    const bool tried = !req[http::field::authorization].empty();
    res.set(http::field::www_authenticate,
            tried ? "Bearer realm=\"evosip\", error=\"invalid_token\"" : "Bearer realm=\"evosip\"");
    return res;
  };

  try {
    if (path == "/healthz") {
      if (req.method() != http::verb::get) {
        return methodNotAllowed("GET");
      }
      return makeResponse(http::status::ok, version, "ok");
    }
    if (path == "/readyz") {
      if (req.method() != http::verb::get) {
        return methodNotAllowed("GET");
      }
      const bool isReady = !ready || ready();
      return isReady ? makeResponse(http::status::ok, version, "ready")
                     : makeResponse(http::status::service_unavailable, version, "not ready");
    }
    if (path == "/metrics") {
      if (req.method() != http::verb::get) {
        return methodNotAllowed("GET");
      }
      if (!authorized(req)) {
        return unauthorized();
      }
      return makeResponse(http::status::ok, version, metrics.render(), "text/plain; version=0.0.4");
    }
    if (path == "/rpc") {
      if (req.method() != http::verb::post) {
        return methodNotAllowed("POST");
      }
      if (!authorized(req)) {
        return unauthorized();
      }
      std::string reply = rpc.handle(req.body());
      if (reply.empty()) {
        return makeResponse(http::status::no_content, version, "");
      }
      return makeResponse(http::status::ok, version, std::move(reply), "application/json");
    }
    return makeResponse(http::status::not_found, version, "not found\n");
  } catch (const std::exception& e) {
    log->error("control request {} {} failed: {}", std::string(req.method_string()),
               std::string(path), e.what());
    return makeResponse(http::status::internal_server_error, version, "internal error\n");
  }
}

ControlServer::ControlServer(ServerSettings settings, RpcRegistry& rpc, metrics::Registry& metrics,
                             std::function<bool()> ready)
    : impl_(std::make_unique<Impl>(std::move(settings), rpc, metrics, std::move(ready))) {}

ControlServer::~ControlServer() {
  stop();
}

void ControlServer::start() {
  Impl& s = *impl_;
  const std::string& listen = s.settings.listen;
  if (s.thread.joinable() || s.stopped) {
    throw std::runtime_error("control server on " + listen + " was already started");
  }
  auto address = splitHostPort(listen);
  if (!address) {
    throw std::runtime_error("control.listen: cannot use '" + listen + "': " + address.error());
  }
  boost::system::error_code ec;
  tcp::resolver resolver(s.ioc);
  auto endpoints = resolver.resolve(address->host, address->port,
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    throw std::runtime_error("control.listen: cannot resolve '" + listen +
                             "': " + (ec ? ec.message() : std::string("no address")));
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  auto fail = [&](std::string_view step) {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    throw std::runtime_error(
        fmt::format("control server cannot {} on {}: {}", step, listen, ec.message()));
  };
  s.acceptor.open(endpoint.protocol(), ec);
  if (ec) {
    fail("open a socket");
  }
  s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) {
    fail("set SO_REUSEADDR");
  }
  s.acceptor.bind(endpoint, ec);
  if (ec) {
    fail("bind");
  }
  s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    fail("listen");
  }
  s.port = s.acceptor.local_endpoint(ec).port();

  asio::co_spawn(s.ioc, s.acceptLoop(), logException);
  s.thread = std::thread([&s] {
    for (;;) {
      try {
        s.ioc.run();
        return;
      } catch (const std::exception& e) {
        s.log->error("control server thread: {}", e.what());
      }
    }
  });
  s.log->info("control server listening on {} (port {})", listen, s.port.load());
}

void ControlServer::stop() {
  Impl& s = *impl_;
  if (s.stopped) {
    return;
  }
  s.stopped = true;
  if (!s.thread.joinable()) {
    return;
  }
  asio::post(s.ioc, [&s] {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    for (beast::tcp_stream* stream : s.streams) {
      stream->socket().close(ignored);
    }
    // Sessions still suspended are destroyed with the io_context.
    s.ioc.stop();
  });
  s.thread.join();
}

uint16_t ControlServer::port() const {
  return impl_->port.load();
}

// ---------------------------------------------------------------------------------------------
// Client

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) {
      return value;
    }
  }
  return {};
}

namespace {

asio::awaitable<void> exchange(const HostPort& address, Request& req, HttpResponse& out,
                               std::string& error, bool& done) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [resolveError, endpoints] = co_await resolver.async_resolve(
      address.host, address.port, tcp::resolver::numeric_service, kAwaitTuple);
  if (resolveError) {
    error = "cannot resolve " + address.host + ": " + resolveError.message();
    done = true;
    co_return;
  }
  beast::tcp_stream stream(executor);
  auto [connectError, endpoint] = co_await stream.async_connect(endpoints, kAwaitTuple);
  if (connectError) {
    error = "cannot connect: " + connectError.message();
    done = true;
    co_return;
  }
  auto [writeError, written] = co_await http::async_write(stream, req, kAwaitTuple);
  if (writeError) {
    error = "cannot send the request: " + writeError.message();
    done = true;
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBytes);
  auto [readError, read] = co_await http::async_read(stream, buffer, parser, kAwaitTuple);
  if (readError) {
    error = "cannot read the response: " + readError.message();
    done = true;
    co_return;
  }
  Response& res = parser.get();
  out.status = res.result_int();
  out.body = std::move(res.body());
  for (const auto& field : res) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  done = true;
}

std::string firstLine(std::string_view text) {
  text = trim(text);
  return std::string(text.substr(0, text.find('\n')));
}

}  // namespace

tl::expected<HttpResponse, std::string> httpRequest(
    const std::string& hostPort, const std::string& method, const std::string& path,
    const std::string& token, const std::string& body, std::chrono::milliseconds timeout) {
  auto address = splitHostPort(hostPort);
  if (!address) {
    return tl::unexpected("bad address '" + hostPort + "': " + address.error());
  }
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    return tl::unexpected("unknown HTTP method '" + method + "'");
  }
  Request req{verb, path.empty() ? "/" : path, 11};
  const bool bracketed = address->host.find(':') != std::string::npos;
  req.set(http::field::host, bracketed ? "[" + address->host + "]:" + address->port : hostPort);
  req.set(http::field::user_agent, "evosip-ctl");
  if (!token.empty()) {
    req.set(http::field::authorization, "Bearer " + token);
  }
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
  }
  req.body() = body;
  req.keep_alive(false);
  req.prepare_payload();

  HttpResponse response;
  std::string error;
  bool done = false;
  try {
    asio::io_context ioc{1};
    asio::co_spawn(ioc, exchange(*address, req, response, error, done), [&](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          error = x.what();
        }
        done = true;
      }
    });
    ioc.run_for(timeout);
  } catch (const std::exception& e) {
    return tl::unexpected(std::string("HTTP request failed: ") + e.what());
  }
  if (!done) {
    return tl::unexpected(
        fmt::format("no response from {} within {} ms", hostPort, timeout.count()));
  }
  if (!error.empty()) {
    return tl::unexpected(hostPort + ": " + error);
  }
  return response;
}

tl::expected<std::string, std::string> httpGet(const std::string& hostPort, const std::string& path,
                                               const std::string& token,
                                               std::chrono::milliseconds timeout) {
  auto response = httpRequest(hostPort, "GET", path, token, "", timeout);
  if (!response) {
    return tl::unexpected(response.error());
  }
  if (response->status != 200) {
    return tl::unexpected(fmt::format("HTTP {}: {}", response->status, firstLine(response->body)));
  }
  return std::move(response->body);
}

tl::expected<json::value, std::string> callRpc(const std::string& hostPort,
                                               const std::string& token, const std::string& method,
                                               const json::value& params,
                                               std::chrono::milliseconds timeout) {
  json::object request;
  request["jsonrpc"] = "2.0";
  request["method"] = method;
  if (!params.is_null()) {
    request["params"] = params;
  }
  request["id"] = 1;
  auto response = httpRequest(hostPort, "POST", "/rpc", token, json::serialize(request), timeout);
  if (!response) {
    return tl::unexpected(response.error());
  }
  if (response->status != 200) {
    return tl::unexpected(fmt::format("HTTP {}: {}", response->status, firstLine(response->body)));
  }
  boost::system::error_code ec;
  json::value reply = json::parse(response->body, ec);
  if (ec || !reply.is_object()) {
    return tl::unexpected("invalid JSON-RPC reply: " + firstLine(response->body));
  }
  const json::object& object = reply.get_object();
  if (const json::value* error = object.if_contains("error")) {
    const json::object* details = error->if_object();
    if (details == nullptr) {
      return tl::unexpected("RPC error: " + json::serialize(*error));
    }
    const json::value* code = details->if_contains("code");
    const json::value* message = details->if_contains("message");
    std::string text = fmt::format(
        "RPC error {}: {}", code != nullptr ? json::serialize(*code) : "?",
        message != nullptr && message->is_string() ? std::string(message->get_string()) : "");
    if (const json::value* data = details->if_contains("data")) {
      text += " " + json::serialize(*data);
    }
    return tl::unexpected(std::move(text));
  }
  if (const json::value* result = object.if_contains("result")) {
    return *result;
  }
  return tl::unexpected("invalid JSON-RPC reply: " + firstLine(response->body));
}

}  // namespace evosip::control
