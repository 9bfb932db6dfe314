// The pacing thread against a real socket, on the real clock (its sleeps are the point): every
// wait is bounded.
#include <arpa/inet.h>
#include <manual_clock.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <evosip/app/pacing_thread.hpp>

namespace evosip::app {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class PacingThreadTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    rx_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    tx_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    to_.sin_family = AF_INET;
    to_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(rx_, reinterpret_cast<sockaddr*>(&to_), sizeof to_), 0);
    socklen_t len = sizeof to_;
    ::getsockname(rx_, reinterpret_cast<sockaddr*>(&to_), &len);
  }
  void TearDown() override {
    ::close(rx_);
    ::close(tx_);
  }
  void add(PacingThread::Tick& t, uint8_t tag) {
    const uint8_t data[3] = {tag, tag, tag};
    ASSERT_TRUE(PacingThread::add(t, tx_, reinterpret_cast<const sockaddr*>(&to_), sizeof to_,
                                  std::span<const uint8_t>(data, 3)));
  }
  // The first byte of every datagram received so far.
  std::vector<uint8_t> received() {
    std::vector<uint8_t> out;
    uint8_t buf[64];
    while (::recv(rx_, buf, sizeof buf, 0) > 0) {
      out.push_back(buf[0]);
    }
    return out;
  }
  static bool waitFor(const std::function<bool()>& pred) {
    const auto end = Clock::now() + 2s;
    while (!pred() && Clock::now() < end) {
      std::this_thread::sleep_for(1ms);
    }
    return pred();
  }

  int rx_ = -1, tx_ = -1;
  sockaddr_in to_{};
};

TEST_P(PacingThreadTest, SendsEachTickAtItsDueTimeInOrder) {
  PacingThread::Settings s;
  s.ioUring = GetParam();
  s.submitChunk = 2;  // several submissions in one tick
  PacingThread sender(s, runtime::SteadyClock::instance());
  sender.start();
  const auto t0 = Clock::now() + 20ms;
  for (uint64_t i = 0; i < 3; ++i) {
    auto* t = sender.prepare(10 + i, t0 + i * 5ms);
    ASSERT_NE(t, nullptr);
    for (uint8_t k = 0; k < 3; ++k) {
      add(*t, static_cast<uint8_t>(i * 10 + k));
    }
    sender.publish();
  }
  // Nothing leaves before its due time.
  EXPECT_TRUE(received().empty());
  EXPECT_EQ(sender.sentBelow(), 0u);
  ASSERT_TRUE(waitFor([&] { return sender.sentBelow() == 13; }));
  EXPECT_GE(Clock::now(), t0 + 10ms);
  EXPECT_EQ(received(), (std::vector<uint8_t>{0, 1, 2, 10, 11, 12, 20, 21, 22}));
  EXPECT_EQ(sender.stats().sent.load(), 9u);
  EXPECT_EQ(sender.stats().failed.load(), 0u);
  EXPECT_EQ(sender.backlog(), 0u);
}

TEST_P(PacingThreadTest, IdleSenderWakesForTheNextPublishedTick) {
  PacingThread::Settings s;
  s.ioUring = GetParam();
  PacingThread sender(s, runtime::SteadyClock::instance());
  sender.start();
  std::this_thread::sleep_for(5ms);  // let it go idle (blocked on the futex)
  auto* t = sender.prepare(1, Clock::now());
  ASSERT_NE(t, nullptr);
  add(*t, 7);
  sender.publish();
  ASSERT_TRUE(waitFor([&] { return sender.sentBelow() == 2; }));
  EXPECT_EQ(received(), std::vector<uint8_t>{7});
}

TEST_P(PacingThreadTest, AFullRingRefusesAndStopReleasesEverything) {
  PacingThread::Settings s;
  s.ioUring = GetParam();
  s.ring = 4;
  PacingThread sender(s, runtime::SteadyClock::instance());  // not started: nothing is consumed
  for (uint64_t i = 0; i < 4; ++i) {
    auto* t = sender.prepare(i, Clock::now() + 1h);
    ASSERT_NE(t, nullptr);
    add(*t, 1);
    sender.publish();
  }
  EXPECT_EQ(sender.prepare(4, Clock::now() + 1h), nullptr);
  EXPECT_EQ(sender.backlog(), 4u);
  sender.start();
  sender.stop();  // the ticks an hour away are dropped, not waited for
  EXPECT_EQ(sender.sentBelow(), UINT64_MAX);
  EXPECT_TRUE(received().empty());
}

TEST_P(PacingThreadTest, WithoutTheThreadSendDueSendsWhatIsDueOnTheCallersClock) {
  evosip::test::ManualClock clock;
  PacingThread::Settings s;
  s.thread = false;
  s.ioUring = GetParam();
  PacingThread sender(s, clock);
  sender.start();
  for (uint64_t i = 0; i < 3; ++i) {
    auto* t = sender.prepare(i, clock.now() + std::chrono::milliseconds(10 * (i + 1)));
    ASSERT_NE(t, nullptr);
    add(*t, static_cast<uint8_t>(i));
    sender.publish();
  }
  sender.sendDue(clock.now());
  EXPECT_TRUE(received().empty());
  EXPECT_EQ(sender.sentBelow(), 0u);
  clock.advance(20ms);
  sender.sendDue(clock.now());
  EXPECT_EQ(received(), (std::vector<uint8_t>{0, 1}));
  EXPECT_EQ(sender.sentBelow(), 2u);
  clock.advance(10ms);
  sender.sendDue(clock.now());
  EXPECT_EQ(received(), (std::vector<uint8_t>{2}));
  EXPECT_EQ(sender.stats().sent.load(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Sends, PacingThreadTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "io_uring" : "sendto"; });

}  // namespace
}  // namespace evosip::app
