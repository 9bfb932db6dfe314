#pragma once
// Tells routers to drop cached credentials after a subscriber changes (DESIGN.md section 2,
// "Profile change"): JSON-RPC auth.invalidate {"domain": ..., "user": ...} over HTTP to the
// control address of every router in the set. Fire-and-forget: each call is bounded by a timeout
// and a failure is logged and counted, never retried (the router's cache TTL bounds staleness).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <tl/expected.hpp>

#include <evosip/metrics/metrics.hpp>

namespace evosip::api {

struct RouterStatus {
  std::string address;  // "127.0.0.1:8070"
  uint64_t sent = 0;    // auth.invalidate calls started
  uint64_t failed = 0;  // calls that timed out, were refused or answered with an error
};

class Invalidator {
 public:
  // Calls run on io. token is sent as "Authorization: Bearer" when not empty.
  Invalidator(boost::asio::io_context& io, std::string token, std::chrono::milliseconds timeout,
              metrics::Registry& metrics);

  // "host:port" or "[v6]:port" with a port from 1 to 65535; the error says what is wrong.
  static tl::expected<void, std::string> checkAddress(const std::string& address);

  // Replaces the router set (addresses already checked). Counters of routers that stay are kept.
  void setRouters(const std::vector<std::string>& addresses);
  std::vector<RouterStatus> routers() const;

  // Sends auth.invalidate for domain/user to every router now in the set. Thread-safe.
  void invalidate(const std::string& domain, const std::string& user);

 private:
  struct Target {
    std::string address;
    std::atomic<uint64_t> sent{0};
    std::atomic<uint64_t> failed{0};
  };

  boost::asio::io_context& io_;
  std::string token_;
  std::chrono::milliseconds timeout_;
  prometheus::Counter& sent_;
  prometheus::Counter& failed_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Target>> targets_;
};

}  // namespace evosip::api
