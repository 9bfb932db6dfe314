// Workers that wait in an epoll instance of their own (WorkerPool, IoMode::kEpoll): descriptors
// watched there are registered once and wake the worker for every datagram that arrives after
// it read them empty; the io_context keeps running what is posted to it, its timers and its own
// descriptors, and stops when asked.
#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <future>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <boost/asio/local/datagram_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>

#include <evosip/runtime/worker_epoll.hpp>
#include <evosip/runtime/worker_pool.hpp>

namespace evosip::runtime {
namespace {

using namespace std::chrono_literals;

bool waitFor(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class WorkerEpollTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = std::make_unique<WorkerPool>(2, 1);
    pool_->setIoMode(IoMode::kEpoll);
    pool_->start();
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, fds_), 0);
  }
  void TearDown() override {
    pool_->stop();
    ::close(fds_[0]);
    ::close(fds_[1]);
  }

  // Runs fn on worker 0 and waits for it.
  template <typename Fn>
  auto onWorker(Fn fn) {
    std::promise<decltype(fn())> done;
    auto f = done.get_future();
    pool_->post(0, [&] { done.set_value(fn()); });
    EXPECT_EQ(f.wait_for(5s), std::future_status::ready);
    return f.get();
  }

  std::unique_ptr<WorkerPool> pool_;
  int fds_[2] = {-1, -1};
};

TEST_F(WorkerEpollTest, AWatchedDescriptorWakesTheWorkerForEveryArrivalAfterItWasReadEmpty) {
  std::atomic<int> wakeups{0};
  std::atomic<int> read{0};
  std::atomic<bool> onWorkerThread{true};
  const uint64_t id = onWorker([&] {
    WorkerEpoll* epoll = WorkerEpoll::current();
    EXPECT_NE(epoll, nullptr) << "workers wait in an epoll instance of their own";
    return epoll == nullptr ? uint64_t{0} : epoll->watch(fds_[0], [&] {
      onWorkerThread = onWorkerThread && Worker::current() == &pool_->at(0);
      ++wakeups;
      char buf[64];
      while (::recv(fds_[0], buf, sizeof(buf), 0) > 0) {
        ++read;
      }
    });
  });
  ASSERT_NE(id, 0u);
  // One datagram at a time, the worker asleep in between: each one wakes it.
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(::send(fds_[1], "x", 1, 0), 1);
    ASSERT_TRUE(waitFor([&] { return read.load() == i + 1; })) << "datagram " << i;
    if (i % 10 == 0) {
      std::this_thread::sleep_for(5ms);
    }
  }
  EXPECT_EQ(wakeups.load(), 50);
  EXPECT_TRUE(onWorkerThread.load());
  // Unwatched: nothing more runs.
  onWorker([&] {
    WorkerEpoll::current()->unwatch(id);
    return true;
  });
  ASSERT_EQ(::send(fds_[1], "y", 1, 0), 1);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(read.load(), 50);
}

TEST_F(WorkerEpollTest, PostsTimersAndTheIoContextsOwnDescriptorsStayServed) {
  // Posts from another thread wake a sleeping worker, many times over.
  for (int round = 0; round < 100; ++round) {
    std::promise<Worker*> seen;
    auto f = seen.get_future();
    pool_->post(round % 2, [&seen] { seen.set_value(Worker::current()); });
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready) << "round " << round;
    EXPECT_EQ(f.get(), &pool_->at(round % 2));
  }
  // A timer fires.
  std::promise<void> fired;
  boost::asio::steady_timer timer(pool_->at(1).io());
  pool_->post(1, [&] {
    timer.expires_after(30ms);
    timer.async_wait([&](const boost::system::error_code&) { fired.set_value(); });
  });
  EXPECT_EQ(fired.get_future().wait_for(5s), std::future_status::ready);
  // A descriptor of the io_context (an async receive through its reactor) is served.
  using Socket = boost::asio::local::datagram_protocol::socket;
  Socket socket(pool_->at(1).io(), boost::asio::local::datagram_protocol(), ::dup(fds_[0]));
  std::promise<std::string> got;
  char buf[64];
  pool_->post(1, [&] {
    socket.async_receive(boost::asio::buffer(buf),
                         [&](const boost::system::error_code& ec, size_t n) {
                           got.set_value(ec ? ec.message() : std::string(buf, n));
                         });
  });
  std::this_thread::sleep_for(10ms);
  ASSERT_EQ(::send(fds_[1], "hello", 5, 0), 5);
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), "hello");
  std::promise<void> closed;
  pool_->post(1, [&] {
    socket.close();
    closed.set_value();
  });
  closed.get_future().wait();
}

// A worker with nothing to serve yet (no socket, no timer: the api's, before its first request)
// sleeps. Asio queues its reactor task only with the first I/O object; the worker watches the
// reactor's descriptor, which is readable from its creation, and used to wake for it forever.
double processCpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void expectIdleWorkersSleep(IoMode mode) {
  WorkerPool pool(2, 1);
  pool.setIoMode(mode == IoMode::kIoUring ? IoMode::kAuto : mode);
  pool.start();
  if (pool.ioMode() != mode) {
    pool.stop();
    GTEST_SKIP() << "io_uring not available: " << pool.ioFallbackReason();
  }
  std::this_thread::sleep_for(50ms);
  const double before = processCpuSeconds();
  std::this_thread::sleep_for(500ms);
  const double used = processCpuSeconds() - before;
  EXPECT_LT(used, 0.1) << "two idle workers used " << used << " s of CPU in 0.5 s";
  // And they still run what is posted to them.
  std::promise<void> ran;
  pool.post(1, [&] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(5s), std::future_status::ready);
  pool.stop();
}

TEST(WorkerIdleTest, IdleEpollWorkersWithNothingToServeSleep) {
  expectIdleWorkersSleep(IoMode::kEpoll);
}

TEST(WorkerIdleTest, IdleRingWorkersWithNothingToServeSleep) {
  expectIdleWorkersSleep(IoMode::kIoUring);
}

}  // namespace
}  // namespace evosip::runtime
