#pragma once
// One io_context per worker thread (STYLE.md "Threads"). A call's state is owned by one worker;
// work for another worker is posted to it. Blocking work goes to a separate small pool.

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <pthread.h>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

namespace evosip::runtime {

// What a worker thread waits in. kAuto: io_uring where available, else epoll.
enum class IoMode { kAuto, kIoUring, kEpoll };
// "auto", "io_uring" or "epoll" into mode; false for anything else.
bool parseIoMode(std::string_view text, IoMode& mode);
std::string_view ioModeName(IoMode mode);

class WorkerRing;   // worker_ring.hpp
class WorkerEpoll;  // worker_epoll.hpp

class Worker {
 public:
  explicit Worker(size_t index) : index_(index) {}
  size_t index() const { return index_; }
  boost::asio::io_context& io() { return io_; }

  // Index of the worker whose thread is running now, or SIZE_MAX on a non-worker thread.
  static size_t currentIndex();
  // The worker whose thread is running now, or nullptr on a non-worker thread.
  static Worker* current();

 private:
  friend class WorkerPool;
  size_t index_;
  boost::asio::io_context io_{1};  // concurrency hint 1: a single thread runs it
};

// Puts `thread` under `policy` (SCHED_OTHER, SCHED_BATCH, or SCHED_FIFO/SCHED_RR with
// `priority` 1..99). Returns "" on success, else why the kernel refused (SCHED_FIFO needs
// CAP_SYS_NICE).
std::string setThreadScheduling(pthread_t thread, int policy, int priority = 0);

class WorkerPool {
 public:
  // count == 0 -> defaultWorkerCount().
  explicit WorkerPool(size_t count, size_t blockingThreads = 2);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t size() const { return workers_.size(); }
  Worker& at(size_t i) { return *workers_[i]; }

  // Worker threads started after this run SCHED_BATCH (a worker woken by a datagram does not
  // preempt the task running on its CPU: it runs when that task sleeps or its slice ends, and
  // then finds more messages waiting). For signalling roles, not for media pacing.
  void setBatchScheduling(bool on) { batchScheduling_ = on; }
  // Worker threads started after this run SCHED_FIFO at this priority (1..99; 0: the normal
  // policy). Without CAP_SYS_NICE a warning is printed and the normal policy kept.
  void setRealtimePriority(int priority) { realtimePriority_ = priority; }
  // What the worker threads started after this wait in: kEpoll (the default) makes each thread
  // wait in an epoll instance of its own (WorkerEpoll: descriptors registered once, the
  // io_context's reactor watched from it; the io_context as it is where that is not available);
  // kIoUring makes each thread wait in an io_uring instance of its own
  // (WorkerRing: the io_context keeps its timers, descriptors and posted work) and start()
  // throws when that is not available; kAuto uses io_uring when every worker can.
  void setIoMode(IoMode mode) { ioMode_ = mode; }
  // After start(): what the workers wait in (kIoUring or kEpoll), and why not io_uring when
  // kAuto fell back to epoll ("" otherwise).
  IoMode ioMode() const { return activeIo_; }
  const std::string& ioFallbackReason() const { return ioFallback_; }
  // Starts one thread per worker; each runs its io_context until stop().
  void start();
  // Stops every io_context and joins the threads, then stops the blocking pool (running blocking
  // work finishes, queued blocking work is dropped). Idempotent.
  void stop();
  // True between start() and stop(). Read it from the thread that calls start()/stop().
  bool running() const { return running_; }

  template <typename Fn>
  void post(size_t worker, Fn&& fn) {
    boost::asio::post(workers_[worker]->io(), std::forward<Fn>(fn));
  }
  // Runs fn on every worker (fn(Worker&)), e.g. to install a new router set.
  void postAll(const std::function<void(Worker&)>& fn);
  // Runs blocking work (files, DNS, database) off the event loops.
  template <typename Fn>
  void postBlocking(Fn&& fn) {
    boost::asio::post(blocking_, std::forward<Fn>(fn));
  }

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
  bool batchScheduling_ = false;
  int realtimePriority_ = 0;
  IoMode ioMode_ = IoMode::kEpoll;
  IoMode activeIo_ = IoMode::kEpoll;
  std::string ioFallback_;
  std::vector<std::unique_ptr<WorkerRing>> rings_;    // one per worker in kIoUring, until stop()
  std::vector<std::unique_ptr<WorkerEpoll>> epolls_;  // one per worker in kEpoll, until stop()
  void openRings();
  void openEpolls();
  std::vector<std::thread> threads_;
  // Keep each io_context running while it has nothing to do, until stop().
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  boost::asio::thread_pool blocking_;
  bool running_ = false;
};

// The container's CPU quota (cgroup v2 cpu.max, then cgroup v1 cfs quota), rounded up, else the
// number of CPUs this process may run on. At least 1.
size_t defaultWorkerCount();

// The pieces of defaultWorkerCount(), exposed for tests.
// "max 100000" -> nullopt, "150000 100000" -> 2 (rounded up).
std::optional<size_t> cpuQuotaFromCgroupV2(std::string_view cpuMax);
// quota -1 (no limit) -> nullopt; otherwise quota / period rounded up, at least 1.
std::optional<size_t> cpuQuotaFromCgroupV1(std::string_view quotaUs, std::string_view periodUs);
// The quota found under a cgroup file system mounted at root ("/sys/fs/cgroup"): cgroup v2
// cpu.max (of this process's cgroup when selfCgroupPath is given, else of the root), then cgroup
// v1 cpu/cpu.cfs_quota_us and cpu.cfs_period_us (also under cpu,cpuacct/ and at the root).
std::optional<size_t> cgroupCpuQuota(const std::string& root,
                                     const std::string& selfCgroupPath = "");

}  // namespace evosip::runtime
