#include <set>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/rtp/port_allocator.hpp>

namespace evosip::rtp {
namespace {

TEST(SplitPortRange, DisjointEvenAlignedSubRangesCoverTheRange) {
  auto r = splitPortRange(30001, 30100, 3);  // odd min: the first pair starts at 30002
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].first, 30002);
  size_t pairs = 0;
  for (size_t i = 0; i < r->size(); ++i) {
    const PortRange& p = (*r)[i];
    EXPECT_EQ(p.first % 2, 0);
    EXPECT_EQ(p.last % 2, 1);
    EXPECT_LE(p.last, 30100);
    if (i > 0) {
      EXPECT_EQ(p.first, (*r)[i - 1].last + 1);
    }
    pairs += p.pairs();
  }
  EXPECT_EQ(pairs, 49u);  // 30002..30099
}

TEST(SplitPortRange, TooFewPairsForTheWorkers) {
  EXPECT_FALSE(splitPortRange(30000, 30003, 3));
  EXPECT_FALSE(splitPortRange(30001, 30001, 1));
  EXPECT_TRUE(splitPortRange(30000, 30001, 1));
  EXPECT_FALSE(splitPortRange(30000, 30010, 0));
}

TEST(PortAllocator, EvenRtpPortsThenExhaustion) {
  PortAllocator a({40000, 40005});  // three pairs
  std::set<uint16_t> got;
  for (int i = 0; i < 3; ++i) {
    auto p = a.allocate();
    ASSERT_TRUE(p);
    EXPECT_EQ(*p % 2, 0);
    EXPECT_GE(*p, 40000);
    EXPECT_LE(*p + 1, 40005);
    got.insert(*p);
  }
  EXPECT_EQ(got.size(), 3u);
  EXPECT_EQ(a.inUse(), 3u);
  auto none = a.allocate();
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::kUnavailable);
}

TEST(PortAllocator, ReuseAfterRelease) {
  PortAllocator a({40000, 40005});
  std::set<uint16_t> got{*a.allocate(), *a.allocate(), *a.allocate()};
  EXPECT_EQ(got, (std::set<uint16_t>{40000, 40002, 40004}));
  EXPECT_FALSE(a.allocate());
  a.release(40002);
  EXPECT_EQ(a.available(), 1u);
  EXPECT_EQ(*a.allocate(), 40002);
  EXPECT_FALSE(a.allocate());
}

TEST(PortAllocator, PairsAreHandedOutAtRandom) {
  // 1,000 pairs: the chance that 20 random picks come out in the old round-robin order (or that
  // two allocators agree on all of them) is nil.
  PortAllocator a({20000, 21999});
  PortAllocator b({20000, 21999});
  std::vector<uint16_t> fromA, fromB;
  for (int i = 0; i < 20; ++i) {
    fromA.push_back(*a.allocate());
    fromB.push_back(*b.allocate());
  }
  size_t sequential = 0;
  for (size_t i = 1; i < fromA.size(); ++i) {
    sequential += fromA[i] == fromA[i - 1] + 2 ? 1 : 0;
  }
  EXPECT_LT(sequential, 5u);
  EXPECT_NE(fromA, fromB);
  EXPECT_EQ(std::set<uint16_t>(fromA.begin(), fromA.end()).size(), 20u);
  // Every pair is still handed out exactly once.
  std::set<uint16_t> all(fromA.begin(), fromA.end());
  while (auto p = a.allocate()) {
    EXPECT_TRUE(all.insert(*p).second);
  }
  EXPECT_EQ(all.size(), 1000u);
}

TEST(PortAllocator, ReleaseIgnoresForeignAndOddPorts) {
  PortAllocator a({40000, 40003});
  const uint16_t p = *a.allocate();
  const uint16_t other = p == 40000 ? 40002 : 40000;
  a.release(p + 1);  // RTCP port, not a pair start
  a.release(39998);
  a.release(other);  // free already
  EXPECT_EQ(a.inUse(), 1u);
  EXPECT_EQ(a.available(), 1u);
  a.release(p);
  a.release(p);
  EXPECT_EQ(a.inUse(), 0u);
  EXPECT_EQ(a.available(), 2u);
}

// A pair a socket already holds (a call restored after a restart) is never handed out until it
// is released; reserving is refused for a pair taken, outside the range or not an RTP port.
TEST(PortAllocator, ReservedPairsAreNotHandedOutUntilReleased) {
  PortAllocator a({40000, 40009});  // five pairs
  EXPECT_TRUE(a.reserve(40004));
  EXPECT_TRUE(a.reserve(40008));
  EXPECT_FALSE(a.reserve(40004));  // taken already
  EXPECT_FALSE(a.reserve(40005));  // an RTCP port
  EXPECT_FALSE(a.reserve(40010));  // outside the range
  EXPECT_EQ(a.inUse(), 2u);
  std::set<uint16_t> got;
  while (auto p = a.allocate()) {
    got.insert(*p);
  }
  EXPECT_EQ(got, (std::set<uint16_t>{40000, 40002, 40006}));
  a.release(40004);
  EXPECT_EQ(*a.allocate(), 40004);
  a.release(40002);
  a.release(40000);
  EXPECT_TRUE(a.reserve(40000));  // a pair freed after the others moved around free_
  EXPECT_EQ(*a.allocate(), 40002);
  EXPECT_FALSE(a.allocate());
  EXPECT_EQ(a.inUse(), 5u);
}

}  // namespace
}  // namespace evosip::rtp
