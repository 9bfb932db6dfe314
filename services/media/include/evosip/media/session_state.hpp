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
//   - takeover: the heartbeats of media.takeover.peers are read at the same pace; when one that
//     was seen alive expires, the survivors race for it with SET NX (the winner's heartbeat then
//     stands for that address), and the winner binds the dead relay's ng address and restores its
//     calls on the dead relay's media address and ports (IP_FREEBIND): packets and ng commands
//     sent there reach it as soon as the address does (an announcer moves it: instance.status
//     lists what the relay serves).
// A relay that stops with no call up writes "stopped" into its heartbeat: its peers leave it.
// A taken-over address goes back once its calls have ended (and 2 x heartbeat_ttl passed); a
// relay that starts while a peer serves its address stays in standby until then.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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
  store::Settings store;                         // store.*
};

// Statistics of media.state (metrics/stats.hpp).
#define EVOSIP_MEDIA_STATE_STATS(COUNTER, GAUGE, COUNTER_ARRAY)                       \
  COUNTER(takeovers, "evosip_media_takeovers_total",                                  \
          "Peer relay addresses taken over after their heartbeat expired", "")        \
  COUNTER(restored, "evosip_media_restored_sessions_total",                           \
          "Calls restored from the store on a taken-over address", "")                \
  COUNTER(restoreErrors, "evosip_media_restore_errors_total",                         \
          "Stored calls that could not be restored (bad record, socket refused)", "") \
  COUNTER(storeErrors, "evosip_media_state_store_errors_total",                       \
          "Store operations of media.state that failed (records, heartbeats)", "")    \
  GAUGE(records, "evosip_media_state_records", "Calls this relay keeps in the store", "")

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
    // On the state thread, per stored call of a taken-over address: restore it on its worker.
    std::function<void(SessionRecord, const std::string& owner)> restore;
    // Calls up now (a stop with none writes "stopped" into the heartbeat).
    std::function<int64_t()> sessions;
    // On the state thread: a taken-over address goes back (its calls ended): close its ng socket.
    std::function<void(const std::string& instance)> release;
    // On the state thread: false once this relay's own address is its own (at start, or when the
    // peer that serves it gives it back); until then new calls are refused.
    std::function<void(bool)> standby;
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

  std::vector<ServedAddress> served() const;
  StateCounters& counters() { return counters_; }

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  StateCounters counters_;
};

}  // namespace evosip::media
