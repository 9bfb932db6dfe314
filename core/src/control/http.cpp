// Everything that includes Boost.Beast lives in this file: the HTTP server every role's control
// server and the `api` role are built on, and the HTTP client. Beast is slow to compile, so
// keeping it in one translation unit keeps rebuilds short.

#include <algorithm>
#include <array>
#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

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
#include <evosip/control/http_server.hpp>
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

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

Response toBeast(HttpResponse&& in, unsigned version) {
  Response res{static_cast<http::status>(in.status), version};
  res.set(http::field::server, "evosip");
  for (auto& [name, value] : in.headers) {
    res.set(name, value);
  }
  res.body() = std::move(in.body);
  return res;
}

HttpRequest fromBeast(Request& req) {
  HttpRequest out;
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  out.path = out.target.substr(0, out.target.find('?'));
  out.body = std::move(req.body());
  for (const auto& field : req) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  return out;
}

// A connection the server holds: what admission and eviction look at. Touched on the server
// thread only.
struct Connection {
  beast::tcp_stream* stream = nullptr;
  asio::ip::address source;
  bool probe = false;  // a reserve connection: health probes only
  bool idle = true;    // waiting for the first byte of a request
  std::chrono::steady_clock::time_point idleSince;
};
using ConnectionTable = std::unordered_map<uint64_t, Connection>;

// Owns a session's stream and its entry in the table; the entry goes when the session's
// coroutine frame is destroyed, however the session ends (including with the io_context at
// shutdown), or earlier when the connection is evicted. The entry is erased before the stream
// is destroyed.
class ConnectionTicket {
 public:
  ConnectionTicket(ConnectionTable& table, uint64_t id, std::unique_ptr<beast::tcp_stream> stream)
      : table_(&table), id_(id), stream_(std::move(stream)) {}
  ConnectionTicket(ConnectionTicket&& other) noexcept
      : table_(std::exchange(other.table_, nullptr)),
        id_(other.id_),
        stream_(std::move(other.stream_)) {}
  ConnectionTicket& operator=(ConnectionTicket&&) = delete;
  ~ConnectionTicket() {
    if (table_ != nullptr) {
      table_->erase(id_);
    }
  }

  beast::tcp_stream& stream() { return *stream_; }
  // The entry, or null once the connection was evicted.
  Connection* entry() {
    auto it = table_->find(id_);
    return it == table_->end() ? nullptr : &it->second;
  }
  void setIdle(bool idle) {
    if (Connection* c = entry()) {
      c->idle = idle;
      c->idleSince = std::chrono::steady_clock::now();
    }
  }

 private:
  ConnectionTable* table_;
  uint64_t id_;
  std::unique_ptr<beast::tcp_stream> stream_;
};

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

// The answer to one request, shared between the session that waits for it and the respond
// function a handler may call from any thread. It holds no Asio object, so it may outlive the
// io_context.
struct PendingResponse {
  std::atomic<bool> claimed{false};
  std::optional<HttpResponse> response;  // touched on the server thread only
  asio::steady_timer* wake = nullptr;    // the waiting session's timer; null once it is gone
};

// Lets respond functions post to the server thread while it exists.
struct ServerGate {
  std::mutex mutex;
  asio::io_context* ioc = nullptr;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Server

struct HttpServer::Impl {
  enum class Admission { kNormal, kProbe, kRefuse };

  HttpServerSettings settings;
  Handler handler;
  ConnectionObserver observer;
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<ServerGate> gate = std::make_shared<ServerGate>();

  // Touched on the server thread only.
  ConnectionTable connections;
  uint64_t nextConnectionId = 0;

  std::atomic<uint16_t> port{0};
  bool stopped = false;

  // Declared after the state above: destroying the io_context destroys suspended sessions,
  // whose destructors update that state.
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;

  Impl(HttpServerSettings s, Handler h, ConnectionObserver o)
      : settings(std::move(s)),
        handler(std::move(h)),
        observer(std::move(o)),
        log(log::get(settings.name)) {
    gate->ioc = &ioc;
  }

  asio::awaitable<void> acceptLoop();
  Admission admit(const asio::ip::address& source);
  bool evictOldestIdle(const asio::ip::address* source);
  asio::awaitable<void> session(ConnectionTicket ticket, bool probe);
  asio::awaitable<bool> awaitRequest(ConnectionTicket& ticket, beast::flat_buffer& buffer,
                                     bool first, bool probe);
  asio::awaitable<void> refuseMalformed(beast::tcp_stream& stream,
                                        const boost::system::error_code& readError);
  asio::awaitable<Response> answer(Request& req, bool probe);
  Respond makeRespond(const std::shared_ptr<PendingResponse>& pending);

  void notify(ConnectionEvent event) const {
    if (observer) {
      observer(event);
    }
  }

  void logException(std::exception_ptr error) const {
    if (!error) {
      return;
    }
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log->error("{} server task failed: {}", settings.name, e.what());
    } catch (...) {
      log->error("{} server task failed", settings.name);
    }
  }
};

asio::awaitable<void> HttpServer::Impl::acceptLoop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kAwaitTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
        co_return;
      }
      // Typically out of file descriptors: back off instead of spinning.
      log->warn("{} server accept failed: {}", settings.name, ec.message());
      asio::steady_timer pause(ioc, 100ms);
      co_await pause.async_wait(kAwaitTuple);
      continue;
    }
    boost::system::error_code peerError;
    const tcp::endpoint peer = socket.remote_endpoint(peerError);
    const Admission admission = peerError ? Admission::kRefuse : admit(peer.address());
    if (admission == Admission::kRefuse) {
      notify(ConnectionEvent::kRefused);
      log->debug("{} server at its connection limits; refusing one", settings.name);
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    const uint64_t id = nextConnectionId++;
    auto stream = std::make_unique<beast::tcp_stream>(std::move(socket));
    connections.emplace(id, Connection{stream.get(), peer.address(), admission == Admission::kProbe,
                                       true, std::chrono::steady_clock::now()});
    asio::co_spawn(ioc,
                   session(ConnectionTicket(connections, id, std::move(stream)),
                           admission == Admission::kProbe),
                   [this](std::exception_ptr e) { logException(e); });
  }
}

// Whether a new connection from source gets a session, a probe-only session or nothing; makes
// room by closing an idle connection when a limit is reached.
HttpServer::Impl::Admission HttpServer::Impl::admit(const asio::ip::address& source) {
  std::size_t total = 0;
  std::size_t fromSource = 0;
  std::size_t probes = 0;
  std::size_t probesFromSource = 0;
  for (const auto& [id, c] : connections) {
    if (c.probe) {
      ++probes;
      probesFromSource += c.source == source ? 1 : 0;
      continue;
    }
    ++total;
    fromSource += c.source == source ? 1 : 0;
  }
  const bool sourceFull = fromSource >= settings.maxConnectionsPerSource;
  if (!sourceFull && total < settings.maxConnections) {
    return Admission::kNormal;
  }
  if (evictOldestIdle(sourceFull ? &source : nullptr)) {
    return Admission::kNormal;
  }
  if (!settings.probePaths.empty() && probes < settings.probeReserve &&
      probesFromSource < kProbeReservePerSource) {
    return Admission::kProbe;
  }
  return Admission::kRefuse;
}

// Closes the connection that has waited longest for a request (from source only, when given).
bool HttpServer::Impl::evictOldestIdle(const asio::ip::address* source) {
  auto oldest = connections.end();
  for (auto it = connections.begin(); it != connections.end(); ++it) {
    const Connection& c = it->second;
    if (c.probe || !c.idle || (source != nullptr && c.source != *source)) {
      continue;
    }
    if (oldest == connections.end() ||
        std::tie(c.idleSince, it->first) < std::tie(oldest->second.idleSince, oldest->first)) {
      oldest = it;
    }
  }
  if (oldest == connections.end()) {
    return false;
  }
  boost::system::error_code ignored;
  oldest->second.stream->socket().close(ignored);
  connections.erase(oldest);  // the session ends at its next resumption
  notify(ConnectionEvent::kEvicted);
  return true;
}

HttpServer::Respond HttpServer::Impl::makeRespond(const std::shared_ptr<PendingResponse>& pending) {
  return [pending, gate = gate](HttpResponse response) {
    if (pending->claimed.exchange(true)) {
      return;  // answered already
    }
    std::lock_guard lock(gate->mutex);
    if (gate->ioc == nullptr) {
      return;  // the server is gone
    }
    if (gate->ioc->get_executor().running_in_this_thread()) {
      pending->response = std::move(response);
      if (pending->wake != nullptr) {
        pending->wake->cancel();
      }
      return;
    }
    asio::post(*gate->ioc, [pending, response = std::move(response)]() mutable {
      pending->response = std::move(response);
      if (pending->wake != nullptr) {
        pending->wake->cancel();
      }
    });
  };
}

asio::awaitable<Response> HttpServer::Impl::answer(Request& req, bool probe) {
  const unsigned version = req.version();
  if (probe && (req.method() != http::verb::get ||
                std::find(settings.probePaths.begin(), settings.probePaths.end(),
                          std::string_view(req.target()).substr(0, req.target().find('?'))) ==
                    settings.probePaths.end())) {
    co_return toBeast(makeHttpResponse(503, "server busy: connection limit reached\n"), version);
  }
  auto pending = std::make_shared<PendingResponse>();
  asio::steady_timer wake(ioc);
  wake.expires_after(settings.requestTimeout);
  pending->wake = &wake;
  struct Detach {
    PendingResponse& pending;
    ~Detach() { pending.wake = nullptr; }
  } detach{*pending};

  HttpRequest request = fromBeast(req);
  try {
    handler(request, makeRespond(pending));
  } catch (const std::exception& e) {
    log->error("{} request {} {} failed: {}", settings.name, request.method, request.path,
               e.what());
    makeRespond(pending)(makeHttpResponse(500, "internal error\n"));
  }
  if (!pending->response) {
    co_await wake.async_wait(kAwaitTuple);
  }
  if (!pending->response) {
    log->warn("{} request {} {} not answered within {} s", settings.name, request.method,
              request.path, settings.requestTimeout.count());
    pending->claimed = true;
    co_return toBeast(makeHttpResponse(504, "request timed out\n"), version);
  }
  co_return toBeast(std::move(*pending->response), version);
}

// Waits until a request starts. A new connection's deadline for the whole request runs from
// accept; a keep-alive connection may idle idleTimeout, then has readTimeout from the first
// byte. Returns false when the connection is done.
asio::awaitable<bool> HttpServer::Impl::awaitRequest(ConnectionTicket& ticket,
                                                     beast::flat_buffer& buffer, bool first,
                                                     bool probe) {
  beast::tcp_stream& stream = ticket.stream();
  const std::chrono::seconds readTimeout = probe ? kProbeReadTimeout : settings.readTimeout;
  if (buffer.size() > 0) {  // a pipelined request already started
    stream.expires_after(readTimeout);
    co_return true;
  }
  if (first) {
    stream.expires_after(readTimeout);
  } else {
    ticket.setIdle(true);
    stream.expires_after(settings.idleTimeout);
  }
  auto [error, n] = co_await stream.async_read_some(buffer.prepare(4096), kAwaitTuple);
  if (error) {
    if (error == beast::error::timeout && first) {
      notify(ConnectionEvent::kReadTimeout);
    }
    co_return false;
  }
  buffer.commit(n);
  ticket.setIdle(false);
  if (!first) {
    stream.expires_after(readTimeout);
  }
  co_return true;
}

// Answers a request that could not be read (413, 431, 400) and closes; a connection closed by
// the peer, timed out or stopped gets nothing.
asio::awaitable<void> HttpServer::Impl::refuseMalformed(
    beast::tcp_stream& stream, const boost::system::error_code& readError) {
  std::optional<HttpResponse> refusal;
  if (readError == http::error::body_limit) {
    refusal = makeHttpResponse(
        413, fmt::format("request body too large (limit {} bytes)\n", settings.maxBodyBytes));
  } else if (readError == http::error::header_limit) {
    refusal = makeHttpResponse(431, "request header too large\n");
  } else if (readError.category() == http::make_error_code(http::error::bad_method).category() &&
             readError != http::error::end_of_stream && readError != http::error::partial_message) {
    refusal = makeHttpResponse(400, "malformed HTTP request\n");
  }
  if (!refusal) {
    if (readError == beast::error::timeout) {
      notify(ConnectionEvent::kReadTimeout);
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    co_return;
  }
  Response res = toBeast(std::move(*refusal), 11);
  res.keep_alive(false);
  res.prepare_payload();
  stream.expires_after(settings.readTimeout);
  auto [writeError, written] = co_await http::async_write(stream, res, kAwaitTuple);
  if (!writeError) {
    co_await lingeringClose(stream);
  }
}

asio::awaitable<void> HttpServer::Impl::session(ConnectionTicket ticket, bool probe) {
  beast::tcp_stream& stream = ticket.stream();
  beast::flat_buffer buffer;
  for (bool first = true;; first = false) {
    if (!co_await awaitRequest(ticket, buffer, first, probe)) {
      boost::system::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    http::request_parser<http::string_body> parser;
    parser.body_limit(settings.maxBodyBytes);
    parser.header_limit(kMaxHeaderBytes);
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
      co_await refuseMalformed(stream, readError);
      co_return;
    }

    Request& req = parser.get();
    const bool keepAlive = req.keep_alive() && !probe;
    // The handler may take its time (a database query): no read is pending meanwhile.
    stream.expires_never();
    Response res = co_await answer(req, probe);
    res.keep_alive(keepAlive);
    res.prepare_payload();
    stream.expires_after(settings.readTimeout);
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

HttpServer::HttpServer(HttpServerSettings settings, Handler handler, ConnectionObserver observer)
    : impl_(std::make_shared<Impl>(std::move(settings), std::move(handler), std::move(observer))) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::start() {
  Impl& s = *impl_;
  const std::string& listen = s.settings.listen;
  const std::string& name = s.settings.name;
  if (s.thread.joinable() || s.stopped) {
    throw std::runtime_error(name + " server on " + listen + " was already started");
  }
  auto address = splitHostPort(listen);
  if (!address) {
    throw std::runtime_error(s.settings.listenKey + ": cannot use '" + listen +
                             "': " + address.error());
  }
  boost::system::error_code ec;
  tcp::resolver resolver(s.ioc);
  auto endpoints = resolver.resolve(address->host, address->port,
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    throw std::runtime_error(s.settings.listenKey + ": cannot resolve '" + listen +
                             "': " + (ec ? ec.message() : std::string("no address")));
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  auto fail = [&](std::string_view step) {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    throw std::runtime_error(
        fmt::format("{} server cannot {} on {}: {}", name, step, listen, ec.message()));
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

  asio::co_spawn(s.ioc, s.acceptLoop(), [&s](std::exception_ptr e) { s.logException(e); });
  s.thread = std::thread([&s] {
    for (;;) {
      try {
        s.ioc.run();
        return;
      } catch (const std::exception& e) {
        s.log->error("{} server thread: {}", s.settings.name, e.what());
      }
    }
  });
  s.log->info("{} server listening on {} (port {})", name, listen, s.port.load());
}

void HttpServer::stop() {
  Impl& s = *impl_;
  if (s.stopped) {
    return;
  }
  s.stopped = true;
  {
    std::lock_guard lock(s.gate->mutex);
    s.gate->ioc = nullptr;
  }
  if (!s.thread.joinable()) {
    return;
  }
  asio::post(s.ioc, [&s] {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    for (auto& [id, connection] : s.connections) {
      connection.stream->socket().close(ignored);
    }
    // Sessions still suspended are destroyed with the io_context.
    s.ioc.stop();
  });
  s.thread.join();
}

uint16_t HttpServer::port() const {
  return impl_->port.load();
}

asio::io_context& HttpServer::context() {
  return impl_->ioc;
}

// ---------------------------------------------------------------------------------------------
// Client

namespace {

Request buildRequest(http::verb verb, const HostPort& address, const std::string& hostPort,
                     const std::string& path, const std::string& token, const std::string& body,
                     bool keepAlive) {
  Request req{verb, path.empty() ? "/" : path, 11};
  const bool bracketed = address.host.find(':') != std::string::npos;
  req.set(http::field::host, bracketed ? "[" + address.host + "]:" + address.port : hostPort);
  req.set(http::field::user_agent, "evosip");
  if (!token.empty()) {
    req.set(http::field::authorization, "Bearer " + token);
  }
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
  }
  req.body() = body;
  req.keep_alive(keepAlive);
  req.prepare_payload();
  return req;
}

HttpResponse toHttpResponse(Response& res) {
  HttpResponse out;
  out.status = res.result_int();
  out.body = std::move(res.body());
  for (const auto& field : res) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  return out;
}

// What every client exchange reports the same way: one answer, at most once, with the
// timeout and the peer named in the error line.
struct ExchangeEnd {
  ExchangeEnd(std::chrono::milliseconds t, HttpCallback d) : timeout(t), done(std::move(d)) {}
  std::chrono::milliseconds timeout;
  HttpCallback done;
  bool timedOut = false;
  bool finished = false;

  // The caller cancels its deadline timer.
  void report(const std::string& hostPort, tl::expected<HttpResponse, std::string> result) {
    if (finished) {
      return;
    }
    finished = true;
    if (!result && timedOut) {
      result = tl::unexpected(
          fmt::format("no response from {} within {} ms", hostPort, timeout.count()));
    } else if (!result) {
      result = tl::unexpected(hostPort + ": " + result.error());
    }
    done(std::move(result));
  }
};

// One exchange's state, touched only through its strand.
struct Exchange : ExchangeEnd {
  Exchange(asio::io_context& io, HostPort a, std::string hp, std::chrono::milliseconds t,
           HttpCallback d)
      : ExchangeEnd(t, std::move(d)),
        strand(asio::make_strand(io)),
        address(std::move(a)),
        hostPort(std::move(hp)),
        resolver(strand),
        stream(strand),
        deadline(strand) {}

  asio::strand<asio::io_context::executor_type> strand;
  HostPort address;
  std::string hostPort;
  Request req;
  tcp::resolver resolver;
  beast::tcp_stream stream;
  asio::steady_timer deadline;

  void finish(tl::expected<HttpResponse, std::string> result) {
    deadline.cancel();
    report(hostPort, std::move(result));
  }
};

asio::awaitable<void> runExchange(std::shared_ptr<Exchange> x) {
  auto [resolveError, endpoints] = co_await x->resolver.async_resolve(
      x->address.host, x->address.port, tcp::resolver::numeric_service, kAwaitTuple);
  if (resolveError) {
    x->finish(tl::unexpected("cannot resolve " + x->address.host + ": " + resolveError.message()));
    co_return;
  }
  auto [connectError, endpoint] = co_await x->stream.async_connect(endpoints, kAwaitTuple);
  if (connectError) {
    x->finish(tl::unexpected("cannot connect: " + connectError.message()));
    co_return;
  }
  auto [writeError, written] = co_await http::async_write(x->stream, x->req, kAwaitTuple);
  if (writeError) {
    x->finish(tl::unexpected("cannot send the request: " + writeError.message()));
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBytes);
  auto [readError, read] = co_await http::async_read(x->stream, buffer, parser, kAwaitTuple);
  if (readError) {
    x->finish(tl::unexpected("cannot read the response: " + readError.message()));
    co_return;
  }
  HttpResponse out = toHttpResponse(parser.get());
  boost::system::error_code ignored;
  x->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  x->finish(std::move(out));
}

std::string firstLine(std::string_view text) {
  text = trim(text);
  return std::string(text.substr(0, text.find('\n')));
}

}  // namespace

// ---- keep-alive connection pool ----

struct HttpConnectionPool::Impl {
  asio::io_context& io;
  std::string hostPort;
  tl::expected<HostPort, std::string> address;
  std::optional<tcp::endpoint> numeric;  // a numeric host needs no resolver (a thread hop)
  size_t maxIdle;
  struct Idle {
    std::unique_ptr<beast::tcp_stream> stream;
    std::chrono::steady_clock::time_point since;
  };
  std::vector<Idle> idle;  // most recently used last
  // Servers close idle keep-alive connections (evosip's control/api servers after 30 s): one
  // idle longer than this is closed rather than tried.
  static constexpr std::chrono::seconds kMaxIdle{15};
  uint64_t opened = 0;

  Impl(asio::io_context& i, std::string hp, size_t m)
      : io(i), hostPort(std::move(hp)), address(splitHostPort(hostPort)), maxIdle(m) {
    if (address) {
      boost::system::error_code ec;
      auto ip = asio::ip::make_address(address->host, ec);
      auto port = parseDecimal(address->port, 65535);
      if (!ec && port) {
        numeric = tcp::endpoint(ip, static_cast<uint16_t>(*port));
      }
    }
  }
};

namespace {

struct PooledExchange : ExchangeEnd {
  PooledExchange(asio::io_context& io, Request r, std::chrono::milliseconds t, HttpCallback d)
      : ExchangeEnd(t, std::move(d)), req(std::move(r)), deadline(io) {}
  Request req;
  asio::steady_timer deadline;
  std::unique_ptr<beast::tcp_stream> stream;

  void finish(const std::string& hostPort, tl::expected<HttpResponse, std::string> result) {
    deadline.cancel();
    report(hostPort, std::move(result));
  }
};

asio::awaitable<void> runPooledExchange(std::shared_ptr<HttpConnectionPool::Impl> pool,
                                        std::shared_ptr<PooledExchange> x) {
  for (int attempt = 0; attempt < 2 && !x->timedOut; ++attempt) {
    bool reused = false;
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(pool->idle, [now](const auto& i) {
      return now - i.since > HttpConnectionPool::Impl::kMaxIdle;
    });
    if (!pool->idle.empty()) {
      x->stream = std::move(pool->idle.back().stream);
      pool->idle.pop_back();
      reused = true;
    } else {
      x->stream = std::make_unique<beast::tcp_stream>(pool->io);
      boost::system::error_code connectError;
      if (pool->numeric) {
        std::tie(connectError) = co_await x->stream->async_connect(*pool->numeric, kAwaitTuple);
      } else {
        tcp::resolver resolver(pool->io);
        auto [resolveError, endpoints] = co_await resolver.async_resolve(
            pool->address->host, pool->address->port, tcp::resolver::numeric_service, kAwaitTuple);
        if (resolveError) {
          x->finish(pool->hostPort, tl::unexpected("cannot resolve " + pool->address->host + ": " +
                                                   resolveError.message()));
          co_return;
        }
        std::tie(connectError, std::ignore) =
            co_await x->stream->async_connect(endpoints, kAwaitTuple);
      }
      if (connectError) {
        x->finish(pool->hostPort, tl::unexpected("cannot connect: " + connectError.message()));
        co_return;
      }
      ++pool->opened;
    }
    auto [writeError, written] = co_await http::async_write(*x->stream, x->req, kAwaitTuple);
    if (writeError) {
      if (reused) {
        // The server closed the idle connection; the others idle as long are likely closed too.
        pool->idle.clear();
        continue;  // once more, on a new connection
      }
      x->finish(pool->hostPort, tl::unexpected("cannot send the request: " + writeError.message()));
      co_return;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBytes);
    auto [readError, read] = co_await http::async_read(*x->stream, buffer, parser, kAwaitTuple);
    if (readError) {
      if (reused && buffer.size() == 0 && !x->timedOut) {
        pool->idle.clear();  // as above
        continue;
      }
      x->finish(pool->hostPort, tl::unexpected("cannot read the response: " + readError.message()));
      co_return;
    }
    Response& res = parser.get();
    const bool keep = res.keep_alive() && !x->timedOut && pool->idle.size() < pool->maxIdle;
    HttpResponse out = toHttpResponse(res);
    if (keep) {
      pool->idle.push_back({std::move(x->stream), std::chrono::steady_clock::now()});
    }
    x->finish(pool->hostPort, std::move(out));
    co_return;
  }
  x->finish(pool->hostPort, tl::unexpected(std::string("connection closed by the server")));
}

}  // namespace

HttpConnectionPool::HttpConnectionPool(asio::io_context& io, std::string hostPort, size_t maxIdle)
    : impl_(std::make_shared<Impl>(io, std::move(hostPort), maxIdle)) {}

HttpConnectionPool::~HttpConnectionPool() = default;

size_t HttpConnectionPool::idle() const {
  return impl_->idle.size();
}

uint64_t HttpConnectionPool::connectionsOpened() const {
  return impl_->opened;
}

void HttpConnectionPool::request(const std::string& method, const std::string& path,
                                 const std::string& token, const std::string& body,
                                 std::chrono::milliseconds timeout, HttpCallback done) {
  auto& io = impl_->io;
  if (!impl_->address) {
    asio::post(io, [done = std::move(done),
                    error = "bad address '" + impl_->hostPort + "': " + impl_->address.error()] {
      done(tl::unexpected(error));
    });
    return;
  }
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    asio::post(io, [done = std::move(done), error = "unknown HTTP method '" + method + "'"] {
      done(tl::unexpected(error));
    });
    return;
  }
  auto x = std::make_shared<PooledExchange>(
      io, buildRequest(verb, *impl_->address, impl_->hostPort, path, token, body, true), timeout,
      std::move(done));
  x->deadline.expires_after(timeout);
  x->deadline.async_wait([x](const boost::system::error_code& ec) {
    if (ec || x->finished) {
      return;
    }
    x->timedOut = true;
    if (x->stream) {
      boost::system::error_code ignored;
      x->stream->socket().close(ignored);
    }
  });
  auto pool = impl_;
  asio::co_spawn(io, runPooledExchange(pool, x), [x, pool](std::exception_ptr e) {
    if (!e) {
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& error) {
      x->finish(pool->hostPort,
                tl::unexpected(std::string("HTTP request failed: ") + error.what()));
    }
  });
}

void asyncHttpRequest(asio::io_context& io, const std::string& hostPort, const std::string& method,
                      const std::string& path, const std::string& token, const std::string& body,
                      std::chrono::milliseconds timeout, HttpCallback done) {
  auto address = splitHostPort(hostPort);
  if (!address) {
    asio::post(
        io, [done = std::move(done), error = "bad address '" + hostPort + "': " + address.error()] {
          done(tl::unexpected(error));
        });
    return;
  }
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    asio::post(io, [done = std::move(done), error = "unknown HTTP method '" + method + "'"] {
      done(tl::unexpected(error));
    });
    return;
  }
  auto x = std::make_shared<Exchange>(io, *address, hostPort, timeout, std::move(done));
  x->req = buildRequest(verb, *address, hostPort, path, token, body, false);

  asio::dispatch(x->strand, [x] {
    x->deadline.expires_after(x->timeout);
    x->deadline.async_wait([x](const boost::system::error_code& ec) {
      if (ec || x->finished) {
        return;
      }
      x->timedOut = true;
      boost::system::error_code ignored;
      x->resolver.cancel();
      x->stream.socket().close(ignored);
    });
    asio::co_spawn(x->strand, runExchange(x), [x](std::exception_ptr e) {
      if (!e) {
        return;
      }
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& error) {
        x->finish(tl::unexpected(std::string("HTTP request failed: ") + error.what()));
      }
    });
  });
}

tl::expected<HttpResponse, std::string> httpRequest(
    const std::string& hostPort, const std::string& method, const std::string& path,
    const std::string& token, const std::string& body, std::chrono::milliseconds timeout) {
  tl::expected<HttpResponse, std::string> result =
      tl::unexpected(fmt::format("no response from {} within {} ms", hostPort, timeout.count()));
  try {
    asio::io_context ioc{1};
    asyncHttpRequest(
        ioc, hostPort, method, path, token, body, timeout,
        [&result](tl::expected<HttpResponse, std::string> r) { result = std::move(r); });
    ioc.run();
  } catch (const std::exception& e) {
    return tl::unexpected(std::string("HTTP request failed: ") + e.what());
  }
  return result;
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

std::string rpcRequestBody(const std::string& method, const json::value& params) {
  json::object request;
  request["jsonrpc"] = "2.0";
  request["method"] = method;
  if (!params.is_null()) {
    request["params"] = params;
  }
  request["id"] = 1;
  return json::serialize(request);
}

tl::expected<json::value, std::string> rpcReplyResult(const HttpResponse& response) {
  if (response.status != 200) {
    return tl::unexpected(fmt::format("HTTP {}: {}", response.status, firstLine(response.body)));
  }
  boost::system::error_code ec;
  json::value reply = json::parse(response.body, ec);
  if (ec || !reply.is_object()) {
    return tl::unexpected("invalid JSON-RPC reply: " + firstLine(response.body));
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
  return tl::unexpected("invalid JSON-RPC reply: " + firstLine(response.body));
}

tl::expected<json::value, std::string> callRpc(const std::string& hostPort,
                                               const std::string& token, const std::string& method,
                                               const json::value& params,
                                               std::chrono::milliseconds timeout) {
  auto response =
      httpRequest(hostPort, "POST", "/rpc", token, rpcRequestBody(method, params), timeout);
  if (!response) {
    return tl::unexpected(response.error());
  }
  return rpcReplyResult(*response);
}

}  // namespace evosip::control
