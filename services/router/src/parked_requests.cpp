// The waiting room of requests whose next hop's name is being looked up.
#include <algorithm>

#include <evosip/router/parked_requests.hpp>

namespace evosip::router {

bool ParkedRequests::park(uint64_t server, transport::DnsQuery query, TimePoint deadline,
                          Resume resume) {
  if (byServer_.size() >= capacity_ || byServer_.count(server) != 0) {
    return false;
  }
  byServer_.emplace(server, Parked{server, std::move(query), deadline, std::move(resume)});
  earliest_ = std::min(earliest_, deadline);
  return true;
}

std::vector<ParkedRequests::Parked> ParkedRequests::take(const transport::DnsQuery& query) {
  std::vector<Parked> out;
  for (auto it = byServer_.begin(); it != byServer_.end();) {
    if (it->second.query == query) {
      out.push_back(std::move(it->second));
      it = byServer_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<ParkedRequests::Parked> ParkedRequests::takeExpired(TimePoint now) {
  std::vector<Parked> out;
  if (now < earliest_) {
    return out;
  }
  earliest_ = TimePoint::max();
  for (auto it = byServer_.begin(); it != byServer_.end();) {
    if (it->second.deadline <= now) {
      out.push_back(std::move(it->second));
      it = byServer_.erase(it);
    } else {
      earliest_ = std::min(earliest_, it->second.deadline);
      ++it;
    }
  }
  return out;
}

size_t ParkedRequests::dropIf(const std::function<bool(uint64_t)>& gone) {
  return std::erase_if(byServer_, [&gone](const auto& kv) { return gone(kv.first); });
}

}  // namespace evosip::router
