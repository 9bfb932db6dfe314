// What only the memory backend does: sweeping, sharing one database between workers, and its
// footprint.

#include <atomic>
#include <iostream>
#include <malloc.h>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/store/memory_store.hpp>

#include "store_fixture.hpp"

namespace evosip::store {
namespace {

using namespace std::chrono_literals;

struct ManualWallClock {
  std::atomic<int64_t> ms{1'700'000'000'000};
  NowFn fn() {
    return [this] { return TimePoint(std::chrono::milliseconds(ms.load())); };
  }
  TimePoint now() const { return TimePoint(std::chrono::milliseconds(ms.load())); }
};

Binding makeBinding(int i, TimePoint expires) {
  Binding b;
  b.aor = "user" + std::to_string(100000 + i) + "@example.com";
  b.contact = "sip:user" + std::to_string(100000 + i) + "@192.168.17.23:50602;transport=udp";
  b.path = {"<sip:10.0.0.5:5060;lr;ob>"};
  b.expires = expires;
  b.callId = "a84b4c76e66710" + std::to_string(i) + "@pc33.example.com";
  b.cseq = 1826;
  b.instanceId = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";
  b.regId = 1;
  b.received = "udp:203.0.113.7:50602";
  b.userAgent = "Linphone/5.2.0 (belle-sip/5.2.0)";
  b.router = "router-0";
  return b;
}

DialogRecord makeDialog(int i, TimePoint now) {
  DialogRecord d;
  d.id = {"3848276298220188511-" + std::to_string(i) + "@atlanta.example.com", "9fxced76sl",
          "314159" + std::to_string(i)};
  d.callerRouteSet = {"<sip:10.0.0.5:5060;lr>", "<sip:10.0.1.9:5060;lr;ftag=9fxced76sl>"};
  d.calleeRouteSet = {"<sip:10.0.1.9:5060;lr;ftag=9fxced76sl>", "<sip:10.0.0.5:5060;lr>"};
  d.callerContact = "sip:alice@192.168.17.23:50602;transport=udp";
  d.calleeContact = "sip:bob@192.168.17.24:50604;transport=udp";
  d.callerCseq = 314159;
  d.calleeCseq = 1;
  d.owner = "router-0";
  d.created = now;
  d.expires = now + 3h;
  d.mediaRelay = "media-0:3848276298220188511-" + std::to_string(i);
  return d;
}

TEST(MemoryStore, SweepDropsWhatExpired) {
  ManualWallClock clock;
  MemoryDatabase db(MemorySettings{.shards = 4, .sweepInterval = 0ms, .now = clock.fn()});
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(db.putBinding(makeBinding(i, clock.now() + std::chrono::seconds(10 + i))));
    ASSERT_TRUE(db.putDialog(makeDialog(i, clock.now())));
    ASSERT_TRUE(db.checkAndSetNonceCount("n" + std::to_string(i), 1, 5s));
  }
  EXPECT_EQ(db.counts().bindings, 10u);
  EXPECT_EQ(db.sweep(), 0u);
  clock.ms += 14'500;  // the nonces and the first 5 bindings
  EXPECT_EQ(db.sweep(), 15u);
  auto c = db.counts();
  EXPECT_EQ(c.bindings, 5u);
  EXPECT_EQ(c.aors, 5u);
  EXPECT_EQ(c.nonces, 0u);
  EXPECT_EQ(c.dialogs, 10u);
  clock.ms += 4 * 3600 * 1000;
  db.sweep();
  c = db.counts();
  EXPECT_EQ(c.bindings + c.aors + c.dialogs + c.nonces, 0u);
}

TEST(MemoryStore, ExpiredNonceStartsAfresh) {
  ManualWallClock clock;
  MemoryDatabase db(MemorySettings{.now = clock.fn()});
  EXPECT_TRUE(db.checkAndSetNonceCount("n", 5, 1s).value());
  EXPECT_FALSE(db.checkAndSetNonceCount("n", 5, 1s).value());
  clock.ms += 1001;
  EXPECT_TRUE(db.checkAndSetNonceCount("n", 1, 1s).value());
}

TEST(MemoryStore, StoresRunTheirPeriodicSweep) {
  ManualWallClock clock;
  auto db = std::make_shared<MemoryDatabase>(
      MemorySettings{.shards = 2, .sweepInterval = 10ms, .now = clock.fn()});
  test::StoreRunner runner;
  MemoryStore store(db, runner.io.get_executor());
  ASSERT_TRUE(db->putBinding(makeBinding(1, clock.now() + 1s)));
  clock.ms += 2000;
  EXPECT_TRUE(runner.run(2000ms, [&] { return db->counts().bindings == 0; }));
}

// Several workers, one database: every write is seen by every worker.
TEST(MemoryStore, WorkersShareOneDatabase) {
  ManualWallClock clock;
  Settings settings;
  settings.memory.now = clock.fn();
  auto factory = makeStoreFactory(settings);
  constexpr int kWorkers = 4;
  constexpr int kPerWorker = 500;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      test::StoreRunner runner;
      auto store = factory->open(runner.io.get_executor());
      for (int i = 0; i < kPerWorker; ++i) {
        Binding b = makeBinding(i, clock.now() + 60s);  // the same AoRs on every worker
        b.contact = "sip:w" + std::to_string(w) + "@x";
        if (!runner.call<void>([&](auto cb) { store->putBinding(b, cb); })) {
          ++failures;
        }
        auto got =
            runner.call<std::vector<Binding>>([&](auto cb) { store->getBindings(b.aor, cb); });
        if (!got || got->empty()) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  test::StoreRunner runner;
  auto store = factory->open(runner.io.get_executor());
  auto got = runner.call<std::vector<Binding>>(
      [&](auto cb) { store->getBindings(makeBinding(7, {}).aor, cb); });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), size_t(kWorkers));
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// Heap bytes per entry with 100k entries (glibc mallinfo2: allocated bytes, including the
// allocator's per-chunk overhead). Realistic field sizes: see makeBinding/makeDialog.
TEST(MemoryStore, FootprintPerBindingAndPerDialog) {
  if (kSanitized) {
    GTEST_SKIP() << "sanitizer allocators distort the figures";
  }
  constexpr int kEntries = 100'000;
  const TimePoint now = TimePoint(std::chrono::milliseconds(1'700'000'000'000));
  MemoryDatabase db(MemorySettings{.sweepInterval = 0ms, .now = [now] { return now; }});
  // Field values are built before measuring, so only what the store keeps is counted.
  std::vector<Binding> bindings;
  bindings.reserve(kEntries);
  for (int i = 0; i < kEntries; ++i) {
    bindings.push_back(makeBinding(i, now + 3600s));
  }
  size_t before = mallinfo2().uordblks;
  for (auto& b : bindings) {
    ASSERT_TRUE(db.putBinding(b));
  }
  const double perBinding = double(mallinfo2().uordblks - before) / kEntries;
  bindings.clear();
  bindings.shrink_to_fit();

  std::vector<DialogRecord> dialogs;
  dialogs.reserve(kEntries);
  for (int i = 0; i < kEntries; ++i) {
    dialogs.push_back(makeDialog(i, now));
  }
  before = mallinfo2().uordblks;
  for (auto& d : dialogs) {
    ASSERT_TRUE(db.putDialog(d));
  }
  const double perDialog = double(mallinfo2().uordblks - before) / kEntries;
  std::cout << "memory store: " << perBinding << " bytes per binding, " << perDialog
            << " bytes per dialog (100k each)\n";
  RecordProperty("bytes_per_binding", std::to_string(perBinding));
  RecordProperty("bytes_per_dialog", std::to_string(perDialog));
  EXPECT_LT(perBinding, 1024.0);
  EXPECT_LT(perDialog, 4096.0);
  EXPECT_EQ(db.counts().bindings, size_t(kEntries));
  EXPECT_EQ(db.counts().dialogs, size_t(kEntries));
}

}  // namespace
}  // namespace evosip::store
