#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sched.h>
#include <set>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include <evosip/runtime/worker_pool.hpp>

namespace evosip::runtime {
namespace {

using namespace std::chrono_literals;

TEST(WorkerPoolTest, RunsPostedWorkOnTheNamedWorkerThread) {
  WorkerPool pool(3, 1);
  ASSERT_EQ(pool.size(), 3u);
  pool.start();
  for (size_t i = 0; i < pool.size(); ++i) {
    std::promise<std::pair<size_t, Worker*>> seen;
    auto future = seen.get_future();
    pool.post(i, [&seen] { seen.set_value({Worker::currentIndex(), Worker::current()}); });
    ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
    auto [index, worker] = future.get();
    EXPECT_EQ(index, i);
    EXPECT_EQ(worker, &pool.at(i));
  }
  pool.stop();
}

// The policy a worker thread runs under.
int workerPolicy(WorkerPool& pool) {
  std::promise<int> policy;
  auto f = policy.get_future();
  pool.post(0, [&policy] { policy.set_value(sched_getscheduler(0)); });
  return f.wait_for(5s) == std::future_status::ready ? f.get() : -1;
}

TEST(WorkerPoolTest, WorkersRunTheSchedulingPolicyAskedFor) {
  {
    WorkerPool pool(1, 1);
    pool.start();
    EXPECT_EQ(workerPolicy(pool), SCHED_OTHER);
    pool.stop();
  }
  {
    WorkerPool pool(1, 1);
    pool.setBatchScheduling(true);
    pool.start();
    EXPECT_EQ(workerPolicy(pool), SCHED_BATCH);  // needs no privilege
    pool.stop();
  }
  {
    WorkerPool pool(1, 1);
    pool.setBatchScheduling(true);
    pool.setRealtimePriority(3);  // wins over batch
    pool.start();
    const int policy = workerPolicy(pool);
    // SCHED_FIFO needs CAP_SYS_NICE; without it the worker keeps the normal policy.
    EXPECT_TRUE(policy == SCHED_FIFO || policy == SCHED_OTHER) << policy;
    pool.stop();
  }
}

TEST(WorkerPoolTest, NonWorkerThreadHasNoIndex) {
  EXPECT_EQ(Worker::currentIndex(), SIZE_MAX);
  EXPECT_EQ(Worker::current(), nullptr);
}

TEST(WorkerPoolTest, IdleWorkersKeepRunningUntilStop) {
  WorkerPool pool(2, 1);
  pool.start();
  // Nothing posted yet: the work guard must keep the threads in run().
  std::promise<void> done;
  auto future = done.get_future();
  std::this_thread::yield();
  pool.post(1, [&done] { done.set_value(); });
  EXPECT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(pool.running());
  pool.stop();
  EXPECT_FALSE(pool.running());
  pool.stop();  // idempotent
}

TEST(WorkerPoolTest, PostAllReachesEveryWorker) {
  WorkerPool pool(4, 1);
  pool.start();
  std::mutex mutex;
  std::set<size_t> seen;
  std::atomic<int> calls{0};
  std::promise<void> all;
  auto future = all.get_future();
  pool.postAll([&](Worker& w) {
    EXPECT_EQ(Worker::currentIndex(), w.index());
    {
      std::lock_guard lock(mutex);
      seen.insert(w.index());
    }
    if (++calls == 4) {
      all.set_value();
    }
  });
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  pool.stop();
  EXPECT_EQ(seen, (std::set<size_t>{0, 1, 2, 3}));
}

TEST(WorkerPoolTest, BlockingWorkRunsOffTheWorkers) {
  WorkerPool pool(1, 2);
  pool.start();
  std::promise<size_t> index;
  auto future = index.get_future();
  pool.postBlocking([&index] { index.set_value(Worker::currentIndex()); });
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(future.get(), SIZE_MAX);
  pool.stop();
}

TEST(WorkerPoolTest, ZeroMeansDefaultCount) {
  WorkerPool pool(0, 1);
  EXPECT_EQ(pool.size(), defaultWorkerCount());
  EXPECT_GE(pool.size(), 1u);
}

TEST(WorkerCountTest, CgroupV2CpuMax) {
  EXPECT_EQ(cpuQuotaFromCgroupV2("max 100000\n"), std::nullopt);
  EXPECT_EQ(cpuQuotaFromCgroupV2("200000 100000\n"), 2u);
  EXPECT_EQ(cpuQuotaFromCgroupV2("150000 100000"), 2u);
  EXPECT_EQ(cpuQuotaFromCgroupV2("50000 100000"), 1u);
  EXPECT_EQ(cpuQuotaFromCgroupV2("garbage"), std::nullopt);
  EXPECT_EQ(cpuQuotaFromCgroupV2("100 0"), std::nullopt);
}

TEST(WorkerCountTest, CgroupV1Quota) {
  EXPECT_EQ(cpuQuotaFromCgroupV1("-1\n", "100000\n"), std::nullopt);
  EXPECT_EQ(cpuQuotaFromCgroupV1("300000\n", "100000\n"), 3u);
  EXPECT_EQ(cpuQuotaFromCgroupV1("250000", "100000"), 3u);
  EXPECT_EQ(cpuQuotaFromCgroupV1("10000", "100000"), 1u);
}

class CgroupTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "evosip-cgroup-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void write(const std::string& rel, const std::string& text) {
    std::filesystem::path p = root_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  std::filesystem::path root_;
};

TEST_F(CgroupTreeTest, PrefersV2ThenV1) {
  EXPECT_EQ(cgroupCpuQuota(root_.string()), std::nullopt);
  write("cpu/cpu.cfs_quota_us", "400000\n");
  write("cpu/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(cgroupCpuQuota(root_.string()), 4u);
  write("cpu.max", "300000 100000\n");
  EXPECT_EQ(cgroupCpuQuota(root_.string()), 3u);
  write("cpu.max", "max 100000\n");
  EXPECT_EQ(cgroupCpuQuota(root_.string()), std::nullopt);
  write("kubepods/pod/cpu.max", "100000 100000\n");
  EXPECT_EQ(cgroupCpuQuota(root_.string(), "/kubepods/pod"), 1u);
}

}  // namespace
}  // namespace evosip::runtime
