#pragma once
// Flood protection: a token bucket per source IP. Memory is bounded: buckets live in a fixed
// table indexed by a hash of the address; an address that lands on a slot held by another one
// takes the slot over with a full bucket. Owned by one worker (no locks).

#include <cstdint>
#include <vector>

#include <boost/asio/ip/address.hpp>

namespace evosip::edge {

class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(double ratePerSecond, double burst) : rate_(ratePerSecond), burst_(burst) {}
  // Takes one token at time nowNs (steady clock); false when the bucket is empty.
  bool take(int64_t nowNs, double& tokens, int64_t& lastNs) const;

 private:
  double rate_ = 0;
  double burst_ = 0;
};

class RateLimiter {
 public:
  // ratePerSecond == 0 -> disabled (allow() is always true).
  RateLimiter(double ratePerSecond, double burst, size_t slots = 16384);
  bool enabled() const { return rate_ > 0; }
  bool allow(const boost::asio::ip::address& source, int64_t nowNs);

 private:
  struct Slot {
    uint64_t tag = 0;
    int64_t lastNs = 0;
    double tokens = 0;
  };
  double rate_;
  double burst_;
  TokenBucket bucket_;
  std::vector<Slot> slots_;
};

}  // namespace evosip::edge
