#pragma once
// The control HTTP server every role runs on control.listen (DESIGN.md section 4):
//   POST /rpc      JSON-RPC 2.0 through an RpcRegistry        (bearer token when one is set)
//   GET  /metrics  Prometheus text format 0.0.4                (bearer token when one is set)
//   GET  /healthz  200 "ok" while the process serves
//   GET  /readyz   200 "ready" / 503 "not ready" from the ready callback
// HTTP/1.1 with keep-alive, bodies up to 1 MiB (413 beyond), a request must arrive within 10 s,
// 30 s for the answer, at most 256 connections and 64 from one IP address; /healthz and /readyz
// are answered even when those limits are reached (HttpServer's idle eviction and probe
// reserve). It runs on its own thread with its own io_context; RPC handlers, collect hooks and
// the ready callback run on that thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <evosip/control/rpc.hpp>
#include <evosip/metrics/metrics.hpp>

namespace evosip::control {

struct ServerSettings {
  std::string listen = "127.0.0.1:8060";  // "host:port" or "[v6]:port"; port 0 picks one
  std::string token;                      // "" -> no authentication (loopback only)
};

// Limits of the server, fixed for every role.
inline constexpr std::size_t kMaxBodyBytes = 1024 * 1024;
inline constexpr std::size_t kMaxConnections = 256;
inline constexpr int kRequestTimeoutSeconds = 30;
inline constexpr std::size_t kMaxConnectionsPerSource = 64;
inline constexpr int kReadTimeoutSeconds = 10;

class ControlServer {
 public:
  ControlServer(ServerSettings settings, RpcRegistry& rpc, metrics::Registry& metrics,
                std::function<bool()> ready);
  ~ControlServer();  // stops the server
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds and starts the server thread. Throws std::runtime_error naming the address when it
  // cannot be parsed, resolved or bound.
  void start();
  // Closes the listener and every connection and joins the thread. Idempotent.
  void stop();
  // The bound port (useful with port 0); 0 before start().
  uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace evosip::control
