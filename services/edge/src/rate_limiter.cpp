#include <algorithm>
#include <string_view>

#include <evosip/base/hash.hpp>
#include <evosip/edge/rate_limiter.hpp>

namespace evosip::edge {

bool TokenBucket::take(int64_t nowNs, double& tokens, int64_t& lastNs) const {
  if (nowNs > lastNs) {
    tokens = std::min(burst_, tokens + rate_ * static_cast<double>(nowNs - lastNs) / 1e9);
    lastNs = nowNs;
  }
  if (tokens < 1.0) {
    return false;
  }
  tokens -= 1.0;
  return true;
}

RateLimiter::RateLimiter(double ratePerSecond, double burst, size_t slots)
    : rate_(ratePerSecond),
      burst_(burst > 0 ? burst : std::max(1.0, ratePerSecond)),
      bucket_(ratePerSecond, burst_),
      slots_(ratePerSecond > 0 ? std::max<size_t>(slots, 1) : 0) {}

bool RateLimiter::allow(const boost::asio::ip::address& source, int64_t nowNs) {
  if (!enabled()) {
    return true;
  }
  uint64_t h;
  if (source.is_v4()) {
    auto b = source.to_v4().to_bytes();
    h = hash64(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  } else {
    auto b = source.to_v6().to_bytes();
    h = hash64(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  }
  const uint64_t tag = h | 1;  // 0 marks an empty slot
  Slot& s = slots_[h % slots_.size()];
  if (s.tag != tag) {
    s.tag = tag;
    s.tokens = burst_;
    s.lastNs = nowNs;
  }
  return bucket_.take(nowNs, s.tokens, s.lastNs);
}

}  // namespace evosip::edge
