#pragma once
// A general HTTP/1.1 server with asynchronous handlers: the control server of every role and the
// `api` role's REST API are built on it. Keep-alive, bounded bodies (413 beyond), bounded headers
// (431), a per-request timeout and connection limits. It runs on its own thread with its own
// io_context; the handler is called on that thread and answers by calling respond, from any
// thread, once. A request not answered within the request timeout gets 504.
//
// Connections are admitted so that a flood of idle or slow connections cannot lock out the
// health probes:
// - a request must arrive whole within readTimeout (a new connection: counted from accept;
//   a keep-alive connection: from the request's first byte; it may idle idleTimeout before);
// - at most maxConnections connections, at most maxConnectionsPerSource from one IP address;
// - a connection over either limit takes the place of the oldest idle connection (one waiting
//   for a request, from the same address when that address is at its limit), which is closed;
// - when no connection is idle, up to probeReserve more connections are accepted that may only
//   GET one of probePaths (anything else gets 503), must send it within kProbeReadTimeout and
//   are closed after the answer; one IP address may hold kProbeReservePerSource of them.
//   Beyond that a connection is closed at once.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <evosip/control/http_message.hpp>

namespace evosip::control {

inline constexpr std::chrono::seconds kProbeReadTimeout{2};
inline constexpr std::size_t kProbeReservePerSource = 2;  // reserve connections one IP may hold

struct HttpServerSettings {
  std::string listen = "127.0.0.1:0";        // "host:port" or "[v6]:port"; port 0 picks one
  std::string name = "control";              // in log lines and errors: "<name> server"
  std::string listenKey = "control.listen";  // the configuration key errors name
  std::size_t maxBodyBytes = 1024 * 1024;
  std::size_t maxConnections = 256;
  std::chrono::seconds requestTimeout{30};  // the handler's answer; 504 beyond
  std::size_t maxConnectionsPerSource = 64;
  std::chrono::seconds readTimeout{10};   // receiving one request, headers and body
  std::chrono::seconds idleTimeout{30};   // a keep-alive connection waiting for its next request
  std::vector<std::string> probePaths{};  // served on reserve connections; none -> no reserve
  std::size_t probeReserve = 16;
};

// Why the server closed a connection on its own.
enum class ConnectionEvent {
  kRefused,      // over the limits with nothing to make room: closed at once
  kEvicted,      // idle, closed to make room for a new connection
  kReadTimeout,  // the request did not arrive whole within readTimeout
};

class HttpServer {
 public:
  // Answers one request; may be called on any thread, at most once. Calls after stop() are
  // ignored.
  using Respond = std::function<void(HttpResponse)>;
  using Handler = std::function<void(const HttpRequest&, Respond)>;
  using ConnectionObserver = std::function<void(ConnectionEvent)>;

  // observer (optional) runs on the server thread for every connection the server closes on its
  // own (for metrics).
  HttpServer(HttpServerSettings settings, Handler handler, ConnectionObserver observer = nullptr);
  ~HttpServer();  // stops the server
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the server thread. Throws std::runtime_error naming the address when it
  // cannot be parsed, resolved or bound.
  void start();
  // Closes the listener and every connection and joins the thread. Idempotent.
  void stop();
  // The bound port (useful with port 0); 0 before start().
  uint16_t port() const;
  // The io_context the server thread runs.
  boost::asio::io_context& context();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace evosip::control
