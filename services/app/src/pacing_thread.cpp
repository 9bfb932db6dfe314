#include <cerrno>
#include <cstring>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <utility>

#include <evosip/app/pacing_thread.hpp>
#include <evosip/runtime/worker_pool.hpp>

#include "uring_send_batch.hpp"

namespace evosip::app {

namespace {

// steady_clock is CLOCK_MONOTONIC (libstdc++): sleep on the absolute due time, so a late
// wake-up never shifts the schedule.
void sleepUntil(PacingThread::TimePoint t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns.count() / 1000000000);
  ts.tv_nsec = static_cast<long>(ns.count() % 1000000000);
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

void bump(std::atomic<uint64_t>& c, uint64_t n) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace

PacingThread::PacingThread(const Settings& settings, const runtime::Clock& clock)
    : settings_(settings), clock_(clock) {
  settings_.ring = std::max<size_t>(settings_.ring, 2);
  settings_.submitChunk = std::max<size_t>(settings_.submitChunk, 1);
  ring_.resize(settings_.ring);
  if (settings_.ioUring) {
    batch_ = std::make_unique<UringSendBatch>();
    if (!batch_->available()) {
      batch_.reset();
    }
  }
}

PacingThread::~PacingThread() {
  stop();
}

bool PacingThread::batched() const {
  return batch_ != nullptr;
}

void PacingThread::start(std::string* error) {
  if (started_) {
    return;
  }
  started_ = true;
  stop_ = false;
  windowStart_ = clock_.now();
  if (!settings_.thread) {
    return;
  }
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "evosip-pacing");  // as `top -H` shows it
  if (settings_.realtimePriority > 0) {
    auto why = runtime::setThreadScheduling(thread_.native_handle(), SCHED_FIFO,
                                            settings_.realtimePriority);
    if (!why.empty() && error != nullptr) {
      *error = std::move(why);
    }
  }
}

void PacingThread::stop() {
  if (!started_) {
    return;
  }
  stop_.store(true, std::memory_order_seq_cst);
  publishedLow_.fetch_add(1, std::memory_order_seq_cst);
  publishedLow_.notify_one();
  if (thread_.joinable()) {
    thread_.join();
  }
  started_ = false;
  // Whatever was not sent never will be: the worker may close every socket.
  consumed_.store(published_.load(std::memory_order_relaxed), std::memory_order_release);
  sentBelow_.store(UINT64_MAX, std::memory_order_release);
}

PacingThread::Tick* PacingThread::prepare(uint64_t index, TimePoint due) {
  const uint64_t p = published_.load(std::memory_order_relaxed);
  if (p - consumed_.load(std::memory_order_acquire) >= ring_.size()) {
    return nullptr;
  }
  Tick& t = ring_[p % ring_.size()];
  t.index = index;
  t.due = due;
  t.packets.clear();
  return &t;
}

bool PacingThread::add(Tick& tick, int fd, const sockaddr* to, socklen_t toLen,
                       std::span<const uint8_t> packet) {
  if (packet.size() > sizeof(Packet::data) || toLen > sizeof(sockaddr_storage)) {
    return false;
  }
  Packet& p = tick.packets.emplace_back();
  p.fd = fd;
  p.toLen = toLen;
  p.size = static_cast<uint16_t>(packet.size());
  std::memcpy(&p.to, to, toLen);
  std::memcpy(p.data, packet.data(), packet.size());
  return true;
}

void PacingThread::publish() {
  published_.fetch_add(1, std::memory_order_seq_cst);
  publishedLow_.fetch_add(1, std::memory_order_seq_cst);
  if (idle_.load(std::memory_order_seq_cst)) {
    publishedLow_.notify_one();
  }
}

void PacingThread::sendDue(TimePoint now) {
  if (settings_.thread) {
    return;  // the thread sends them
  }
  while (started_ && published_.load(std::memory_order_acquire) != next_ &&
         ring_[next_ % ring_.size()].due <= now) {
    sendNext();
  }
}

void PacingThread::sendNext() {
  Tick& t = ring_[next_ % ring_.size()];
  send(t);
  sentBelow_.store(t.index + 1, std::memory_order_release);
  consumed_.store(++next_, std::memory_order_release);
}

void PacingThread::run() {
  while (!stop_.load(std::memory_order_relaxed)) {
    const uint32_t seen = publishedLow_.load(std::memory_order_seq_cst);
    if (published_.load(std::memory_order_acquire) == next_) {
      // Nothing to send: sleep until the worker publishes (Dekker with publish()).
      idle_.store(true, std::memory_order_seq_cst);
      if (published_.load(std::memory_order_seq_cst) == next_ &&
          !stop_.load(std::memory_order_seq_cst)) {
        publishedLow_.wait(seen, std::memory_order_seq_cst);
      }
      idle_.store(false, std::memory_order_relaxed);
      continue;
    }
    const TimePoint due = ring_[next_ % ring_.size()].due;
    // Ticks come 6-10 ms ahead: one sleep. A far one is slept in steps, so stop() is heard.
    for (auto now = clock_.now(); now < due && !stop_.load(std::memory_order_relaxed);
         now = clock_.now()) {
      sleepUntil(std::min(due, now + std::chrono::milliseconds(50)));
    }
    if (stop_.load(std::memory_order_relaxed)) {
      break;
    }
    sendNext();
  }
}

void PacingThread::send(Tick& t) {
  size_t queued = 0;
  for (const Packet& p : t.packets) {
    if (batch_ && batch_->queue(p.fd, reinterpret_cast<const sockaddr*>(&p.to), p.toLen,
                                std::span<const uint8_t>(p.data, p.size))) {
      if (++queued == settings_.submitChunk) {
        sendChunk(t, queued);
        queued = 0;
      }
      continue;
    }
    const ssize_t r = ::sendto(p.fd, p.data, p.size, MSG_DONTWAIT,
                               reinterpret_cast<const sockaddr*>(&p.to), p.toLen);
    bump(r < 0 ? stats_.failed : stats_.sent, 1);
    window_.record(clock_.now() - t.due);
  }
  if (queued > 0) {
    sendChunk(t, queued);
  }
  const auto now = clock_.now();
  if (now - windowStart_ >= settings_.jitterWindow) {
    stats_.jitterP50Ns.store(window_.p50().count() * 1000, std::memory_order_relaxed);
    stats_.jitterP99Ns.store(window_.p99().count() * 1000, std::memory_order_relaxed);
    stats_.jitterMaxNs.store(window_.max().count() * 1000, std::memory_order_relaxed);
    stats_.jitterWindowPackets.store(window_.count(), std::memory_order_relaxed);
    window_.reset();
    windowStart_ = now;
  }
}

void PacingThread::sendChunk(const Tick& t, size_t queued) {
  // UDP sends are done when the submission returns: their lateness is now's.
  const uint64_t failed = batch_->flush();
  const auto late = clock_.now() - t.due;
  for (size_t i = 0; i < queued; ++i) {
    window_.record(late);
  }
  bump(stats_.sent, queued - std::min<uint64_t>(failed, queued));
  bump(stats_.failed, failed);
}

}  // namespace evosip::app
