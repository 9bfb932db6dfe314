#pragma once
// app.state: the app's established calls kept in the shared store, its heartbeat lease, and the
// takeover of a dead peer app's calls (the relays' media.state model, without an address to move:
// a UAS may re-INVITE its caller from anywhere, so the calls move, not the app's address).
//
// One thread with its own io_context and one Store runs it all, off the workers:
//   - records: the workers hand each established call's stored form here (call_record.hpp); it
//     is written under <key_prefix>call:<instance>:<Call-ID> with record_ttl, rewritten every
//     third of it while the call lives, and removed when the call ends;
//   - heartbeat: every heartbeat_ms <key_prefix>hb:<instance> is renewed for heartbeat_ttl_ms as
//     a lease (compare-and-set: written only where the key is absent, "stopped" or still this
//     app's own), so a peer's hold of the key is never overwritten;
//   - restart: an app that wins its own lease (its previous process died or restarted within the
//     lease) adopts the calls stored under its own name;
//   - takeover: the heartbeats of app.takeover.peers are read at the same pace; when one that was
//     seen alive expires, the survivors race for it with SET NX (one wins) and the winner adopts
//     the dead app's calls: each record is handed to the worker of its Call-ID (which re-INVITEs
//     the caller from here and goes on with the application) and removed from the dead app's name.
// An app that stops with no call up writes "stopped" into its heartbeat: its peers leave it. One
// that stops with calls up leaves them stored: a peer takes them over once the lease expires.
// A record that does not decode (corrupt, oversized) is skipped and counted, never adopted.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <evosip/app/call_record.hpp>
#include <evosip/metrics/stats.hpp>
#include <evosip/store/store.hpp>

namespace evosip::app {

struct StoredCallsSettings {
  bool enabled = false;                          // app.state.enabled
  std::string instanceId;                        // app.instance_id
  std::string keyPrefix = "app:";                // app.state.key_prefix
  std::chrono::milliseconds recordTtl{60000};    // app.state.record_ttl_s
  std::chrono::milliseconds heartbeat{300};      // app.state.heartbeat_ms
  std::chrono::milliseconds heartbeatTtl{1200};  // app.state.heartbeat_ttl_ms
  std::vector<std::string> takeoverPeers;        // app.takeover.peers
  CallRecordLimits limits;
  store::Settings store;  // store.*
  // The store to open; null: one made from `store`.
  std::shared_ptr<store::StoreFactory> storeFactory;
};

// Statistics of app.state (metrics/stats.hpp).
#define EVOSIP_APP_STATE_STATS(COUNTER, GAUGE, COUNTER_ARRAY)                                   \
  COUNTER(takeovers, "evosip_app_takeovers_total",                                              \
          "Peer apps whose calls this app took over after their heartbeat expired", "")         \
  COUNTER(adopted, "evosip_app_adopted_calls_total",                                            \
          "Stored calls handed to the workers to go on here (a dead peer's, or this app's own " \
          "after a restart)",                                                                   \
          "")                                                                                   \
  COUNTER(badRecords, "evosip_app_bad_records_total",                                           \
          "Stored calls skipped because their record did not decode (corrupt, oversized)", "")  \
  COUNTER(storeErrors, "evosip_app_state_store_errors_total",                                   \
          "Store operations of app.state that failed (records, heartbeats)", "")                \
  GAUGE(records, "evosip_app_state_records", "Calls this app keeps in the store", "")           \
  COUNTER(lost, "evosip_app_leases_lost_total",                                                 \
          "Times a peer held this app's heartbeat (took its calls over while it was cut off)", "")

struct StoredCallsCounters {
  EVOSIP_STAT_FIELDS(EVOSIP_APP_STATE_STATS)
};

class StoredCalls {
 public:
  struct Hooks {
    // On the state thread, per stored call to go on here (a dead peer's, or this app's own
    // after a restart).
    std::function<void(CallRecord)> adopt;
    // On the state thread: a peer holds this app's heartbeat (it took the calls over while this
    // app could not renew its lease): drop every call here without signalling.
    std::function<void()> lost;
    // Calls up now (a stop with none writes "stopped" into the heartbeat).
    std::function<int64_t()> calls;
  };

  StoredCalls(StoredCallsSettings settings, Hooks hooks);
  ~StoredCalls();
  StoredCalls(const StoredCalls&) = delete;
  StoredCalls& operator=(const StoredCalls&) = delete;

  void start();
  // Writes "stopped" into the heartbeat when no call is up, then ends the thread.
  void stop();

  // Any thread: the call's record (empty: the call ended, its record goes).
  void write(const std::string& callId, std::string record);

  StoredCallsCounters& counters() { return counters_; }

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  StoredCallsCounters counters_;
};

}  // namespace evosip::app
