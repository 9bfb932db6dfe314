#pragma once
// Brings every instance's peer sets to what the controller computed: dispatcher.set to each
// instance whose set differs from what it last acknowledged (at once for a new instance, again
// after a failure with back-off), and dispatcher.list every check period to find and repair
// drift (an instance that restarted, or that someone else changed). Sends only while active
// (the leader). Runs on one io_context's thread.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <prometheus/counter.h>

#include <evosip/controller/peer_sets.hpp>

namespace evosip::controller {

struct PushSettings {
  std::string token;  // bearer token of the instances' control servers
  std::chrono::milliseconds timeout{2000};
  std::chrono::milliseconds check{10000};  // dispatcher.list period per instance
  std::chrono::milliseconds backoffMin{100};
  std::chrono::milliseconds backoffMax{5000};
};

struct PushCounters {
  prometheus::Counter* pushes = nullptr;
  prometheus::Counter* errors = nullptr;
  prometheus::Counter* drift = nullptr;
};

// Does the dispatcher.list result hold the set as pushed? Target names must match; a target
// pushed as draining must not be listed "up".
bool listMatches(const boost::json::value& listResult, const PeerSet& want);

class Pusher {
 public:
  using Clock = std::chrono::steady_clock;
  Pusher(boost::asio::io_context& io, PushSettings settings, PushCounters counters);

  // The sets every instance must hold from now on; instances not in it are forgotten.
  void update(const std::vector<Assignment>& desired);
  // Inactive: nothing is sent. Becoming active pushes every set again.
  void setActive(bool active);
  // Sends what is due: pushes of changed sets, retries, drift checks.
  void tick();

  size_t instances() const;
  size_t pending() const;  // sets not acknowledged yet
  boost::json::array status() const;

 private:
  struct Entry {
    std::string control;
    PeerSet want;
    std::optional<PeerSet> acked;
    bool inFlight = false;
    int failures = 0;
    Clock::time_point nextTry{};
    Clock::time_point nextCheck{};
    std::string lastError;
  };
  using Key = std::pair<std::string, std::string>;  // control address, set name

  void push(const Key& key, Entry& e);
  void check(const Key& key, Entry& e);
  void failed(const Key& key, const PeerSet& sent, const std::string& why);
  Entry* find(const Key& key);

  boost::asio::io_context& io_;
  PushSettings settings_;
  PushCounters counters_;
  std::map<Key, Entry> entries_;
  bool active_ = false;
};

}  // namespace evosip::controller
