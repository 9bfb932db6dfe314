#include <evosip/edge/pending_table.hpp>

namespace evosip::edge {

bool PendingTable::upsert(uint64_t key, PendingRequest request) {
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    // A retransmission keeps the original deadline (the router had its chance since then) and
    // what the entry learnt from the router's answers.
    const PendingRequest& old = it->second;
    request.deadlineNs = old.deadlineNs;
    request.attempts = old.attempts;
    request.proceeding = old.proceeding;
    request.relayedProvisional = old.relayedProvisional;
    request.proceedingSinceNs = old.proceedingSinceNs;
    request.watchSinceNs = old.watchSinceNs;
    if (cost(request) > cost(old) && bytes_ - cost(old) + cost(request) > maxBytes_) {
      return true;  // a "retransmission" that grew: the copy already kept stays (byte bound)
    }
    bytes_ = bytes_ - cost(old) + cost(request);
    it->second = std::move(request);
    return true;
  }
  if (full()) {
    return false;
  }
  order_.push({request.deadlineNs, key});
  bytes_ += cost(request);
  entries_.emplace(key, std::move(request));
  return true;
}

bool PendingTable::erase(uint64_t key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    return false;
  }
  bytes_ -= cost(it->second);
  entries_.erase(it);
  return true;
}

PendingRequest* PendingTable::find(uint64_t key) {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

void PendingTable::rearm(uint64_t key, PendingRequest request) {
  order_.push({request.deadlineNs, key});
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    bytes_ -= cost(it->second);
  }
  bytes_ += cost(request);
  entries_[key] = std::move(request);
}

void PendingTable::reschedule(uint64_t key, int64_t deadlineNs) {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.deadlineNs == deadlineNs) {
    return;
  }
  it->second.deadlineNs = deadlineNs;
  order_.push({deadlineNs, key});
}

void CompletedInvites::add(uint64_t key, const transport::Endpoint& router, int64_t nowNs) {
  if (capacity_ == 0) {
    return;
  }
  while (routers_.size() >= capacity_ && !order_.empty()) {
    const auto [added, oldest] = order_.front();
    order_.pop_front();
    auto it = routers_.find(oldest);
    if (it != routers_.end() && it->second.addedNs == added) {
      routers_.erase(it);
    }
  }
  routers_[key] = Entry{router, nowNs};
  order_.emplace_back(nowNs, key);
}

std::optional<transport::Endpoint> CompletedInvites::take(uint64_t key) {
  auto it = routers_.find(key);
  if (it == routers_.end()) {
    return std::nullopt;
  }
  transport::Endpoint router = it->second.router;
  routers_.erase(it);
  return router;
}

void CompletedInvites::expire(int64_t nowNs) {
  while (!order_.empty() && order_.front().first + lifetimeNs_ <= nowNs) {
    const auto [added, key] = order_.front();
    order_.pop_front();
    auto it = routers_.find(key);
    if (it != routers_.end() && it->second.addedNs == added) {
      routers_.erase(it);
    }
  }
  // Slots of entries an ACK took: dropped once they outnumber the live entries.
  if (order_.size() > 2 * routers_.size() + 64) {
    std::deque<std::pair<int64_t, uint64_t>> live;
    for (const auto& slot : order_) {
      auto it = routers_.find(slot.second);
      if (it != routers_.end() && it->second.addedNs == slot.first) {
        live.push_back(slot);
      }
    }
    order_.swap(live);
  }
}

}  // namespace evosip::edge
