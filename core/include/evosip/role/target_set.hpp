#pragma once
// A live set of SIP peers (the routers of an edge, the apps or media relays of a router) and the
// rendezvous (highest random weight) choice of one of them per Call-ID. A set is immutable once
// built except for each target's up/down state and counters (atomics shared by all workers); a new
// set replaces the old one whole.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/base/result.hpp>
#include <evosip/transport/address.hpp>

namespace evosip::role {

struct Target {
  std::string uri;  // as configured, e.g. "sip:10.0.0.5:5060"; an address of `name` as a URI
  transport::Endpoint endpoint;
  uint64_t nameHash = 0;
  // The entry of the set a DNS name gave this address for ("sip:router.example.net"); empty for
  // a numeric entry.
  std::string name;
  // RFC 3263 order from SRV records: a lower rank is chosen first (the rank of the record's
  // priority among its name's priorities, so a name's best records rank with numeric entries),
  // a higher weight more often among targets of one rank.
  uint16_t rank = 0;
  uint16_t weight = 0;
  // Steady-clock nanoseconds until which the target is considered down (0 = up).
  std::atomic<int64_t> downUntilNs{0};
  // Steady-clock nanoseconds until which the target is held out of new work because it refused
  // new work while draining (0 = takes new work). It is alive: the requests of its existing
  // dialogs still go to it.
  std::atomic<int64_t> drainingUntilNs{0};
  // Draining for as long as this set lasts (dispatcher.set's "draining": the peer is
  // terminating and finishes what it has in progress). Written before the set is published.
  bool drainingBySet = false;
  // Steady-clock nanoseconds of the last response from this peer: a peer that answers other
  // requests is alive, and one request it leaves unanswered does not take it out of the set.
  std::atomic<int64_t> lastResponseNs{0};
  std::atomic<uint64_t> forwarded{0};
  std::atomic<uint64_t> timeouts{0};
  std::atomic<uint64_t> responses{0};

  bool upAt(int64_t nowNs) const { return downUntilNs.load(std::memory_order_relaxed) <= nowNs; }
  bool drainingAt(int64_t nowNs) const {
    return drainingBySet || drainingUntilNs.load(std::memory_order_relaxed) > nowNs;
  }

  // Liveness, the same rule for every tier (edge -> router, router -> app, router -> relay):
  // a peer that answered anything sent after a request it left unanswered is alive and chose
  // not to answer that one; only a peer silent to everything is held down for a while, and one
  // that refuses new work (drain) is chosen only when every other one refuses too.
  void noteResponse(int64_t nowNs) {
    lastResponseNs.store(nowNs, std::memory_order_relaxed);
    responses.fetch_add(1, std::memory_order_relaxed);
  }
  bool answeredSince(int64_t sentNs) const {
    return lastResponseNs.load(std::memory_order_relaxed) > sentNs;
  }
  // Out of selection until nowNs + forNs; never shortens a longer hold-down. True when this
  // extended it (worth a log line).
  bool holdDown(int64_t nowNs, int64_t forNs) { return extend(downUntilNs, nowNs + forNs); }
  // Out of new work until nowNs + forNs unless every other target drains too.
  bool markDraining(int64_t nowNs, int64_t forNs) { return extend(drainingUntilNs, nowNs + forNs); }

 private:
  static bool extend(std::atomic<int64_t>& until, int64_t to) {
    if (until.load(std::memory_order_relaxed) >= to) {
      return false;
    }
    until.store(to, std::memory_order_relaxed);
    return true;
  }
};

// A peer that refuses new work because it drains answers 503 with this header (any value). The
// tier in front sends the request to the next peer at once and holds the refusing one out of new
// work (Target::drainingUntilNs); the header never leaves the platform.
inline constexpr std::string_view kDrainingHeader = "X-Evosip-Draining";

// One address a set is built from: a numeric entry, or an address a name resolved to.
struct TargetAddress {
  std::string uri;
  transport::Endpoint endpoint;
  std::string name;
  uint16_t rank = 0;
  uint16_t weight = 0;
  bool draining = false;
};

class TargetSet {
 public:
  // Parses "sip:HOST:PORT" URIs (numeric host; port defaults to 5060). Errors name the target.
  static Result<std::shared_ptr<TargetSet>> build(const std::vector<std::string>& uris);
  // The same for plain UDP addresses, as Kamailio's rtpengine_sock writes them: "udp:HOST:PORT",
  // "HOST:PORT" or "[V6]:PORT" (media relays' ng control addresses).
  static Result<std::shared_ptr<TargetSet>> buildAddresses(const std::vector<std::string>& addrs,
                                                           uint16_t defaultPort);

  // A set of resolved addresses; an address listed again (two names for one peer) is kept once.
  static std::shared_ptr<TargetSet> fromAddresses(const std::vector<TargetAddress>& addresses);

  size_t size() const { return targets_.size(); }
  Target& at(size_t i) const { return *targets_[i]; }

  // The target for a key: of the lowest rank, the highest-weight one that is up at nowNs
  // (rendezvous weight, scaled by the SRV weights when they differ), skipping `exclude`
  // (SIZE_MAX = none) and, with `v6` given, the targets of the other address family. A draining
  // target is chosen only when every other candidate drains too (it may have stopped draining
  // since). SIZE_MAX when no such target is up.
  size_t pick(std::string_view key, int64_t nowNs, size_t exclude = SIZE_MAX,
              std::optional<bool> v6 = std::nullopt) const;
  // Index of the target at this endpoint, SIZE_MAX if none.
  size_t find(const transport::Endpoint& ep) const;
  size_t findUri(std::string_view uri) const;
  // Marks these targets (given as in build, or the name they came from) drainingBySet; an error
  // names one not in the set.
  // Call before the set is published.
  Result<void> markDrainingBySet(const std::vector<std::string>& uris);
  // Copies up/down state and counters of same-URI targets from an older set (dispatcher.set
  // keeps what it knew about targets that stay).
  void inheritFrom(const TargetSet& old);

 private:
  template <typename Parse>
  static Result<std::shared_ptr<TargetSet>> buildWith(const std::vector<std::string>& texts,
                                                      Parse parse);

  uint64_t score(size_t i, uint64_t keyHash) const;

  std::vector<std::unique_ptr<Target>> targets_;
  bool weighted_ = false;  // SRV weights differ: score() scales the rendezvous weights
};

}  // namespace evosip::role
