#pragma once
// What the edge remembers to fail over: for each request it forwarded to a router and that has
// not seen a final response yet, the router, the deadline and the bytes to resend. Keyed by the
// branch of the edge's own Via; bounded in entries and in bytes (a flood of large requests a
// router leaves unanswered cannot grow it further: requests beyond the bounds are still
// forwarded, only not failed over); owned by one worker. Deadlines differ (a request waits
// router_timeout_ms for its first answer, an INVITE in setup is checked every setup_check_ms), so
// they are kept in a min-heap; a slot whose entry was answered or rescheduled is skipped when it
// comes up.

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <evosip/transport/sip_transport.hpp>

namespace evosip::edge {

struct PendingRequest {
  std::string bytes;                   // the forwarded message, ready to resend
  std::string callId;                  // rendezvous key for the next router
  size_t router = SIZE_MAX;            // index in the router set of `generation`
  transport::Endpoint routerEndpoint;  // the same router, whatever the set's generation
  uint64_t generation = 0;             // router set generation the index refers to
  int64_t sentNs = 0;
  int64_t deadlineNs = 0;
  transport::Destination client;  // where the edge's own final answer goes
  uint32_t attempts = 1;
  bool v6 = false;      // the address family its Via (our address, egress port) was written for
  bool invite = false;  // an INVITE: kept after a provisional response, until the final one
  // INVITE in setup: the router sent a provisional response. From then on the entry has no
  // timeout of its own; it watches the router (see EdgeProxy::checkSetup).
  bool proceeding = false;
  bool relayedProvisional = false;  // a provisional beyond 100 reached the caller: no failover
  int64_t proceedingSinceNs = 0;    // when the first provisional arrived (age limit)
  int64_t watchSinceNs = 0;         // the router must have answered something after this
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
  // Moves the deadline of an entry that stays (an INVITE in setup).
  void reschedule(uint64_t key, int64_t deadlineNs);

 private:
  struct Deadline {
    int64_t deadlineNs;
    uint64_t key;
    bool operator>(const Deadline& o) const { return deadlineNs > o.deadlineNs; }
  };
  static size_t cost(const PendingRequest& r) { return r.bytes.size() + r.callId.size(); }

  size_t capacity_;
  size_t maxBytes_;
  size_t bytes_ = 0;
  std::unordered_map<uint64_t, PendingRequest> entries_;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> order_;
};

// The INVITEs of one worker that got a non-2xx final response, kept until their ACK (RFC 3261
// 17.2.1: the router's server transaction resends the final until the ACK matches its INVITE's
// branch and sent-by, up to Timer H): the router the ACK must go to. An ACK over another flow
// than its INVITE reaches another worker, which passes it on until the one that keeps the entry
// sends it from the INVITE's egress socket. Keyed like PendingTable; an entry goes when its ACK
// takes it or after `lifetime`; at `capacity` the oldest goes first.
class CompletedInvites {
 public:
  CompletedInvites(size_t capacity, int64_t lifetimeNs)
      : capacity_(capacity), lifetimeNs_(lifetimeNs) {}

  size_t size() const { return routers_.size(); }
  void add(uint64_t key, const transport::Endpoint& router, int64_t nowNs);
  // The INVITE's router, and the entry removed (its ACK came).
  std::optional<transport::Endpoint> take(uint64_t key);
  void expire(int64_t nowNs);

 private:
  struct Entry {
    transport::Endpoint router;
    int64_t addedNs = 0;
  };
  size_t capacity_;
  int64_t lifetimeNs_;
  std::unordered_map<uint64_t, Entry> routers_;
  std::deque<std::pair<int64_t, uint64_t>> order_;  // (added, key), oldest first
};

template <typename Fn>
void PendingTable::expire(int64_t nowNs, Fn&& fn) {
  while (!order_.empty() && order_.top().deadlineNs <= nowNs) {
    const Deadline d = order_.top();
    order_.pop();
    auto it = entries_.find(d.key);
    // Stale slot: the entry was answered, or rescheduled with another deadline.
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
