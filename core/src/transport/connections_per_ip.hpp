#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include <boost/asio/ip/address.hpp>

namespace evosip::transport {

// Open TCP connections per source address, over all workers. Touched at accept and close only,
// never per message: a mutex is fine here.
class ConnectionsPerIp {
 public:
  // Counts one more connection of ip unless it already has `cap` (0 = no cap).
  bool tryAdd(const boost::asio::ip::address& ip, size_t cap) {
    std::lock_guard lock(mutex_);
    uint32_t& n = counts_[ip];
    if (cap != 0 && n >= cap) {
      if (n == 0) {
        counts_.erase(ip);
      }
      return false;
    }
    ++n;
    return true;
  }
  void remove(const boost::asio::ip::address& ip) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(ip);
    if (it != counts_.end() && --it->second == 0) {
      counts_.erase(it);
    }
  }

 private:
  std::mutex mutex_;
  std::unordered_map<boost::asio::ip::address, uint32_t> counts_;
};

}  // namespace evosip::transport
