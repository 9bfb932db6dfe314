// app.state between apps sharing one store (the memory store here): an app that stops with calls
// up leaves them stored and its lease to expire; of two survivors watching it exactly one wins
// the lock and adopts its calls, skipping (and counting) a record that does not decode; an app
// that stops with no call up writes "stopped", and nobody takes it over.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <evosip/app/stored_calls.hpp>

namespace evosip::app {
namespace {

using namespace std::chrono_literals;

struct Adopted {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> calls;  // "<app> <Call-ID>"

  void add(std::string e) {
    std::lock_guard lock(mutex);
    calls.push_back(std::move(e));
    changed.notify_all();
  }
  bool waitForCount(size_t n, std::chrono::milliseconds within = 5s) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, within, [&] { return calls.size() >= n; });
  }
  std::vector<std::string> all() {
    std::lock_guard lock(mutex);
    return calls;
  }
};

CallRecord call(const std::string& id) {
  CallRecord r;
  r.callId = id;
  r.localTag = "l";
  r.remoteTag = "r";
  r.fromValue = "<sip:a@h>;tag=r";
  r.toValue = "<sip:100@h>;tag=l";
  r.sourceHost = "127.0.0.1";
  r.sourcePort = 5060;
  r.remoteSdp = "v=0\r\n";
  r.action = "Echo";
  return r;
}

class StoredCallsTest : public ::testing::Test {
 protected:
  std::unique_ptr<StoredCalls> app(const std::string& id, std::vector<std::string> peers,
                                   Adopted& adopted, int64_t calls) {
    StoredCallsSettings s;
    s.enabled = true;
    s.instanceId = id;
    s.heartbeat = 50ms;
    s.heartbeatTtl = 300ms;
    s.recordTtl = 10s;
    s.takeoverPeers = std::move(peers);
    s.storeFactory = factory;
    StoredCalls::Hooks hooks;
    hooks.adopt = [&adopted, id](CallRecord r) { adopted.add(id + " " + r.callId); };
    hooks.calls = [calls] { return calls; };
    auto a = std::make_unique<StoredCalls>(s, std::move(hooks));
    a->start();
    return a;
  }

  void put(const std::string& key, const std::string& value) {
    boost::asio::io_context io;
    auto store = factory->open(io.get_executor());
    bool done = false;
    store->putValue(key, value, 60s, false, [&](Result<bool>) { done = true; });
    while (!done && io.run_one()) {
    }
    io.stop();
    store.reset();
  }

  std::shared_ptr<store::StoreFactory> factory = store::makeStoreFactory(store::Settings{});
};

TEST_F(StoredCallsTest, OneOfTwoSurvivorsAdoptsTheDeadAppsCalls) {
  Adopted adopted;
  auto dead = app("app-a", {}, adopted, 1);  // stops with calls up, as a crash leaves them
  auto b = app("app-b", {"app-a"}, adopted, 0);
  auto c = app("app-c", {"app-a"}, adopted, 0);
  dead->write("c1", encodeCallRecord(call("c1")));
  dead->write("c2", encodeCallRecord(call("c2")));
  put("app:call:app-a:bad", "{\"v\":1");
  std::this_thread::sleep_for(200ms);  // the survivors see app-a's heartbeat alive
  dead->stop();
  ASSERT_TRUE(adopted.waitForCount(2));
  std::this_thread::sleep_for(500ms);  // a second adoption would come within this
  auto all = adopted.all();
  ASSERT_EQ(all.size(), 2u);
  const std::string winner = all[0].substr(0, all[0].find(' '));
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::string>{winner + " c1", winner + " c2"}));
  auto& w = winner == "app-b" ? *b : *c;
  auto& l = winner == "app-b" ? *c : *b;
  EXPECT_EQ(w.counters().takeovers.load(), 1u);
  EXPECT_EQ(w.counters().adopted.load(), 2u);
  EXPECT_EQ(w.counters().badRecords.load(), 1u);
  EXPECT_EQ(l.counters().takeovers.load(), 0u);
}

TEST_F(StoredCallsTest, AnAppThatStopsWithNoCallIsNotTakenOver) {
  Adopted adopted;
  auto gone = app("app-a", {}, adopted, 0);
  auto b = app("app-b", {"app-a"}, adopted, 0);
  std::this_thread::sleep_for(200ms);
  gone->stop();
  std::this_thread::sleep_for(700ms);  // past the lease
  EXPECT_TRUE(adopted.all().empty());
  EXPECT_EQ(b->counters().takeovers.load(), 0u);
}

TEST_F(StoredCallsTest, ARestartedAppAdoptsItsOwnStoredCalls) {
  put("app:call:app-a:c9", encodeCallRecord(call("c9")));
  Adopted adopted;
  auto a = app("app-a", {}, adopted, 0);
  ASSERT_TRUE(adopted.waitForCount(1));
  EXPECT_EQ(adopted.all(), std::vector<std::string>{"app-a c9"});
}

}  // namespace
}  // namespace evosip::app
