#pragma once
// Bans source addresses that keep failing authentication (the fail2ban / pike idea). A failure
// is a 401/407 answer of a router to a request that carried credentials; a first challenge
// (a request without credentials) is the normal start of digest authentication and is not one.
// `failures` failures within `window` ban the address for `banFor`.
//
// Memory is fixed: slots in sets of kWays, indexed by a keyed hash of the address (an outsider
// cannot aim at a set). A new address takes a free or expired slot of its set, else the quietest
// slot that is not banned; when every slot of the set holds a ban it is not tracked. Owned by one
// worker (no locks): the edge gives every worker its own table and posts each failure to all.

#include <chrono>
#include <cstdint>
#include <vector>

#include <boost/asio/ip/address.hpp>

namespace evosip::edge {

struct AuthBanSettings {
  uint32_t failures = 10;  // 0 = bans off
  std::chrono::seconds window{60};
  std::chrono::seconds banFor{300};
  size_t slots = 8192;
};

class AuthBanTable {
 public:
  static constexpr size_t kWays = 4;

  AuthBanTable(const AuthBanSettings& settings, uint64_t hashKey);

  bool enabled() const { return failures_ > 0; }
  // True while `source` is banned.
  bool banned(const boost::asio::ip::address& source, int64_t nowNs) const;
  // Counts one failure; true when it started a ban.
  bool recordFailure(const boost::asio::ip::address& source, int64_t nowNs);
  // Bans in force (a scan of the table: for tests and the control thread's occasional look).
  size_t activeBans(int64_t nowNs) const;
  size_t slots() const { return slots_.size(); }

 private:
  struct Slot {
    uint64_t tag = 0;  // 0 = free
    int64_t windowStartNs = 0;
    int64_t bannedUntilNs = 0;
    uint32_t failures = 0;
  };
  uint64_t tagOf(const boost::asio::ip::address& source) const;
  Slot* find(uint64_t tag);
  const Slot* find(uint64_t tag) const;
  Slot* claim(uint64_t tag, int64_t nowNs);

  uint32_t failures_;
  int64_t windowNs_;
  int64_t banNs_;
  uint64_t hashKey_;
  std::vector<Slot> slots_;
};

}  // namespace evosip::edge
