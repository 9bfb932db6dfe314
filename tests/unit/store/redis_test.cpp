// What only the redis backend does: real key TTLs, the key layout, connection failures,
// timeouts, recovery, AUTH and SELECT.

#include <hiredis/hiredis.h>
#include <memory>
#include <signal.h>
#include <string>

#include <gtest/gtest.h>

#include <evosip/store/json.hpp>
#include <evosip/store/redis_store.hpp>

#include "redis_server.hpp"
#include "store_fixture.hpp"

namespace evosip::store {
namespace {

using namespace std::chrono_literals;
using test::RedisServer;

// A plain synchronous connection, to look at what the store wrote.
class Inspector {
 public:
  explicit Inspector(uint16_t port, const char* password = nullptr, int db = 0) {
    timeval tv{2, 0};
    c_ = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (password != nullptr) {
      freeReplyObject(redisCommand(c_, "AUTH %s", password));
    }
    if (db != 0) {
      freeReplyObject(redisCommand(c_, "SELECT %d", db));
    }
  }
  ~Inspector() { redisFree(c_); }
  long long integer(const std::string& cmd, const std::string& key) {
    auto* r =
        static_cast<redisReply*>(redisCommand(c_, "%s %b", cmd.c_str(), key.data(), key.size()));
    long long v = (r != nullptr && r->type == REDIS_REPLY_INTEGER) ? r->integer : -999;
    freeReplyObject(r);
    return v;
  }
  std::string hget(const std::string& key, const std::string& field) {
    auto* r = static_cast<redisReply*>(
        redisCommand(c_, "HGET %b %b", key.data(), key.size(), field.data(), field.size()));
    std::string v = (r != nullptr && r->type == REDIS_REPLY_STRING) ? std::string(r->str, r->len)
                                                                    : std::string();
    freeReplyObject(r);
    return v;
  }

 private:
  redisContext* c_ = nullptr;
};

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::installed()) {
      GTEST_SKIP() << "redis-server is not installed (" << RedisServer::kBinary << ")";
    }
  }

  // A short command timeout keeps the failure tests fast; a test that loads the server gives
  // a longer one (a busy 2-core machine can hold 300 pipelined scripts longer than 300 ms).
  std::unique_ptr<RedisStore> open(RedisServer& server, RedisSettings s = {},
                                   std::chrono::milliseconds commandTimeout = 300ms) {
    s.port = server.port();
    s.reconnectMin = 20ms;
    s.reconnectMax = 200ms;
    s.commandTimeout = commandTimeout;
    s.connectTimeout = 300ms;
    return std::make_unique<RedisStore>(s, runner.io.get_executor());
  }

  Binding binding(const std::string& aor, const std::string& contact,
                  std::chrono::milliseconds ttl) {
    Binding b;
    b.aor = aor;
    b.contact = contact;
    b.expires = systemNow() + ttl;
    return b;
  }

  // An operation started while the store is not connected completes at once: the first poll of
  // the io_context, with no waiting, runs the callback.
  Result<void> pingNow(Store& store) {
    std::optional<Result<void>> out;
    store.ping([&](Result<void> r) { out = std::move(r); });
    runner.io.restart();
    runner.io.poll();
    if (!out) {
      return makeError(Errc::kIo, "test: no immediate answer");
    }
    return *out;
  }

  test::StoreRunner runner;
};

TEST_F(RedisStoreTest, KeysAreNamespacedAndExpireWithTheirRecords) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto store = open(server);
  ASSERT_TRUE(runner.waitReady(*store));
  Inspector redis(server.port());

  Binding b = binding("alice@example.com", "sip:alice@192.0.2.1", 400ms);
  ASSERT_TRUE(runner.call<void>([&](auto cb) { store->putBinding(b, cb); }));
  DialogRecord d;
  d.id = {"call-1", "f", "t"};
  d.expires = systemNow() + 400ms;
  ASSERT_TRUE(runner.call<void>([&](auto cb) { store->putDialog(d, cb); }));
  ASSERT_TRUE(
      runner.call<bool>([&](auto cb) { store->checkAndSetNonceCount("n", 1, 400ms, cb); }).value());

  const std::string loc = "evosip:loc:alice@example.com";
  const std::string dlg = "evosip:dlg:call-1";
  const std::string nc = "evosip:nc:n";
  auto stored = bindingFromJson(redis.hget(loc, "sip:alice@192.0.2.1"));
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, b);
  EXPECT_TRUE(dialogFromJson(redis.hget(dlg, "[\"f\",\"t\"]")));
  for (const auto& k : {loc, dlg, nc}) {
    long long ttl = redis.integer("PTTL", k);
    EXPECT_GT(ttl, 0) << k;
    EXPECT_LE(ttl, 400) << k;
  }
  // Gone from redis itself (not only filtered) once expired.
  ASSERT_TRUE(runner.run(3000ms, [&] {
    return redis.integer("EXISTS", loc) == 0 && redis.integer("EXISTS", dlg) == 0 &&
           redis.integer("EXISTS", nc) == 0;
  }));
  auto page = runner.call<Page<std::string>>([&](auto cb) { store->listAors("", 10, cb); });
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->items.empty());
}

TEST_F(RedisStoreTest, KeyTtlFollowsTheLatestBinding) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto store = open(server);
  ASSERT_TRUE(runner.waitReady(*store));
  Inspector redis(server.port());
  const std::string loc = "evosip:loc:a@x";
  ASSERT_TRUE(runner.call<void>(
      [&](auto cb) { store->putBinding(binding("a@x", "sip:long@x", 3600s), cb); }));
  ASSERT_TRUE(runner.call<void>(
      [&](auto cb) { store->putBinding(binding("a@x", "sip:short@x", 60s), cb); }));
  EXPECT_GT(redis.integer("PTTL", loc), 3500 * 1000);
  // Re-registering the long one with a short expiry shortens the key's life too.
  ASSERT_TRUE(runner.call<void>(
      [&](auto cb) { store->putBinding(binding("a@x", "sip:long@x", 30s), cb); }));
  long long ttl = redis.integer("PTTL", loc);
  EXPECT_GT(ttl, 50 * 1000);
  EXPECT_LE(ttl, 60 * 1000);
  EXPECT_EQ(redis.integer("HLEN", loc), 2);
}

// Replies far larger than hiredis' 16 KiB read size arrive whole (the adapter keeps reading while
// the socket stays readable, although Asio reports readiness edge-triggered).
TEST_F(RedisStoreTest, LargeRepliesArriveWhole) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto store = open(server, {}, 5000ms);
  ASSERT_TRUE(runner.waitReady(*store));
  for (int i = 0; i < 300; ++i) {
    Binding b = binding("big@x", "sip:" + std::to_string(i) + "@x", 60s);
    b.userAgent = std::string(400, 'u');
    store->putBinding(b, [](Result<void> r) { EXPECT_TRUE(r); });
  }
  auto got = runner.call<std::vector<Binding>>([&](auto cb) { store->getBindings("big@x", cb); });
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->size(), 300u);
}

TEST_F(RedisStoreTest, UnreachableServerAnswersUnavailableAtOnce) {
  RedisServer server;  // never started: nothing listens on its port
  auto store = open(server);
  for (int i = 0; i < 5; ++i) {
    auto r = pingNow(*store);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kUnavailable) << r.error().message;
    runner.run(50ms, [] { return false; });  // let it retry in between
  }
  EXPECT_FALSE(store->connected());
}

TEST_F(RedisStoreTest, RecoversAfterTheServerIsKilledAndRestarted) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto store = open(server);
  ASSERT_TRUE(runner.waitReady(*store));
  auto b = binding("a@x", "sip:1@x", 3600s);
  ASSERT_TRUE(runner.call<void>([&](auto cb) { store->putBinding(b, cb); }));

  server.kill(SIGKILL);
  // The loss is noticed (EOF on the socket), then every operation fails at once.
  ASSERT_TRUE(runner.run(2000ms, [&] { return !store->connected(); }));
  for (int i = 0; i < 3; ++i) {
    auto r = runner.call<std::vector<Binding>>([&](auto cb) { store->getBindings("a@x", cb); });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kUnavailable);
    auto now = pingNow(*store);
    ASSERT_FALSE(now);
    EXPECT_EQ(now.error().code, Errc::kUnavailable);
  }

  ASSERT_TRUE(server.start());  // same port
  ASSERT_TRUE(runner.waitReady(*store, 3000ms)) << "no recovery within 3 s";
  EXPECT_TRUE(store->connected());
  // No persistence: the restarted server is empty, and the store works again.
  EXPECT_TRUE(
      runner.call<std::vector<Binding>>([&](auto cb) { store->getBindings("a@x", cb); })->empty());
  ASSERT_TRUE(runner.call<void>([&](auto cb) { store->putBinding(b, cb); }));
  auto got = runner.call<std::vector<Binding>>([&](auto cb) { store->getBindings("a@x", cb); });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), 1u);
}

// With traffic, recovery does not wait for the back-off: a command while disconnected makes the
// connection try again at once (at most once per reconnectMin).
TEST_F(RedisStoreTest, ACommandWhileDisconnectedReconnectsWithoutWaitingForTheBackOff) {
  RedisServer server;  // not started yet: every attempt fails and the back-off grows
  RedisSettings s;
  s.port = server.port();
  s.reconnectMin = 20ms;
  s.reconnectMax = 30s;
  s.commandTimeout = 300ms;
  s.connectTimeout = 300ms;
  auto store = std::make_unique<RedisStore>(s, runner.io.get_executor());
  // Attempts at about 0, 20, 60, 140, 300, 620, 1260 and 2540 ms: the next is ~2.5 s later.
  runner.run(2700ms, [] { return false; });
  ASSERT_FALSE(store->connected());
  ASSERT_TRUE(server.start());
  auto r = pingNow(*store);
  ASSERT_FALSE(r);  // this one still fails at once, and starts the attempt
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  EXPECT_TRUE(runner.run(1000ms, [&] { return store->connected(); }))
      << "no reconnect within 1 s of a command; the back-off alone would take ~2.5 s";
}

TEST_F(RedisStoreTest, ServerThatStopsAnsweringGivesTimeoutsThenRecovers) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto store = open(server);
  ASSERT_TRUE(runner.waitReady(*store));

  server.kill(SIGSTOP);
  auto r = runner.call<void>([&](auto cb) { store->ping(cb); });
  server.kill(SIGCONT);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTimeout) << r.error().message;
  ASSERT_TRUE(runner.waitReady(*store, 3000ms));
}

TEST_F(RedisStoreTest, PendingOperationsCompleteWhenTheStoreIsDestroyed) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto store = open(server);
  ASSERT_TRUE(runner.waitReady(*store));
  server.kill(SIGSTOP);
  std::optional<Result<void>> out;
  store->ping([&](Result<void> r) { out = std::move(r); });
  runner.io.restart();
  runner.io.poll();  // sends it
  store.reset();
  server.kill(SIGCONT);
  ASSERT_TRUE(runner.run(1000ms, [&] { return out.has_value(); }));
  ASSERT_FALSE(*out);
  EXPECT_EQ(out->error().code, Errc::kUnavailable);
}

TEST_F(RedisStoreTest, AuthenticatesAndSelectsTheDatabase) {
  RedisServer server({"--requirepass", "s3cret"});
  ASSERT_TRUE(server.start());
  RedisSettings s;
  s.password = "s3cret";
  s.db = 3;
  auto store = open(server, s);
  ASSERT_TRUE(runner.waitReady(*store));
  ASSERT_TRUE(
      runner.call<void>([&](auto cb) { store->putBinding(binding("a@x", "sip:1@x", 60s), cb); }));
  Inspector db3(server.port(), "s3cret", 3);
  EXPECT_EQ(db3.integer("HLEN", "evosip:loc:a@x"), 1);
  Inspector db0(server.port(), "s3cret", 0);
  EXPECT_EQ(db0.integer("EXISTS", "evosip:loc:a@x"), 0);
}

TEST_F(RedisStoreTest, WrongPasswordStaysUnavailable) {
  RedisServer server({"--requirepass", "s3cret"});
  ASSERT_TRUE(server.start());
  RedisSettings s;
  s.password = "wrong";
  auto store = open(server, s);
  EXPECT_FALSE(runner.waitReady(*store, 500ms));
  auto r = pingNow(*store);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
}

TEST_F(RedisStoreTest, FactoryOpensOneConnectionPerExecutor) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  Settings settings;
  settings.backend = "redis";
  settings.redis.port = server.port();
  auto factory = makeStoreFactory(settings);
  auto a = factory->open(runner.io.get_executor());
  auto b = factory->open(runner.io.get_executor());
  ASSERT_TRUE(runner.waitReady(*a));
  ASSERT_TRUE(runner.waitReady(*b));
  ASSERT_TRUE(
      runner.call<void>([&](auto cb) { a->putBinding(binding("a@x", "sip:1@x", 60s), cb); }));
  auto got = runner.call<std::vector<Binding>>([&](auto cb) { b->getBindings("a@x", cb); });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), 1u);
  Settings bad;
  bad.backend = "etcd";
  EXPECT_THROW(makeStoreFactory(bad), std::invalid_argument);
}

}  // namespace
}  // namespace evosip::store
