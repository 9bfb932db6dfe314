#pragma once
// When a relay must fence itself (media.state.fence): stop relaying and answering for the
// addresses it serves before any peer may take them over.
//
// A peer takes an address over only once its heartbeat key has expired in the store, and the key
// expires heartbeat_ttl after the store received the last write, which is after that write was
// sent. So an address whose last written heartbeat was sent at t is safe from a takeover until
// t + heartbeat_ttl, and the relay fences at t + heartbeat_ttl - margin: strictly before. Only a
// write the store confirmed counts (a write in flight may never arrive), and it counts from when
// it was sent, not from when its confirmation came back (it may have sat in a queue).
//
// One relay serves several addresses (its own and those of dead peers it took over); their
// heartbeats are written together, and the relay fences as soon as one of them is stale. An
// address the store shows held by another relay is lost: it leaves the set (its calls are
// dropped), and the fence lifts once every address left has a fresh heartbeat again.
//
// Plain state, no clock and no thread: the state thread of SessionState drives it.

#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace evosip::media {

class HeartbeatFence {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  HeartbeatFence(std::chrono::milliseconds heartbeatTtl, std::chrono::milliseconds margin)
      : ttl_(heartbeatTtl), margin_(margin) {}

  // The store confirmed a heartbeat of `instance`'s address written by a request sent at `sent`
  // (a claim, a takeover lock or a renewal): the address is served from now on.
  void written(const std::string& instance, TimePoint sent);
  // The address is not served here any more (held by another relay, or given back).
  void drop(const std::string& instance);

  // The time the fence must be up by: the oldest last-written heartbeat + ttl - margin; none
  // while no address is served.
  std::optional<TimePoint> deadline() const;
  // Whether the relay must be fenced at `now`.
  bool fencedAt(TimePoint now) const;
  bool serves(const std::string& instance) const { return written_.count(instance) != 0; }

 private:
  std::chrono::milliseconds ttl_, margin_;
  std::map<std::string, TimePoint> written_;  // the send time of the last confirmed write
};

}  // namespace evosip::media
