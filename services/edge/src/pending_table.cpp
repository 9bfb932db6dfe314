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

}  // namespace evosip::edge
