#include <map>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/app/sweep.hpp>

namespace evosip::app {
namespace {

std::vector<size_t> tick(RoundRobinSweep& s, size_t size) {
  std::vector<size_t> out;
  s.next(size, [&](size_t i) { out.push_back(i); });
  return out;
}

TEST(RoundRobinSweep, EveryEntryOncePerRoundInShares) {
  RoundRobinSweep s(10);
  std::map<size_t, int> seen;
  for (int t = 0; t < 10; ++t) {
    auto share = tick(s, 2000);
    EXPECT_EQ(share.size(), 200u);  // never all 2,000 in one tick
    for (size_t i : share) {
      ++seen[i];
    }
  }
  ASSERT_EQ(seen.size(), 2000u);
  for (const auto& [i, n] : seen) {
    EXPECT_EQ(n, 1) << i;
  }
}

TEST(RoundRobinSweep, SmallListsAreStillVisitedAndWrap) {
  RoundRobinSweep s(10);
  EXPECT_EQ(tick(s, 3), std::vector<size_t>{0});  // at least one a tick
  EXPECT_EQ(tick(s, 3), std::vector<size_t>{1});
  EXPECT_EQ(tick(s, 3), std::vector<size_t>{2});
  EXPECT_EQ(tick(s, 3), std::vector<size_t>{0});
  EXPECT_TRUE(tick(s, 0).empty());
  EXPECT_EQ(tick(s, 25), (std::vector<size_t>{0, 1, 2}));
}

TEST(RoundRobinSweep, ShrinkingListRestartsInsteadOfRunningOff) {
  RoundRobinSweep s(2);
  EXPECT_EQ(tick(s, 6), (std::vector<size_t>{0, 1, 2}));
  // Three entries went away: the cursor (3) is past the end.
  EXPECT_EQ(tick(s, 3), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(tick(s, 3), (std::vector<size_t>{2, 0}));
}

TEST(RoundRobinSweep, ZeroPartsMeansOnePass) {
  RoundRobinSweep s(0);
  EXPECT_EQ(tick(s, 4).size(), 4u);
}

}  // namespace
}  // namespace evosip::app
