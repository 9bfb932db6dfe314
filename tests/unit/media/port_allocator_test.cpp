#include <set>

#include <gtest/gtest.h>

#include <evosip/media/port_allocator.hpp>

namespace evosip::media {
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

TEST(PortAllocator, ReuseAfterReleaseAndWrapAround) {
  PortAllocator a({40000, 40005});
  EXPECT_EQ(*a.allocate(), 40000);
  EXPECT_EQ(*a.allocate(), 40002);
  a.release(40000);
  // The cursor goes on to the end of the range first, then wraps to the released pair.
  EXPECT_EQ(*a.allocate(), 40004);
  EXPECT_EQ(*a.allocate(), 40000);
  EXPECT_FALSE(a.allocate());
  a.release(40002);
  EXPECT_EQ(*a.allocate(), 40002);
}

TEST(PortAllocator, ReleaseIgnoresForeignAndOddPorts) {
  PortAllocator a({40000, 40003});
  EXPECT_EQ(*a.allocate(), 40000);
  a.release(40001);  // RTCP port, not a pair start
  a.release(39998);
  a.release(40002);  // free already
  EXPECT_EQ(a.inUse(), 1u);
  a.release(40000);
  a.release(40000);
  EXPECT_EQ(a.inUse(), 0u);
}

}  // namespace
}  // namespace evosip::media
