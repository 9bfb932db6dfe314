#include <deque>
#include <manual_clock.hpp>
#include <memory>

#include <gtest/gtest.h>

#include <evosip/auth/credential_cache.hpp>

namespace evosip::auth {
namespace {

using std::chrono::seconds;

// The API, answering when the test says so.
struct FakeApi {
  struct Request {
    std::string domain, user;
    std::function<void(CredentialLookup)> done;
  };
  std::deque<Request> requests;

  CredentialCache::Fetcher fetcher() {
    return [this](const std::string& domain, const std::string& user,
                  std::function<void(CredentialLookup)> done) {
      requests.push_back({domain, user, std::move(done)});
    };
  }
  void answer(CredentialLookup value) {
    ASSERT_FALSE(requests.empty());
    auto r = std::move(requests.front());
    requests.pop_front();
    r.done(std::move(value));
  }
};

CredentialLookup found(std::string md5, std::string sha = "sha") {
  return {CredentialStatus::kFound, Credentials(std::move(md5), std::move(sha))};
}
CredentialLookup unknown() {
  return {CredentialStatus::kUnknownUser, {}};
}
CredentialLookup unavailable() {
  return {CredentialStatus::kUnavailable, {}};
}

class CredentialCacheTest : public ::testing::Test {
 protected:
  // The answers of get(), in order: "md5 value" for found, "unknown", "unavailable".
  void get(std::string_view domain, std::string_view user) {
    cache_.get(domain, user, [this](const CredentialLookup& r) {
      switch (r.status) {
        case CredentialStatus::kFound:
          answers_.push_back(r.credentials.ha1Md5 + "/" + r.credentials.ha1Sha256);
          break;
        case CredentialStatus::kUnknownUser:
          answers_.push_back("unknown");
          break;
        case CredentialStatus::kUnavailable:
          answers_.push_back("unavailable");
          break;
      }
    });
  }
  std::vector<std::string> take() { return std::exchange(answers_, {}); }

  test::ManualClock clock_;
  FakeApi api_;
  CredentialCache cache_{
      {.ttl = seconds(300), .negativeTtl = seconds(30), .maxEntries = 3}, clock_, api_.fetcher()};
  std::vector<std::string> answers_;
};

TEST_F(CredentialCacheTest, FetchesOnceThenAnswersFromTheCacheUntilTheTtl) {
  get("evosip.local", "alice");
  EXPECT_TRUE(take().empty());  // waiting for the API
  ASSERT_EQ(api_.requests.size(), 1u);
  EXPECT_EQ(api_.requests[0].domain, "evosip.local");
  EXPECT_EQ(api_.requests[0].user, "alice");
  api_.answer(found("m1", "s1"));
  EXPECT_EQ(take(), std::vector<std::string>{"m1/s1"});

  clock_.advance(seconds(299));
  get("evosip.local", "alice");
  EXPECT_EQ(take(), std::vector<std::string>{"m1/s1"});
  EXPECT_TRUE(api_.requests.empty());
  EXPECT_EQ(cache_.peek("evosip.local", "alice")->credentials.ha1(DigestAlgorithm::kSha256), "s1");

  clock_.advance(seconds(1));
  EXPECT_FALSE(cache_.peek("evosip.local", "alice").has_value());
  get("evosip.local", "alice");
  EXPECT_EQ(api_.requests.size(), 1u);
  api_.answer(found("m2", "s2"));
  EXPECT_EQ(take(), std::vector<std::string>{"m2/s2"});
  EXPECT_EQ(cache_.stats().fetches, 2u);
  EXPECT_EQ(cache_.stats().hits, 1u);
}

TEST_F(CredentialCacheTest, UnknownUsersAreCachedForTheShorterTtl) {
  get("evosip.local", "mallory");
  api_.answer(unknown());
  clock_.advance(seconds(29));
  get("evosip.local", "mallory");
  EXPECT_EQ(take(), (std::vector<std::string>{"unknown", "unknown"}));
  EXPECT_TRUE(api_.requests.empty());
  clock_.advance(seconds(1));
  get("evosip.local", "mallory");
  EXPECT_EQ(api_.requests.size(), 1u);
}

TEST_F(CredentialCacheTest, AStaleAnswerIsKeptOnlyUntilTheApiIsAskedAgain) {
  get("evosip.local", "alice");
  CredentialLookup stale = found("old");
  stale.stale = true;  // the API was down; the fetcher answered what it last knew
  api_.answer(stale);
  EXPECT_EQ(take(), std::vector<std::string>{"old/sha"});
  clock_.advance(seconds(9));
  get("evosip.local", "alice");
  EXPECT_EQ(take(), std::vector<std::string>{"old/sha"});
  EXPECT_TRUE(api_.requests.empty());
  clock_.advance(seconds(1));
  get("evosip.local", "alice");
  ASSERT_EQ(api_.requests.size(), 1u) << "asked again after staleRetry, not after the ttl";
  api_.answer(found("new"));
  EXPECT_EQ(take(), std::vector<std::string>{"new/sha"});
}

TEST_F(CredentialCacheTest, ApiFailuresAreNotCached) {
  get("evosip.local", "alice");
  api_.answer(unavailable());
  get("evosip.local", "alice");
  EXPECT_EQ(take(), std::vector<std::string>{"unavailable"});
  EXPECT_EQ(api_.requests.size(), 1u);  // asked again at once
  api_.answer(found("m1"));
  EXPECT_EQ(take(), std::vector<std::string>{"m1/sha"});
  EXPECT_EQ(cache_.stats().failures, 1u);
}

TEST_F(CredentialCacheTest, ConcurrentRequestsShareOneFetch) {
  get("evosip.local", "alice");
  get("evosip.local", "alice");
  get("EVOSIP.LOCAL", "alice");  // domains compare case-insensitively
  get("evosip.local", "bob");
  get("evosip.local", "Alice");  // users do not
  EXPECT_EQ(api_.requests.size(), 3u);
  EXPECT_EQ(cache_.inFlight(), 3u);
  EXPECT_EQ(cache_.stats().coalesced, 2u);
  api_.answer(found("alice"));
  EXPECT_EQ(take(), (std::vector<std::string>{"alice/sha", "alice/sha", "alice/sha"}));
  api_.answer(unknown());
  api_.answer(unavailable());
  EXPECT_EQ(take(), (std::vector<std::string>{"unknown", "unavailable"}));
  EXPECT_EQ(cache_.inFlight(), 0u);
}

TEST_F(CredentialCacheTest, InvalidateDropsOneUser) {
  get("evosip.local", "alice");
  api_.answer(found("old"));
  get("evosip.local", "bob");
  api_.answer(found("bob"));
  take();
  cache_.invalidate("Evosip.Local", "alice");
  EXPECT_FALSE(cache_.peek("evosip.local", "alice").has_value());
  EXPECT_TRUE(cache_.peek("evosip.local", "bob").has_value());
  get("evosip.local", "alice");
  api_.answer(found("new"));
  EXPECT_EQ(take(), std::vector<std::string>{"new/sha"});
}

TEST_F(CredentialCacheTest, InvalidateDuringAFetchDoesNotCacheItsAnswer) {
  get("evosip.local", "alice");
  cache_.invalidate("evosip.local", "alice");  // the password changed meanwhile
  get("evosip.local", "alice");                // must not join the old fetch
  EXPECT_EQ(api_.requests.size(), 2u);
  api_.answer(found("old"));
  EXPECT_EQ(take(), std::vector<std::string>{"old/sha"});  // its own waiter still answered
  EXPECT_FALSE(cache_.peek("evosip.local", "alice").has_value());
  api_.answer(found("new"));
  EXPECT_EQ(take(), std::vector<std::string>{"new/sha"});
  EXPECT_EQ(cache_.peek("evosip.local", "alice")->credentials.ha1Md5, "new");
}

TEST_F(CredentialCacheTest, InvalidateAll) {
  get("evosip.local", "alice");
  api_.answer(found("a"));
  get("evosip.local", "bob");
  api_.answer(unknown());
  get("evosip.local", "carol");  // in flight
  cache_.invalidateAll();
  EXPECT_EQ(cache_.size(), 0u);
  EXPECT_EQ(cache_.inFlight(), 0u);
  api_.answer(found("c"));
  EXPECT_EQ(cache_.size(), 0u);
  get("evosip.local", "alice");
  EXPECT_EQ(api_.requests.size(), 1u);
}

TEST_F(CredentialCacheTest, BoundedLeastRecentlyUsedFirst) {
  for (std::string user : {"u1", "u2", "u3"}) {
    get("d", user);
    api_.answer(found(user));
  }
  get("d", "u1");  // u2 is now the least recently used
  get("d", "u4");
  api_.answer(found("u4"));
  EXPECT_EQ(cache_.size(), 3u);
  EXPECT_FALSE(cache_.peek("d", "u2").has_value());
  EXPECT_TRUE(cache_.peek("d", "u1").has_value());
  EXPECT_TRUE(cache_.peek("d", "u3").has_value());
  EXPECT_TRUE(cache_.peek("d", "u4").has_value());
}

TEST_F(CredentialCacheTest, FetcherMayAnswerInline) {
  test::ManualClock clock;
  int fetches = 0;
  CredentialCache cache(
      {}, clock,
      [&](const std::string&, const std::string& user, std::function<void(CredentialLookup)> done) {
        ++fetches;
        done(found(user));
      });
  std::string got;
  cache.get("d", "alice", [&](const CredentialLookup& r) { got = r.credentials.ha1Md5; });
  EXPECT_EQ(got, "alice");
  cache.get("d", "alice", [&](const CredentialLookup& r) { got += "+" + r.credentials.ha1Md5; });
  EXPECT_EQ(got, "alice+alice");
  EXPECT_EQ(fetches, 1);
}

TEST_F(CredentialCacheTest, WaitersMayCallBackIntoTheCache) {
  get("evosip.local", "alice");
  cache_.get("evosip.local", "alice", [this](const CredentialLookup&) {
    cache_.invalidate("evosip.local", "alice");
    get("evosip.local", "alice");
  });
  api_.answer(found("first"));
  EXPECT_EQ(take(), std::vector<std::string>{"first/sha"});
  EXPECT_EQ(api_.requests.size(), 1u);  // the waiter's own request started a new fetch
  api_.answer(found("second"));
  EXPECT_EQ(take(), std::vector<std::string>{"second/sha"});
}

TEST_F(CredentialCacheTest, CompletionAfterTheCacheIsGoneDoesNothing) {
  test::ManualClock clock;
  FakeApi api;
  bool called = false;
  {
    CredentialCache cache({}, clock, api.fetcher());
    cache.get("d", "alice", [&](const CredentialLookup&) { called = true; });
  }
  api.answer(found("late"));
  EXPECT_FALSE(called);
}

TEST_F(CredentialCacheTest, DuplicateCompletionIsIgnored) {
  get("d", "alice");
  auto done = api_.requests.front().done;
  api_.answer(found("first"));
  done(found("second"));
  EXPECT_EQ(take(), std::vector<std::string>{"first/sha"});
  EXPECT_EQ(cache_.peek("d", "alice")->credentials.ha1Md5, "first");
}

}  // namespace
}  // namespace evosip::auth
