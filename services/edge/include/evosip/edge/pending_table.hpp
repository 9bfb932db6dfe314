#pragma once
// What the edge remembers to fail over: for each request it forwarded to a router and that has
// not seen a response yet, the router, the deadline and the bytes to resend. Keyed by the branch
// of the edge's own Via; bounded in entries and in bytes (a flood of large requests a router
// leaves unanswered cannot grow it further: requests beyond the bounds are still forwarded, only
// not failed over); owned by one worker. The timeout is the same for every entry, so a FIFO is
// ordered by deadline.

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

#include <evosip/transport/sip_transport.hpp>

namespace evosip::edge {

struct PendingRequest {
  std::string bytes;         // the forwarded message, ready to resend
  std::string callId;        // rendezvous key for the next router
  size_t router = SIZE_MAX;  // index in the router set of `generation`
  uint64_t generation = 0;   // router set generation the index refers to
  int64_t sentNs = 0;
  int64_t deadlineNs = 0;
  transport::Destination client;  // where a 503 goes when no router is left
  uint32_t attempts = 1;
  bool v6 = false;  // the address family its Via (our address, egress port) was written for
};

class PendingTable {
 public:
  explicit PendingTable(size_t capacity, size_t maxBytes = SIZE_MAX)
      : capacity_(capacity), maxBytes_(maxBytes) {}

  size_t size() const { return entries_.size(); }
  size_t bytes() const { return bytes_; }
  bool full() const { return entries_.size() >= capacity_ || bytes_ >= maxBytes_; }
  // Inserts or refreshes (a client retransmission) the entry for key. Returns false when full.
  bool upsert(uint64_t key, PendingRequest request);
  // Removes the entry (a response arrived). Returns true when there was one.
  bool erase(uint64_t key);
  PendingRequest* find(uint64_t key);

  // Pops the entries whose deadline passed: fn(key, PendingRequest&&) for each.
  template <typename Fn>
  void expire(int64_t nowNs, Fn&& fn);

  // Puts an entry back with a new deadline (after a resend).
  void rearm(uint64_t key, PendingRequest request);

 private:
  struct Deadline {
    uint64_t key;
    int64_t deadlineNs;
  };
  static size_t cost(const PendingRequest& r) { return r.bytes.size() + r.callId.size(); }

  size_t capacity_;
  size_t maxBytes_;
  size_t bytes_ = 0;
  std::unordered_map<uint64_t, PendingRequest> entries_;
  std::deque<Deadline> order_;
};

template <typename Fn>
void PendingTable::expire(int64_t nowNs, Fn&& fn) {
  while (!order_.empty() && order_.front().deadlineNs <= nowNs) {
    Deadline d = order_.front();
    order_.pop_front();
    auto it = entries_.find(d.key);
    // Stale FIFO slot: the entry was answered, or refreshed with a later deadline.
    if (it == entries_.end() || it->second.deadlineNs != d.deadlineNs) {
      continue;
    }
    PendingRequest req = std::move(it->second);
    bytes_ -= cost(req);
    entries_.erase(it);
    fn(d.key, std::move(req));
  }
}

}  // namespace evosip::edge
