// The behaviour every backend must have: one suite, run against memory and redis.

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/store/memory_store.hpp>
#include <evosip/store/redis_store.hpp>

#include "redis_server.hpp"
#include "store_fixture.hpp"

namespace evosip::store {
namespace {

using namespace std::chrono_literals;
using test::RedisServer;

// The wall clock of a test: starts at a fixed time, moves only when the test says so.
struct TestClock {
  TimePoint now{std::chrono::milliseconds(1'700'000'000'000)};
  NowFn fn() {
    return [this] { return now; };
  }
};

struct MemoryBackend {
  static constexpr const char* kName = "memory";
  std::shared_ptr<MemoryDatabase> database;

  bool setUp(NowFn now) {
    database = std::make_shared<MemoryDatabase>(
        MemorySettings{.shards = 4, .sweepInterval = 0ms, .now = std::move(now)});
    return true;
  }
  std::unique_ptr<Store> open(boost::asio::any_io_executor ex) {
    return std::make_unique<MemoryStore>(database, std::move(ex));
  }
};

// One server for the whole suite; each test gets its own key prefix.
RedisServer* sharedRedis() {
  static std::unique_ptr<RedisServer> server = [] {
    auto s = std::make_unique<RedisServer>();
    if (!s->start()) {
      s.reset();
    }
    return s;
  }();
  return server.get();
}

struct RedisBackend {
  static constexpr const char* kName = "redis";
  RedisSettings settings;

  bool setUp(NowFn now) {
    static int counter = 0;
    auto* server = sharedRedis();
    if (server == nullptr) {
      return false;
    }
    settings.port = server->port();
    settings.keyPrefix = "t" + std::to_string(++counter) + ":";
    settings.now = std::move(now);
    return true;
  }
  std::unique_ptr<Store> open(boost::asio::any_io_executor ex) {
    return std::make_unique<RedisStore>(settings, std::move(ex));
  }
};

template <typename Backend>
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string(Backend::kName) == "redis" && !RedisServer::installed()) {
      GTEST_SKIP() << "redis-server is not installed (" << RedisServer::kBinary << ")";
    }
    ASSERT_TRUE(backend.setUp(clock.fn())) << "could not start redis-server";
    store = backend.open(runner.io.get_executor());
    ASSERT_TRUE(runner.waitReady(*store));
  }
  void TearDown() override { store.reset(); }

  Binding binding(const std::string& aor, const std::string& contact,
                  std::chrono::seconds ttl = 3600s) {
    Binding b;
    b.aor = aor;
    b.contact = contact;
    b.expires = clock.now + ttl;
    b.callId = "reg-" + contact;
    b.cseq = 1;
    return b;
  }

  DialogRecord dialog(const std::string& callId, const std::string& fromTag,
                      const std::string& toTag, std::chrono::seconds ttl = 3600s) {
    DialogRecord d;
    d.id = {callId, fromTag, toTag};
    d.callerContact = "sip:alice@10.0.0.1:5060";
    d.calleeContact = "sip:bob@10.0.0.2:5060";
    d.callerRouteSet = {"<sip:10.0.0.10;lr>"};
    d.calleeRouteSet = {"<sip:10.0.0.11;lr>", "<sip:10.0.0.12;lr>"};
    d.callerCseq = 1;
    d.calleeCseq = 0;
    d.owner = "router-a";
    d.created = clock.now;
    d.expires = clock.now + ttl;
    d.mediaRelay = "media-1/" + callId;
    return d;
  }

  Result<void> put(const Binding& b) {
    return runner.call<void>([&](auto cb) { store->putBinding(b, cb); });
  }
  Result<std::vector<Binding>> get(const std::string& aor) {
    return runner.call<std::vector<Binding>>([&](auto cb) { store->getBindings(aor, cb); });
  }
  Result<void> put(const DialogRecord& d) {
    return runner.call<void>([&](auto cb) { store->putDialog(d, cb); });
  }
  Result<bool> nonce(const std::string& n, uint32_t nc, std::chrono::milliseconds ttl = 60s) {
    return runner.call<bool>([&](auto cb) { store->checkAndSetNonceCount(n, nc, ttl, cb); });
  }
  std::vector<std::string> allAors(size_t pageSize, size_t* pages = nullptr) {
    std::vector<std::string> out;
    std::string cursor;
    size_t n = 0;
    do {
      auto page =
          runner.call<Page<std::string>>([&](auto cb) { store->listAors(cursor, pageSize, cb); });
      EXPECT_TRUE(page) << page.error().message;
      if (!page || ++n > 1000) {
        break;
      }
      out.insert(out.end(), page->items.begin(), page->items.end());
      cursor = page->next;
    } while (!cursor.empty());
    if (pages != nullptr) {
      *pages = n;
    }
    return out;
  }

  TestClock clock;
  Backend backend;
  test::StoreRunner runner;
  std::unique_ptr<Store> store;
};

using Backends = ::testing::Types<MemoryBackend, RedisBackend>;
struct BackendNames {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};
TYPED_TEST_SUITE(StoreTest, Backends, BackendNames);

TYPED_TEST(StoreTest, PutThenGetReturnsEveryField) {
  Binding b = this->binding("alice@example.com", "sip:alice@192.0.2.10:5060;transport=tcp");
  b.path = {"<sip:edge-1.example.com;lr>", "<sip:edge-2.example.com;lr;ob>"};
  b.q = 0.7;
  b.cseq = 42;
  b.instanceId = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";
  b.regId = 2;
  b.received = "tcp:198.51.100.7:40312;flow=abc";
  b.userAgent = "Linphone/5.2";
  b.router = "router-a";
  ASSERT_TRUE(this->put(b));
  auto got = this->get("alice@example.com");
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front(), b);
  auto none = this->get("bob@example.com");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TYPED_TEST(StoreTest, PutReplacesTheSameContact) {
  Binding b = this->binding("alice@example.com", "sip:alice@192.0.2.10");
  ASSERT_TRUE(this->put(b));
  b.cseq = 2;
  b.expires += 60s;
  ASSERT_TRUE(this->put(b));
  auto got = this->get("alice@example.com");
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().cseq, 2u);
  EXPECT_EQ(got->front().expires, b.expires);
}

TYPED_TEST(StoreTest, BindingsComeHighestQFirst) {
  Binding low = this->binding("a@x", "sip:low@x");
  low.q = 0.1;
  Binding high = this->binding("a@x", "sip:high@x");
  high.q = 1.0;
  Binding mid = this->binding("a@x", "sip:mid@x");
  mid.q = 0.5;
  ASSERT_TRUE(this->put(low));
  ASSERT_TRUE(this->put(high));
  ASSERT_TRUE(this->put(mid));
  auto got = this->get("a@x");
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].contact, "sip:high@x");
  EXPECT_EQ((*got)[1].contact, "sip:mid@x");
  EXPECT_EQ((*got)[2].contact, "sip:low@x");
}

TYPED_TEST(StoreTest, RemoveOneContactKeepsTheOthers) {
  ASSERT_TRUE(this->put(this->binding("a@x", "sip:1@x")));
  ASSERT_TRUE(this->put(this->binding("a@x", "sip:2@x")));
  ASSERT_TRUE(this->runner.template call<void>(
      [&](auto cb) { this->store->removeBinding("a@x", "sip:1@x", cb); }));
  ASSERT_TRUE(this->runner.template call<void>(
      [&](auto cb) { this->store->removeBinding("a@x", "sip:absent@x", cb); }));
  auto got = this->get("a@x");
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().contact, "sip:2@x");
}

TYPED_TEST(StoreTest, RemoveAllContactsOfAnAor) {
  ASSERT_TRUE(this->put(this->binding("a@x", "sip:1@x")));
  ASSERT_TRUE(this->put(this->binding("a@x", "sip:2@x")));
  ASSERT_TRUE(this->put(this->binding("b@x", "sip:3@x")));
  ASSERT_TRUE(
      this->runner.template call<void>([&](auto cb) { this->store->removeBindings("a@x", cb); }));
  EXPECT_TRUE(this->get("a@x")->empty());
  EXPECT_EQ(this->get("b@x")->size(), 1u);
  EXPECT_EQ(this->allAors(10), std::vector<std::string>{"b@x"});
}

TYPED_TEST(StoreTest, ExpiredBindingsAreNotReturned) {
  ASSERT_TRUE(this->put(this->binding("a@x", "sip:short@x", 10s)));
  ASSERT_TRUE(this->put(this->binding("a@x", "sip:long@x", 100s)));
  this->clock.now += 20s;
  auto got = this->get("a@x");
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().contact, "sip:long@x");
  this->clock.now += 100s;
  EXPECT_TRUE(this->get("a@x")->empty());
}

TYPED_TEST(StoreTest, PuttingAnExpiredBindingRemovesIt) {
  ASSERT_TRUE(this->put(this->binding("a@x", "sip:1@x")));
  Binding gone = this->binding("a@x", "sip:1@x");
  gone.expires = this->clock.now;
  ASSERT_TRUE(this->put(gone));
  EXPECT_TRUE(this->get("a@x")->empty());
}

TYPED_TEST(StoreTest, RefusesBindingsWithoutKey) {
  auto r = this->put(this->binding("", "sip:1@x"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalid);
}

TYPED_TEST(StoreTest, ListAorsPagesThroughEveryAorOnce) {
  std::set<std::string> expected;
  for (int i = 0; i < 40; ++i) {
    std::string aor = "user" + std::to_string(i) + "@example.com";
    expected.insert(aor);
    ASSERT_TRUE(this->put(this->binding(aor, "sip:" + std::to_string(i) + "@192.0.2.1")));
    if (i % 3 == 0) {
      ASSERT_TRUE(this->put(this->binding(aor, "sip:second@192.0.2.2")));
    }
  }
  size_t pages = 0;
  auto all = this->allAors(7, &pages);
  std::multiset<std::string> seen(all.begin(), all.end());
  EXPECT_EQ(seen.size(), expected.size());
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()), expected);
  EXPECT_GE(pages, 2u);
  auto bad = this->runner.template call<Page<std::string>>(
      [&](auto cb) { this->store->listAors("not-a-cursor", 5, cb); });
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kInvalid);
}

TYPED_TEST(StoreTest, DialogsByExactIdAndByCallId) {
  DialogRecord first = this->dialog("call-1@host", "ft1", "tt-a");
  DialogRecord forked = this->dialog("call-1@host", "ft1", "tt-b");
  forked.calleeContact = "sip:bob@10.0.0.3";
  DialogRecord other = this->dialog("call-2@host", "x", "y");
  ASSERT_TRUE(this->put(first));
  ASSERT_TRUE(this->put(forked));
  ASSERT_TRUE(this->put(other));

  auto got = this->runner.template call<DialogRecord>(
      [&](auto cb) { this->store->getDialog(forked.id, cb); });
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, forked);

  auto missing = this->runner.template call<DialogRecord>([&](auto cb) {
    this->store->getDialog({"call-1@host", "tt-a", "ft1"}, cb);
  });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);

  auto call = this->runner.template call<std::vector<DialogRecord>>(
      [&](auto cb) { this->store->getDialogs("call-1@host", cb); });
  ASSERT_TRUE(call);
  ASSERT_EQ(call->size(), 2u);
  EXPECT_EQ((*call)[0], first);
  EXPECT_EQ((*call)[1], forked);

  ASSERT_TRUE(
      this->runner.template call<void>([&](auto cb) { this->store->removeDialog(first.id, cb); }));
  call = this->runner.template call<std::vector<DialogRecord>>(
      [&](auto cb) { this->store->getDialogs("call-1@host", cb); });
  ASSERT_TRUE(call);
  ASSERT_EQ(call->size(), 1u);
  EXPECT_EQ(call->front().id.toTag, "tt-b");
}

TYPED_TEST(StoreTest, DialogUpdateAndExpiry) {
  DialogRecord d = this->dialog("call@h", "a", "b", 30s);
  ASSERT_TRUE(this->put(d));
  d.callerCseq = 7;
  ASSERT_TRUE(this->put(d));
  auto got =
      this->runner.template call<DialogRecord>([&](auto cb) { this->store->getDialog(d.id, cb); });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->callerCseq, 7u);
  this->clock.now += 31s;
  got =
      this->runner.template call<DialogRecord>([&](auto cb) { this->store->getDialog(d.id, cb); });
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::kNotFound);
  auto call = this->runner.template call<std::vector<DialogRecord>>(
      [&](auto cb) { this->store->getDialogs("call@h", cb); });
  ASSERT_TRUE(call);
  EXPECT_TRUE(call->empty());
}

TYPED_TEST(StoreTest, ListDialogsPagesThroughEveryDialogOnce) {
  std::set<std::string> expected;
  for (int i = 0; i < 23; ++i) {
    auto d = this->dialog("call-" + std::to_string(i), "f", "t");
    expected.insert(d.id.callId + "/t");
    ASSERT_TRUE(this->put(d));
  }
  ASSERT_TRUE(this->put(this->dialog("call-5", "f", "t2")));
  expected.insert("call-5/t2");
  std::multiset<std::string> seen;
  std::string cursor;
  size_t pages = 0;
  do {
    auto page = this->runner.template call<Page<DialogRecord>>(
        [&](auto cb) { this->store->listDialogs(cursor, 5, cb); });
    ASSERT_TRUE(page) << page.error().message;
    for (const auto& d : page->items) {
      seen.insert(d.id.callId + "/" + d.id.toTag);
      EXPECT_EQ(d.owner, "router-a");
    }
    cursor = page->next;
    ASSERT_LT(++pages, 100u);
  } while (!cursor.empty());
  EXPECT_EQ(seen.size(), expected.size());
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), expected);
  EXPECT_GE(pages, 2u);
}

TYPED_TEST(StoreTest, NonceCountOnlyMovesForward) {
  EXPECT_EQ(this->nonce("n1", 1).value(), true);
  EXPECT_EQ(this->nonce("n1", 1).value(), false);  // replay
  EXPECT_EQ(this->nonce("n1", 3).value(), true);
  EXPECT_EQ(this->nonce("n1", 2).value(), false);  // older
  EXPECT_EQ(this->nonce("n1", 4).value(), true);
  EXPECT_EQ(this->nonce("n2", 1).value(), true);  // counts are per nonce
  EXPECT_EQ(this->nonce("n1", 0xffffffff).value(), true);
  EXPECT_EQ(this->nonce("n1", 0xffffffff).value(), false);
}

// Values: a relay's session records, heartbeats and its takeover lock (SET NX PX).
TYPED_TEST(StoreTest, ValuesPutGetRemoveAndLockOnlyIfAbsent) {
  auto put = [this](const std::string& k, const std::string& v, bool nx,
                    std::chrono::milliseconds ttl = 60s) {
    return this->runner.template call<bool>(
        [&](auto cb) { this->store->putValue(k, v, ttl, nx, cb); });
  };
  auto get = [this](const std::string& k) {
    return this->runner.template call<std::string>([&](auto cb) { this->store->getValue(k, cb); });
  };
  EXPECT_EQ(get("hb:a").error().code, Errc::kNotFound);
  EXPECT_EQ(put("hb:a", "one", true).value(), true);
  EXPECT_EQ(put("hb:a", "two", true).value(), false);  // the lock is held
  EXPECT_EQ(get("hb:a").value(), "one");
  EXPECT_EQ(put("hb:a", "three", false).value(), true);  // the holder refreshes it
  EXPECT_EQ(get("hb:a").value(), "three");
  ASSERT_TRUE(
      this->runner.template call<void>([&](auto cb) { this->store->removeValue("hb:a", cb); }));
  EXPECT_EQ(get("hb:a").error().code, Errc::kNotFound);
  EXPECT_FALSE(put("", "x", false));
  // A value expires with its TTL (memory: the test clock; redis: the server's own clock).
  EXPECT_EQ(put("hb:b", "short", false, 100ms).value(), true);
  this->clock.now += 200ms;
  std::this_thread::sleep_for(250ms);
  EXPECT_EQ(get("hb:b").error().code, Errc::kNotFound);
  EXPECT_EQ(put("hb:b", "taken", true).value(), true);  // an expired lock can be taken
}

// A lease: its holder renews it; a value someone else wrote is not overwritten; an expired one
// may be taken.
TYPED_TEST(StoreTest, PutValueIfWritesOnlyOverAnExpectedValue) {
  auto putIf = [this](const std::string& v, std::vector<std::string> expected,
                      std::chrono::milliseconds ttl = 60s) {
    return this->runner.template call<bool>(
        [&](auto cb) { this->store->putValueIf("hb:r", v, ttl, expected, cb); });
  };
  auto get = [this] {
    return this->runner.template call<std::string>(
        [&](auto cb) { this->store->getValue("hb:r", cb); });
  };
  EXPECT_EQ(putIf("mine", {"mine"}).value(), true);  // absent
  EXPECT_EQ(putIf("mine", {"mine"}).value(), true);  // renewed
  ASSERT_TRUE(this->runner.template call<bool>(
      [&](auto cb) { this->store->putValue("hb:r", "theirs", 60s, false, cb); }));
  EXPECT_EQ(putIf("mine", {"mine"}).value(), false);
  EXPECT_EQ(get().value(), "theirs");
  EXPECT_EQ(putIf("mine", {"mine", "stopped", "theirs"}).value(), true);
  EXPECT_EQ(get().value(), "mine");
  EXPECT_FALSE(this->runner.template call<bool>(
      [&](auto cb) { this->store->putValueIf("", "x", 60s, {}, cb); }));
  ASSERT_TRUE(this->runner.template call<bool>(
      [&](auto cb) { this->store->putValue("hb:r", "theirs", 100ms, false, cb); }));
  this->clock.now += 200ms;
  std::this_thread::sleep_for(250ms);
  EXPECT_EQ(putIf("mine", {"mine"}).value(), true);  // theirs expired
  EXPECT_EQ(get().value(), "mine");
}

TYPED_TEST(StoreTest, ListValuesPagesThroughOnePrefixOnce) {
  std::set<std::string> written;
  for (int i = 0; i < 30; ++i) {
    const std::string k = "sess:relay-a:call-" + std::to_string(i);
    written.insert(k);
    ASSERT_TRUE(this->runner.template call<bool>(
        [&](auto cb) { this->store->putValue(k, "v" + std::to_string(i), 60s, false, cb); }));
  }
  ASSERT_TRUE(this->runner.template call<bool>(
      [&](auto cb) { this->store->putValue("sess:relay-b:call-0", "other", 60s, false, cb); }));
  ASSERT_TRUE(this->runner.template call<bool>(
      [&](auto cb) { this->store->putValue("sess:relay-a*", "glob", 60s, false, cb); }));
  std::set<std::string> seen;
  std::string cursor;
  size_t pages = 0;
  do {
    auto page = this->runner.template call<Page<KeyValue>>(
        [&](auto cb) { this->store->listValues("sess:relay-a:", cursor, 7, cb); });
    ASSERT_TRUE(page) << page.error().message;
    for (const auto& kv : page->items) {
      EXPECT_TRUE(seen.insert(kv.key).second) << kv.key << " listed twice";
      EXPECT_EQ(kv.value, "v" + kv.key.substr(kv.key.rfind('-') + 1));
    }
    cursor = page->next;
  } while (!cursor.empty() && ++pages < 100);
  EXPECT_EQ(seen, written);
}

// Two workers, each with its own store and io_context thread, race on one nonce: every nc is
// accepted at most once, and each worker sees its accepted counts increase.
TYPED_TEST(StoreTest, NonceCountCheckAndSetIsAtomic) {
  constexpr uint32_t kCount = 200;
  struct Worker {
    test::StoreRunner runner;
    std::unique_ptr<Store> store;
    std::vector<uint32_t> accepted;
    bool failed = false;
  };
  Worker workers[2];
  for (auto& w : workers) {
    w.store = this->backend.open(w.runner.io.get_executor());
    ASSERT_TRUE(w.runner.waitReady(*w.store));
  }
  std::vector<std::thread> threads;
  for (auto& w : workers) {
    threads.emplace_back([&w] {
      for (uint32_t nc = 1; nc <= kCount; ++nc) {
        auto r = w.runner.template call<bool>(
            [&](auto cb) { w.store->checkAndSetNonceCount("shared", nc, 60s, cb); });
        if (!r) {
          w.failed = true;
          return;
        }
        if (*r) {
          w.accepted.push_back(nc);
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (auto& w : workers) {
    EXPECT_FALSE(w.failed);
    EXPECT_TRUE(std::is_sorted(w.accepted.begin(), w.accepted.end()));
  }
  std::multiset<uint32_t> all(workers[0].accepted.begin(), workers[0].accepted.end());
  all.insert(workers[1].accepted.begin(), workers[1].accepted.end());
  EXPECT_EQ(std::set<uint32_t>(all.begin(), all.end()).size(), all.size());
  EXPECT_TRUE(all.count(kCount) == 1);  // the last one is always fresh for whoever is first
  for (auto& w : workers) {
    w.store.reset();
  }
}

// The callback of an operation started on another thread runs on the store's executor.
TYPED_TEST(StoreTest, CallbacksRunOnTheStoresExecutor) {
  std::thread::id callbackThread;
  std::atomic<bool> done{false};
  std::thread caller([&] {
    this->store->putBinding(this->binding("a@x", "sip:1@x"), [&](Result<void> r) {
      EXPECT_TRUE(r);
      callbackThread = std::this_thread::get_id();
      done = true;
    });
  });
  caller.join();
  ASSERT_TRUE(this->runner.run(5000ms, [&] { return done.load(); }));
  EXPECT_EQ(callbackThread, std::this_thread::get_id());
}

}  // namespace
}  // namespace evosip::store
