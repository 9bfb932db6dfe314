// Workers that wait in io_uring (WorkerPool::setIoMode): the io_context keeps running what is
// posted to it, its timers and its descriptors, and stops when asked.
#include <atomic>
#include <chrono>
#include <future>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <boost/asio/local/datagram_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>

#include <evosip/runtime/worker_pool.hpp>

namespace evosip::runtime {
namespace {

using namespace std::chrono_literals;

// A pool whose workers wait in io_uring; skipped where the kernel refuses it.
class WorkerRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = std::make_unique<WorkerPool>(2, 1);
    pool_->setIoMode(IoMode::kAuto);
    pool_->start();
    if (pool_->ioMode() != IoMode::kIoUring) {
      GTEST_SKIP() << "io_uring not available: " << pool_->ioFallbackReason();
    }
  }
  void TearDown() override { pool_->stop(); }
  std::unique_ptr<WorkerPool> pool_;
};

TEST_F(WorkerRingTest, WorkPostedFromAnotherThreadRunsOnTheWorker) {
  // Many rounds: each post must wake a worker that sleeps in the ring.
  for (int round = 0; round < 200; ++round) {
    for (size_t i = 0; i < pool_->size(); ++i) {
      std::promise<Worker*> seen;
      auto f = seen.get_future();
      pool_->post(i, [&seen] { seen.set_value(Worker::current()); });
      ASSERT_EQ(f.wait_for(5s), std::future_status::ready) << "round " << round;
      EXPECT_EQ(f.get(), &pool_->at(i));
    }
    if (round % 50 == 0) {
      std::this_thread::sleep_for(5ms);  // let the workers fall asleep
    }
  }
}

TEST_F(WorkerRingTest, TimersFireWhileTheWorkerSleepsInTheRing) {
  std::promise<std::chrono::steady_clock::duration> fired;
  auto f = fired.get_future();
  boost::asio::steady_timer timer(pool_->at(0).io());
  const auto start = std::chrono::steady_clock::now();
  pool_->post(0, [&] {
    timer.expires_after(50ms);
    timer.async_wait([&, start](const boost::system::error_code&) {
      fired.set_value(std::chrono::steady_clock::now() - start);
    });
  });
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  const auto took = f.get();
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 1s);
  pool_->stop();
}

TEST_F(WorkerRingTest, DescriptorsOfTheIoContextStayServed) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
  using Socket = boost::asio::local::datagram_protocol::socket;
  Socket socket(pool_->at(1).io(), boost::asio::local::datagram_protocol(), fds[0]);
  std::promise<std::string> got;
  auto f = got.get_future();
  char buf[64];
  pool_->post(1, [&] {
    socket.async_receive(boost::asio::buffer(buf),
                         [&](const boost::system::error_code& ec, size_t n) {
                           got.set_value(ec ? ec.message() : std::string(buf, n));
                         });
  });
  std::this_thread::sleep_for(20ms);  // the worker sleeps in the ring with the read pending
  ASSERT_EQ(::send(fds[1], "ping", 4, 0), 4);
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), "ping");
  std::promise<void> closed;
  pool_->post(1, [&] {
    socket.close();
    closed.set_value();
  });
  closed.get_future().wait();
  ::close(fds[1]);
}

TEST_F(WorkerRingTest, AHandlerThatThrowsDoesNotStopTheWorker) {
  pool_->post(0, [] { throw std::runtime_error("boom"); });
  std::promise<void> after;
  auto f = after.get_future();
  pool_->post(0, [&after] { after.set_value(); });
  EXPECT_EQ(f.wait_for(5s), std::future_status::ready);
}

TEST_F(WorkerRingTest, StopEndsSleepingWorkersAndTheyStartAgain) {
  std::this_thread::sleep_for(10ms);
  const auto t0 = std::chrono::steady_clock::now();
  pool_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  pool_->start();
  ASSERT_EQ(pool_->ioMode(), IoMode::kIoUring);
  std::promise<void> ran;
  auto f = ran.get_future();
  pool_->post(1, [&ran] { ran.set_value(); });
  EXPECT_EQ(f.wait_for(5s), std::future_status::ready);
}

TEST(WorkerIoModeTest, ParsesTheConfigWords) {
  IoMode m = IoMode::kEpoll;
  EXPECT_TRUE(parseIoMode("auto", m));
  EXPECT_EQ(m, IoMode::kAuto);
  EXPECT_TRUE(parseIoMode("io_uring", m));
  EXPECT_EQ(m, IoMode::kIoUring);
  EXPECT_TRUE(parseIoMode("epoll", m));
  EXPECT_EQ(m, IoMode::kEpoll);
  EXPECT_FALSE(parseIoMode("uring", m));
  EXPECT_FALSE(parseIoMode("", m));
  EXPECT_EQ(ioModeName(IoMode::kIoUring), "io_uring");
}

TEST(WorkerIoModeTest, EpollIsTheDefault) {
  WorkerPool pool(1, 1);
  pool.start();
  EXPECT_EQ(pool.ioMode(), IoMode::kEpoll);
  EXPECT_EQ(pool.ioFallbackReason(), "");
  pool.stop();
}

}  // namespace
}  // namespace evosip::runtime
