#include <pthread.h>
#include <signal.h>

#include <gtest/gtest.h>

#include <evosip/runtime/signals.hpp>

namespace evosip::runtime {
namespace {

class SignalsTest : public ::testing::Test {
 protected:
  void SetUp() override { pthread_sigmask(SIG_SETMASK, nullptr, &saved_); }
  void TearDown() override { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  sigset_t saved_;
};

TEST_F(SignalsTest, WaitReturnsTheStopSignalSentToThisThread) {
  blockStopSignals();
  // Directed at this thread only: the other threads of the test binary are not affected.
  ASSERT_EQ(pthread_kill(pthread_self(), SIGTERM), 0);
  EXPECT_EQ(waitForStopSignal(), SIGTERM);
  ASSERT_EQ(pthread_kill(pthread_self(), SIGINT), 0);
  EXPECT_EQ(waitForStopSignal(), SIGINT);
}

TEST_F(SignalsTest, BlockedSignalsStayPendingUntilWaited) {
  blockStopSignals();
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  EXPECT_TRUE(sigismember(&mask, SIGTERM));
  EXPECT_TRUE(sigismember(&mask, SIGINT));
  ASSERT_EQ(pthread_kill(pthread_self(), SIGTERM), 0);
  sigset_t pending;
  sigpending(&pending);
  EXPECT_TRUE(sigismember(&pending, SIGTERM));
  EXPECT_EQ(waitForStopSignal(), SIGTERM);
}

}  // namespace
}  // namespace evosip::runtime
