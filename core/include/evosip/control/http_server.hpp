#pragma once
// A general HTTP/1.1 server with asynchronous handlers: the control server of every role and the
// `api` role's REST API are built on it. Keep-alive, bounded bodies (413 beyond), bounded headers
// (431), a per-request timeout and a connection limit. It runs on its own thread with its own
// io_context; the handler is called on that thread and answers by calling respond, from any
// thread, once. A request not answered within the request timeout gets 504.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include <evosip/control/http_message.hpp>

namespace evosip::control {

struct HttpServerSettings {
  std::string listen = "127.0.0.1:0";        // "host:port" or "[v6]:port"; port 0 picks one
  std::string name = "control";              // in log lines and errors: "<name> server"
  std::string listenKey = "control.listen";  // the configuration key errors name
  std::size_t maxBodyBytes = 1024 * 1024;
  std::size_t maxConnections = 256;
  std::chrono::seconds requestTimeout{30};
};

class HttpServer {
 public:
  // Answers one request; may be called on any thread, at most once. Calls after stop() are
  // ignored.
  using Respond = std::function<void(HttpResponse)>;
  using Handler = std::function<void(const HttpRequest&, Respond)>;

  // onRefused (optional) runs on the server thread for every connection closed at once because
  // the limit was reached.
  HttpServer(HttpServerSettings settings, Handler handler,
             std::function<void()> onRefused = nullptr);
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
