#include <gtest/gtest.h>

#include <evosip/runtime/clock.hpp>

namespace evosip::runtime {
namespace {

TEST(ClockTest, SteadyClockIsOneInstanceAndMonotonic) {
  Clock& clock = SteadyClock::instance();
  EXPECT_EQ(&clock, &SteadyClock::instance());
  auto a = clock.now();
  auto b = clock.now();
  EXPECT_LE(a, b);
}

}  // namespace
}  // namespace evosip::runtime
