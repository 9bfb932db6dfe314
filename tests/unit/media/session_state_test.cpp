// media.state when a relay starts (a restart within heartbeat_ttl, or after its lease lapsed):
// the lease on its own address is won back with compare-and-set, the calls stored under its name
// are handed to restore, and only then is the start settled; a lease another relay holds means
// standby and nothing restored. The relays of a test share one memory store.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <evosip/media/session_state.hpp>

namespace evosip::media {
namespace {

using namespace std::chrono_literals;

struct Events {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> seen;  // "restore <Call-ID> <owner>", "standby 0|1", "settled"

  void add(std::string e) {
    std::lock_guard lock(mutex);
    seen.push_back(std::move(e));
    changed.notify_all();
  }
  bool waitFor(const std::string& e, std::chrono::milliseconds within = 3s) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, within,
                            [&] { return std::find(seen.begin(), seen.end(), e) != seen.end(); });
  }
  std::vector<std::string> all() {
    std::lock_guard lock(mutex);
    return seen;
  }
};

SessionRecord call(const std::string& id) {
  SessionRecord r;
  r.callId = id;
  r.address = "127.0.0.1";
  r.bind = "127.0.0.1";
  LegRecord l;
  l.tag = "caller";
  r.legs.push_back(l);
  return r;
}

class StateStart : public ::testing::Test {
 protected:
  std::unique_ptr<SessionState> relay(const std::string& id, Events& events) {
    StateSettings s;
    s.enabled = true;
    s.instanceId = id;
    s.heartbeat = 50ms;
    s.heartbeatTtl = 2000ms;
    s.storeFactory = factory;
    SessionState::Hooks hooks;
    hooks.restore = [&events](SessionRecord r, const std::string& owner) {
      events.add("restore " + r.callId + " " + owner);
    };
    hooks.standby = [&events](bool on) { events.add(on ? "standby 1" : "standby 0"); };
    hooks.settled = [&events] { events.add("settled"); };
    hooks.sessions = [] { return int64_t{1}; };  // stops leave the records, as a crash does
    auto state = std::make_unique<SessionState>(s, ServedAddress{id, "127.0.0.1", "127.0.0.1:2223"},
                                                RecordLimits{}, std::move(hooks));
    state->start();
    return state;
  }

  // Writes straight into the store (what another relay, or a previous process, left there).
  void put(const std::string& key, const std::string& value) {
    boost::asio::io_context io;
    auto store = factory->open(io.get_executor());
    bool done = false, ok = false;
    store->putValue(key, value, 60s, false, [&](Result<bool> r) {
      done = true;
      ok = r.has_value();
    });
    while (!done && io.run_one()) {
    }
    io.stop();  // the memory store's sweep timer would keep it running
    store.reset();
    ASSERT_TRUE(ok);
  }

  std::shared_ptr<store::StoreFactory> factory = store::makeStoreFactory(store::Settings{});
};

TEST_F(StateStart, ARestartedRelayRestoresItsStoredCallsBeforeItSettles) {
  Events before;
  auto first = relay("relay-a", before);
  ASSERT_TRUE(before.waitFor("settled"));
  first->write("c1", "", encodeSessionRecord(call("c1")));
  first->write("c2", "", "{\"not a record");
  std::this_thread::sleep_for(100ms);
  first->stop();  // with a call up: its heartbeat and records stay, as after a crash
  first.reset();

  Events after;
  auto second = relay("relay-a", after);
  ASSERT_TRUE(after.waitFor("settled"));
  const auto seen = after.all();
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen[0], "restore c1 ");  // this relay's own calls (owner "")
  EXPECT_EQ(seen[1], "standby 0");    // served only once restored
  EXPECT_EQ(seen[2], "settled");
  EXPECT_EQ(second->counters().restoreErrors.load(), 1u);  // the corrupt record, skipped
  ASSERT_EQ(second->served().size(), 1u);
  EXPECT_EQ(second->served()[0].instance, "relay-a");
}

TEST_F(StateStart, StoredCallsOfALapsedLeaseNobodyTookAreRestored) {
  put("media:sess:relay-a:c7", encodeSessionRecord(call("c7")));
  Events events;
  auto state = relay("relay-a", events);
  ASSERT_TRUE(events.waitFor("settled"));
  EXPECT_EQ(events.all().front(), "restore c7 ");
}

TEST_F(StateStart, ALeaseAnotherRelayHoldsMeansStandbyAndNothingRestored) {
  put("media:sess:relay-a:c7", encodeSessionRecord(call("c7")));
  put("media:hb:relay-a", encodeHeartbeat(Heartbeat{false, "relay-b", "127.0.0.1", "x:1"}));
  Events events;
  auto state = relay("relay-a", events);
  ASSERT_TRUE(events.waitFor("settled"));
  std::this_thread::sleep_for(200ms);  // several heartbeats
  EXPECT_EQ(events.all(), std::vector<std::string>{"settled"});
  EXPECT_TRUE(state->served().empty());
}

}  // namespace
}  // namespace evosip::media
