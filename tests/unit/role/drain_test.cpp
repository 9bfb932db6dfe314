#include <chrono>
#include <manual_clock.hpp>

#include <gtest/gtest.h>

#include <evosip/role/drain.hpp>

namespace evosip::role {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class DrainTest : public ::testing::Test {
 protected:
  test::ManualClock clock;
  Drain drain{DrainSettings{seconds(30), milliseconds(2000)}, clock};
};

TEST_F(DrainTest, ServesUntilADrainBegins) {
  EXPECT_EQ(drain.state(), DrainState::kServing);
  EXPECT_FALSE(drain.draining());
  EXPECT_FALSE(drain.poll(0, 0));
  clock.advance(seconds(100));
  EXPECT_FALSE(drain.poll(0, 0)) << "a serving instance never exits on its own";
}

TEST_F(DrainTest, AnRpcDrainRefusesNewWorkButNeverExits) {
  EXPECT_TRUE(drain.begin());
  EXPECT_FALSE(drain.begin()) << "draining already";
  EXPECT_EQ(drain.state(), DrainState::kDraining);
  EXPECT_TRUE(drain.draining());
  clock.advance(seconds(3600));
  EXPECT_FALSE(drain.poll(0, 0)) << "only a signal makes the process exit";
  EXPECT_TRUE(drain.end());
  EXPECT_EQ(drain.state(), DrainState::kServing);
}

TEST_F(DrainTest, ASignalExitsOnceNothingIsInProgressForTheIdleTime) {
  EXPECT_TRUE(drain.beginStop());
  EXPECT_EQ(drain.state(), DrainState::kStopping);
  EXPECT_FALSE(drain.poll(3, 0)) << "three calls up";
  clock.advance(seconds(10));
  EXPECT_FALSE(drain.poll(1, 0)) << "one call up";
  clock.advance(seconds(1));
  EXPECT_FALSE(drain.poll(0, 0)) << "the last call just ended: the idle time starts";
  clock.advance(milliseconds(1999));
  EXPECT_FALSE(drain.poll(0, 0));
  clock.advance(milliseconds(1));
  EXPECT_TRUE(drain.poll(0, 0));
  EXPECT_FALSE(drain.timedOut());
}

TEST_F(DrainTest, ArrivalsKeepTheInstanceUpUntilTheyStop) {
  EXPECT_TRUE(drain.beginStop());
  EXPECT_FALSE(drain.poll(0, 100)) << "the first reading of the arrivals is the baseline";
  clock.advance(milliseconds(1500));
  EXPECT_FALSE(drain.poll(0, 101)) << "a request arrived: quiet again from now";
  clock.advance(milliseconds(1500));
  EXPECT_FALSE(drain.poll(0, 101));
  clock.advance(milliseconds(500));
  EXPECT_TRUE(drain.poll(0, 101)) << "2 s without a request";
}

TEST_F(DrainTest, TheTimeoutEndsADrainWithWorkLeft) {
  EXPECT_TRUE(drain.beginStop());
  clock.advance(milliseconds(29999));
  EXPECT_FALSE(drain.poll(5, 0));
  clock.advance(milliseconds(1));
  EXPECT_TRUE(drain.poll(5, 0));
  EXPECT_TRUE(drain.timedOut());
}

TEST_F(DrainTest, WithNoIdleTimeAnInstanceWithoutWorkExitsAtOnce) {
  Drain quick(DrainSettings{seconds(30), milliseconds(0)}, clock);
  EXPECT_TRUE(quick.beginStop());
  EXPECT_TRUE(quick.poll(0, 0));
}

TEST_F(DrainTest, UndrainIsRefusedWhileStopping) {
  EXPECT_TRUE(drain.begin());
  EXPECT_TRUE(drain.beginStop()) << "a signal after an RPC drain starts the stop";
  EXPECT_FALSE(drain.beginStop()) << "a second signal is not a second stop";
  EXPECT_FALSE(drain.end());
  EXPECT_EQ(drain.state(), DrainState::kStopping);
  EXPECT_FALSE(drain.begin());
}

TEST_F(DrainTest, ASignalAfterAnRpcDrainCountsTheQuietTimeFromTheRpc) {
  EXPECT_TRUE(drain.begin());
  EXPECT_FALSE(drain.poll(0, 7));
  clock.advance(seconds(5));
  EXPECT_TRUE(drain.beginStop());
  EXPECT_TRUE(drain.poll(0, 7)) << "quiet for 5 s already";
}

TEST_F(DrainTest, StateNames) {
  EXPECT_EQ(drainStateName(DrainState::kServing), "serving");
  EXPECT_EQ(drainStateName(DrainState::kDraining), "draining");
  EXPECT_EQ(drainStateName(DrainState::kStopping), "stopping");
}

}  // namespace
}  // namespace evosip::role
