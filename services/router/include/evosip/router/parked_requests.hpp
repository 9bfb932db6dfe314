#pragma once
// Requests of one worker waiting for the DNS answer of their next hop's name (RFC 3263): at most
// `capacity` at once, each until its deadline. The worker owns it; nothing here is thread-safe.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include <evosip/runtime/clock.hpp>
#include <evosip/transport/resolver.hpp>

namespace evosip::router {

class ParkedRequests {
 public:
  using TimePoint = runtime::Clock::time_point;
  using Resume = std::function<void()>;

  struct Parked {
    uint64_t server = 0;  // the server transaction
    transport::DnsQuery query;
    TimePoint deadline{};
    Resume resume;  // goes on with the request once the name is answered
  };

  explicit ParkedRequests(size_t capacity) : capacity_(capacity) {}

  // False when the request cannot wait: `capacity` requests wait already, or this one does.
  bool park(uint64_t server, transport::DnsQuery query, TimePoint deadline, Resume resume);
  // The requests waiting for `query`, taken out.
  std::vector<Parked> take(const transport::DnsQuery& query);
  // The requests whose deadline passed, taken out (none before the earliest deadline).
  std::vector<Parked> takeExpired(TimePoint now);
  // The requests for which `gone(server)` is true (their transaction ended meanwhile), taken out.
  size_t dropIf(const std::function<bool(uint64_t)>& gone);

  size_t size() const { return byServer_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  size_t capacity_;
  std::map<uint64_t, Parked> byServer_;
  TimePoint earliest_ = TimePoint::max();
};

}  // namespace evosip::router
