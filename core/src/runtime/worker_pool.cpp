#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <pthread.h>
#include <sched.h>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <evosip/base/strings.hpp>
#include <evosip/runtime/worker_epoll.hpp>
#include <evosip/runtime/worker_pool.hpp>
#include <evosip/runtime/worker_ring.hpp>

namespace evosip::runtime {

namespace {

thread_local Worker* tCurrentWorker = nullptr;

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

size_t divideRoundingUp(uint64_t quota, uint64_t period) {
  size_t n = static_cast<size_t>((quota + period - 1) / period);
  return n == 0 ? 1 : n;
}

// This process's cgroup v2 path ("0::/kubepods/pod1/ctr" -> "/kubepods/pod1/ctr"), "" if none.
std::string selfCgroupV2Path() {
  auto text = readFile("/proc/self/cgroup");
  if (!text) {
    return {};
  }
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("0::", 0) == 0) {
      return line.substr(3);
    }
  }
  return {};
}

size_t affinityCpuCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) {
      return static_cast<size_t>(n);
    }
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : hw;
}

void runWorker(Worker& worker, [[maybe_unused]] WorkerRing* ring, WorkerEpoll* epoll) {
#ifdef EVOSIP_HAVE_URING
  if (ring != nullptr) {
    ring->run();
    return;
  }
#endif
  if (epoll != nullptr) {
    epoll->run();
    return;
  }
  worker.io().run();
}

}  // namespace

std::string setThreadScheduling(pthread_t thread, int policy, int priority) {
  sched_param p{};
  p.sched_priority = priority;
  if (int rc = pthread_setschedparam(thread, policy, &p); rc != 0) {
    return std::strerror(rc);
  }
  return {};
}

size_t Worker::currentIndex() {
  return tCurrentWorker ? tCurrentWorker->index_ : SIZE_MAX;
}

Worker* Worker::current() {
  return tCurrentWorker;
}

WorkerPool::WorkerPool(size_t count, size_t blockingThreads)
    : blocking_(blockingThreads == 0 ? 1 : blockingThreads) {
  if (count == 0) {
    count = defaultWorkerCount();
  }
  workers_.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    workers_.push_back(std::make_unique<Worker>(i));
  }
}

WorkerPool::~WorkerPool() {
  stop();
  blocking_.stop();
  blocking_.join();
}

void WorkerPool::openRings() {
  activeIo_ = IoMode::kEpoll;
  ioFallback_.clear();
  if (ioMode_ == IoMode::kEpoll) {
    return;
  }
  rings_.clear();
#ifdef EVOSIP_HAVE_URING
  for (auto& w : workers_) {
    std::string why;
    auto ring = WorkerRing::open(w->io_, &why);
    if (!ring) {
      rings_.clear();
      ioFallback_ = why;
      break;
    }
    rings_.push_back(std::move(ring));
  }
#else
  ioFallback_ = "built without liburing";
#endif
  if (!ioFallback_.empty()) {
    if (ioMode_ == IoMode::kIoUring) {
      throw std::runtime_error("io_uring is not available: " + ioFallback_);
    }
    return;
  }
  activeIo_ = IoMode::kIoUring;
}

void WorkerPool::openEpolls() {
  epolls_.clear();
  if (activeIo_ != IoMode::kEpoll) {
    return;
  }
  for (auto& w : workers_) {
    std::string why;
    auto epoll = WorkerEpoll::open(w->io_, &why);
    if (!epoll) {
      epolls_.clear();  // each io_context waits in its own reactor, as it is
      return;
    }
    epolls_.push_back(std::move(epoll));
  }
}

void WorkerPool::start() {
  if (running_) {
    return;
  }
  guards_.clear();
  for (auto& w : workers_) {
    w->io_.restart();
    guards_.push_back(boost::asio::make_work_guard(w->io_));
  }
  openRings();
  openEpolls();
  running_ = true;
  threads_.reserve(workers_.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker* worker = workers_[i].get();
    WorkerRing* ring = i < rings_.size() ? rings_[i].get() : nullptr;
    WorkerEpoll* epoll = i < epolls_.size() ? epolls_[i].get() : nullptr;
    threads_.emplace_back([worker, ring, epoll, batch = batchScheduling_, rt = realtimePriority_] {
      tCurrentWorker = worker;
      if (rt > 0 || batch) {
        const int policy = rt > 0 ? SCHED_FIFO : SCHED_BATCH;
        if (auto why = setThreadScheduling(pthread_self(), policy, rt); !why.empty()) {
          std::fprintf(stderr, "worker %zu: %s refused (%s); normal scheduling\n", worker->index_,
                       rt > 0 ? "SCHED_FIFO" : "SCHED_BATCH", why.c_str());
        }
      }
      // A handler that throws is a bug; report it and keep the worker serving the others.
      while (true) {
        try {
          runWorker(*worker, ring, epoll);
          break;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "worker %zu: unhandled exception: %s\n", worker->index_, e.what());
        } catch (...) {
          std::fprintf(stderr, "worker %zu: unhandled exception\n", worker->index_);
        }
      }
      tCurrentWorker = nullptr;
    });
  }
}

void WorkerPool::stop() {
  if (!running_) {
    return;
  }
  for (auto& g : guards_) {
    g.reset();
  }
  for (auto& w : workers_) {
    w->io_.stop();
  }
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
  guards_.clear();
  rings_.clear();
  epolls_.clear();
  blocking_.stop();
  blocking_.join();
  running_ = false;
}

void WorkerPool::postAll(const std::function<void(Worker&)>& fn) {
  for (auto& w : workers_) {
    Worker* worker = w.get();
    boost::asio::post(worker->io(), [fn, worker] { fn(*worker); });
  }
}

std::optional<size_t> cpuQuotaFromCgroupV2(std::string_view cpuMax) {
  cpuMax = trim(cpuMax);
  size_t space = cpuMax.find(' ');
  if (space == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view quota = cpuMax.substr(0, space);
  std::string_view period = trim(cpuMax.substr(space + 1));
  if (quota == "max") {
    return std::nullopt;
  }
  auto q = parseDecimal(quota);
  auto p = parseDecimal(period);
  if (!q || !p || *p == 0 || *q == 0) {
    return std::nullopt;
  }
  return divideRoundingUp(*q, *p);
}

std::optional<size_t> cpuQuotaFromCgroupV1(std::string_view quotaUs, std::string_view periodUs) {
  quotaUs = trim(quotaUs);
  periodUs = trim(periodUs);
  if (quotaUs.empty() || quotaUs.front() == '-') {
    return std::nullopt;  // -1: no limit
  }
  auto q = parseDecimal(quotaUs);
  auto p = parseDecimal(periodUs);
  if (!q || !p || *p == 0 || *q == 0) {
    return std::nullopt;
  }
  return divideRoundingUp(*q, *p);
}

std::optional<size_t> cgroupCpuQuota(const std::string& root, const std::string& selfCgroupPath) {
  if (!selfCgroupPath.empty() && selfCgroupPath != "/") {
    if (auto text = readFile(root + selfCgroupPath + "/cpu.max")) {
      if (auto n = cpuQuotaFromCgroupV2(*text)) {
        return n;
      }
    }
  }
  if (auto text = readFile(root + "/cpu.max")) {
    return cpuQuotaFromCgroupV2(*text);
  }
  for (const char* dir : {"/cpu/", "/cpu,cpuacct/", "/"}) {
    auto quota = readFile(root + dir + "cpu.cfs_quota_us");
    auto period = readFile(root + dir + "cpu.cfs_period_us");
    if (quota && period) {
      return cpuQuotaFromCgroupV1(*quota, *period);
    }
  }
  return std::nullopt;
}

size_t defaultWorkerCount() {
  size_t cpus = affinityCpuCount();
  if (auto quota = cgroupCpuQuota("/sys/fs/cgroup", selfCgroupV2Path())) {
    // A quota above the CPUs we may run on cannot be used.
    return std::max<size_t>(1, std::min(*quota, cpus));
  }
  return std::max<size_t>(1, cpus);
}

}  // namespace evosip::runtime
