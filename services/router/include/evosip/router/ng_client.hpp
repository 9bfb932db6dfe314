#pragma once
// The router's side of rtpengine's ng control protocol (what Kamailio's rtpengine module does):
// one UDP socket per worker, a cookie per command, retransmission of an unanswered command
// after `timeout` up to `retries` times, then an Errc::kTimeout error. Works with `evosip media`
// and with rtpengine itself.
//
// Threading: one NgClient per worker, used from that worker's thread only. Callbacks run on it.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <evosip/base/result.hpp>
#include <evosip/bencode/bencode.hpp>
#include <evosip/transport/address.hpp>

namespace evosip::router {

class NgClient {
 public:
  struct Settings {
    std::chrono::milliseconds timeout{1000};
    int retries = 2;  // retransmissions after the first send
  };
  struct Stats {
    uint64_t sent = 0, retransmitted = 0, timeouts = 0, errors = 0;
  };
  // The reply dictionary (result ok/pong), or an error: kTimeout, kUnavailable (socket),
  // kInvalid ("result":"error"; the message is the relay's error-reason), kParse.
  using Callback = std::function<void(Result<bencode::Value>)>;

  NgClient(boost::asio::io_context& io, Settings settings);
  ~NgClient();
  NgClient(const NgClient&) = delete;
  NgClient& operator=(const NgClient&) = delete;

  // Sends `command` (a dictionary with "command") to the relay's ng address.
  void request(const transport::Endpoint& relay, const bencode::Value& command, Callback done);

  size_t inFlight() const { return pending_.size(); }
  const Stats& stats() const { return stats_; }

 private:
  struct Pending {
    boost::asio::ip::udp::endpoint to;
    std::string datagram;
    int left = 0;
    Callback done;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };

  struct Socket {
    std::unique_ptr<boost::asio::ip::udp::socket> socket;
    std::array<char, 65536> buffer{};
    boost::asio::ip::udp::endpoint from;
  };

  Socket* socketFor(const boost::asio::ip::udp::endpoint& to);
  void send(Pending& p);
  void arm(const std::string& cookie);
  void receive(Socket& s);
  void finish(const std::string& cookie, Result<bencode::Value> r);

  boost::asio::io_context& io_;
  Settings settings_;
  Socket v4_, v6_;  // opened on first use
  std::unordered_map<std::string, Pending> pending_;
  std::string prefix_;  // random per client, so two routers' cookies never collide
  uint64_t next_ = 0;
  Stats stats_;
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

}  // namespace evosip::router
