#pragma once
// media.state: the relay's calls kept in the shared store, its heartbeat, and the takeover of a
// dead peer relay's address (the rtpengine + Redis + keepalived model, done in the relay).
//
// One thread with its own io_context and one Store runs it all, off the workers:
//   - records: the workers hand each call's stored form here (Relay::SessionSink); it is written
//     under <key_prefix>sess:<instance>:<Call-ID> with record_ttl, and rewritten every third of
//     it while the call lives (nothing outlives a dead relay by more than record_ttl);
//   - heartbeat: every heartbeat_ms <key_prefix>hb:<instance> is written with heartbeat_ttl_ms,
//     naming the address and ng address it stands for, for this relay and for every peer address
//     it took over;
//   - restart: a relay that wins the lease on its own address (its previous process crashed or
//     restarted within heartbeat_ttl, or nobody took it over) restores the calls stored under its
//     name on their ports, then serves the address; a peer's hold of it means standby;
//   - takeover: the heartbeats of media.takeover.peers are read at the same pace; when one that
//     was seen alive expires, the survivors race for it with SET NX (the winner's heartbeat then
//     stands for that address), and the winner binds the dead relay's ng address and restores its
//     calls on the dead relay's media address and ports (IP_FREEBIND): packets and ng commands
//     sent there reach it as soon as the address does (an announcer moves it: instance.status
//     lists what the relay serves).
// A relay that stops with no call up writes "stopped" into its heartbeat: its peers leave it.
// A taken-over address goes back once its calls have ended (and 2 x heartbeat_ttl passed); a
// relay that starts while a peer serves its address stays in standby until then.
//
// Heartbeats are leases: every write is a compare-and-set (Store::putValueIf) that succeeds only
// while the key is absent or holds this relay's own heartbeat, so a late or healed writer never
// overwrites a peer's takeover. A write refused that way means another relay holds the address:
// its calls here are dropped (their records are the holder's now) and, for the relay's own
// address, it stands by. With media.state.fence, a relay whose heartbeats the store has not
// confirmed for heartbeat_ttl - fence_margin fences itself (heartbeat_fence.hpp) - no relaying,
// no new calls, nothing in served(), its sockets released - strictly before a peer may take its
// addresses over, and lifts the fence once the store confirms every address it still holds.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <evosip/media/heartbeat_fence.hpp>
#include <evosip/media/session_record.hpp>
#include <evosip/metrics/stats.hpp>
#include <evosip/store/store.hpp>

namespace evosip::media {

struct StateSettings {
  bool enabled = false;                          // media.state.enabled
  std::string instanceId;                        // media.instance_id
  std::string keyPrefix = "media:";              // media.state.key_prefix
  std::chrono::milliseconds recordTtl{60000};    // media.state.record_ttl_s
  std::chrono::milliseconds heartbeat{300};      // media.state.heartbeat_ms
  std::chrono::milliseconds heartbeatTtl{1200};  // media.state.heartbeat_ttl_ms
  std::vector<std::string> takeoverPeers;        // media.takeover.peers
  bool fence = false;                            // media.state.fence (auto: takeoverPeers set)
  std::chrono::milliseconds fenceMargin{300};    // media.state.fence_margin_ms
  store::Settings store;                         // store.*
  // The store to open; null: one made from `store` (tests share a memory store between relays).
  std::shared_ptr<store::StoreFactory> storeFactory;
};

// Statistics of media.state (metrics/stats.hpp).
#define EVOSIP_MEDIA_STATE_STATS(COUNTER, GAUGE, COUNTER_ARRAY)                                 \
  COUNTER(takeovers, "evosip_media_takeovers_total",                                            \
          "Peer relay addresses taken over after their heartbeat expired", "")                  \
  COUNTER(restored, "evosip_media_restored_sessions_total",                                     \
          "Calls restored from the store (a taken-over address, or this relay's own at start)", \
          "")                                                                                   \
  COUNTER(restoreErrors, "evosip_media_restore_errors_total",                                   \
          "Stored calls that could not be restored (bad record, socket refused)", "")           \
  COUNTER(storeErrors, "evosip_media_state_store_errors_total",                                 \
          "Store operations of media.state that failed (records, heartbeats)", "")              \
  GAUGE(records, "evosip_media_state_records", "Calls this relay keeps in the store", "")       \
  GAUGE(fenced, "evosip_media_fenced",                                                          \
        "1 while the relay is fenced (its heartbeat not confirmed by the store)", "")           \
  COUNTER(fences, "evosip_media_fences_total",                                                  \
          "Times the relay fenced itself (heartbeat not written for ttl - fence margin)", "")   \
  COUNTER(lost, "evosip_media_addresses_lost_total",                                            \
          "Addresses this relay served found held by another relay (their calls dropped)", "")

struct StateCounters {
  EVOSIP_STAT_FIELDS(EVOSIP_MEDIA_STATE_STATS)
};

// An address a relay serves: its own, or a peer's it took over.
struct ServedAddress {
  std::string instance;  // whose address it is
  std::string address;   // media.address
  std::string ng;        // media.ng_listen
};

class SessionState {
 public:
  struct Hooks {
    // On the state thread, when this relay won a dead peer's address: bind its ng address.
    // Returns false to give the address up (the lock expires, another survivor may take it).
    std::function<bool(const ServedAddress&)> takeOver;
    // On the state thread, per stored call of a taken-over address (owner: the dead relay) or of
    // this relay's own address when it wins its lease (owner ""): restore it on its worker.
    std::function<void(SessionRecord, const std::string& owner)> restore;
    // On the state thread, before the relay claims its own address: binds its ng socket if it is
    // not bound (false: another process, a peer relay on this host serving the address, holds
    // it; the relay stays in standby and tries again at the next heartbeat).
    std::function<bool()> bindOwn;
    // On the state thread, once: the start-up claim of the relay's own address is decided (won
    // and its stored calls handed to restore, held by another relay, or the store unreachable
    // for 10 heartbeats).
    std::function<void()> settled;
    // Calls up now (a stop with none writes "stopped" into the heartbeat).
    std::function<int64_t()> sessions;
    // On the state thread: a taken-over address goes back (its calls ended): close its ng socket.
    std::function<void(const std::string& instance)> release;
    // On the state thread: false once this relay's own address is its own (at start, or when the
    // peer that serves it gives it back); until then new calls are refused.
    std::function<void(bool)> standby;
    // On the state thread: true when the relay fences itself (stop relaying and taking calls,
    // release the sockets of its addresses: a peer may soon take them over), false when the fence
    // lifts.
    std::function<void(bool)> fence;
    // On the state thread: another relay holds `instance`'s address (this relay's own, or one it
    // took over): drop its calls here without touching their records, close its ng socket.
    std::function<void(const std::string& instance)> lost;
  };

  SessionState(StateSettings settings, ServedAddress self, RecordLimits limits, Hooks hooks);
  ~SessionState();
  SessionState(const SessionState&) = delete;
  SessionState& operator=(const SessionState&) = delete;

  void start();
  // Writes "stopped" into the heartbeats when no call is up, then ends the thread.
  void stop();

  // Relay::SessionSink: any thread.
  void write(const std::string& callId, const std::string& owner, std::string record);

  // The addresses this relay serves: none while it is fenced.
  std::vector<ServedAddress> served() const;
  bool fenced() const;
  StateCounters& counters() { return counters_; }

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  StateCounters counters_;
};

}  // namespace evosip::media
