#include <manual_clock.hpp>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/auth/shared_credentials.hpp>

namespace evosip::auth {
namespace {

using std::chrono::seconds;

CredentialLookup found(std::string md5) {
  CredentialLookup l;
  l.status = CredentialStatus::kFound;
  l.credentials = Credentials(std::move(md5), "sha");
  return l;
}

CredentialLookup unknown() {
  CredentialLookup l;
  l.status = CredentialStatus::kUnknownUser;
  return l;
}

struct SharedCredentialsTest : ::testing::Test {
  test::ManualClock clock;
  SharedCredentials table{{.ttl = seconds(300), .negativeTtl = seconds(30), .maxEntries = 64},
                          clock};
};

TEST_F(SharedCredentialsTest, AnswerStoredByOneWorkerIsFoundByAnother) {
  table.put("Example.COM", "alice", found("aa"), table.generation());
  auto hit = table.find("example.com", "alice");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->status, CredentialStatus::kFound);
  EXPECT_EQ(hit->credentials.ha1Md5, "aa");
  EXPECT_FALSE(table.find("example.com", "Alice")) << "users compare exactly";
  EXPECT_FALSE(table.find("example.org", "alice"));
}

TEST_F(SharedCredentialsTest, EntriesExpireWithTheirTtl) {
  table.put("d", "alice", found("aa"), table.generation());
  table.put("d", "ghost", unknown(), table.generation());
  clock.advance(seconds(29));
  EXPECT_TRUE(table.find("d", "ghost"));
  clock.advance(seconds(1));
  EXPECT_FALSE(table.find("d", "ghost")) << "unknown users live for the negative TTL";
  EXPECT_TRUE(table.find("d", "alice"));
  clock.advance(seconds(270));
  EXPECT_FALSE(table.find("d", "alice"));
}

TEST_F(SharedCredentialsTest, ExpiredCredentialsOfKnownUsersStayForAnApiOutage) {
  table.put("d", "alice", found("aa"), table.generation());
  table.put("d", "ghost", unknown(), table.generation());
  auto fresh = table.findStale("d", "alice");
  ASSERT_TRUE(fresh);
  EXPECT_FALSE(fresh->stale);
  clock.advance(seconds(300));
  EXPECT_FALSE(table.find("d", "alice")) << "expired: the API is asked again";
  auto stale = table.findStale("d", "alice");
  ASSERT_TRUE(stale) << "kept for staleIfError past the ttl";
  EXPECT_TRUE(stale->stale);
  EXPECT_EQ(stale->credentials.ha1Md5, "aa");
  EXPECT_FALSE(table.findStale("d", "ghost")) << "an unknown user is never answered stale";
  clock.advance(seconds(3599));
  EXPECT_TRUE(table.findStale("d", "alice"));
  clock.advance(seconds(1));
  EXPECT_FALSE(table.findStale("d", "alice"));
}

TEST_F(SharedCredentialsTest, InvalidationDropsStaleCredentialsToo) {
  table.put("d", "alice", found("aa"), table.generation());
  clock.advance(seconds(301));
  table.invalidate("d", "alice");  // the password changed
  EXPECT_FALSE(table.findStale("d", "alice"));
}

TEST(SharedCredentialsStale, ZeroKeepsNothingPastTheTtl) {
  test::ManualClock clock;
  SharedCredentials table{{.ttl = seconds(300), .staleIfError = seconds(0)}, clock};
  table.put("d", "alice", found("aa"), table.generation());
  clock.advance(seconds(300));
  EXPECT_FALSE(table.findStale("d", "alice"));
  EXPECT_FALSE(table.find("d", "alice"));
  EXPECT_EQ(table.size(), 0u) << "dropped at the ttl";
}

TEST_F(SharedCredentialsTest, UnavailableAnswersAreNotStored) {
  table.put("d", "alice", CredentialLookup{}, table.generation());
  EXPECT_FALSE(table.find("d", "alice"));
}

TEST_F(SharedCredentialsTest, FetchInFlightDuringInvalidationIsNotStored) {
  const uint64_t before = table.generation();
  table.invalidate("d", "alice");  // the password changed while the fetch was in flight
  table.put("d", "alice", found("old"), before);
  EXPECT_FALSE(table.find("d", "alice"));
  table.put("d", "alice", found("new"), table.generation());
  EXPECT_EQ(table.find("d", "alice")->credentials.ha1Md5, "new");
}

TEST_F(SharedCredentialsTest, InvalidateDropsOneUserInvalidateAllDropsEveryone) {
  table.put("d", "alice", found("a"), table.generation());
  table.put("d", "bob", found("b"), table.generation());
  table.invalidate("D", "alice");
  EXPECT_FALSE(table.find("d", "alice"));
  EXPECT_TRUE(table.find("d", "bob"));
  table.invalidateAll();
  EXPECT_FALSE(table.find("d", "bob"));
  EXPECT_EQ(table.size(), 0u);
}

TEST_F(SharedCredentialsTest, StaysWithinItsBound) {
  for (int i = 0; i < 1000; ++i) {
    table.put("d", "user" + std::to_string(i), found("x"), table.generation());
  }
  EXPECT_LE(table.size(), 64u);
  table.put("d", "last", found("x"), table.generation());
  EXPECT_TRUE(table.find("d", "last")) << "the newest answer is kept";
}

TEST_F(SharedCredentialsTest, WorkersUseItConcurrently) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string user = "u" + std::to_string(i % 50);
        if (!table.find("d", user)) {
          table.put("d", user, found(user), table.generation());
        }
        if (t == 0 && i % 500 == 0) {
          table.invalidateAll();
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  for (int i = 0; i < 50; ++i) {
    const std::string user = "u" + std::to_string(i);
    if (auto hit = table.find("d", user)) {
      EXPECT_EQ(hit->credentials.ha1Md5, user);
    }
  }
}

}  // namespace
}  // namespace evosip::auth
