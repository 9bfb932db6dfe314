#pragma once
// The sending half of a worker's pacing (PacingGrid, docs/architecture.md "app"): one thread per
// worker that does nothing but sleep until each tick is due (clock_nanosleep on the
// absolute schedule) and hand the packets of that tick to the kernel, in io_uring submissions of
// 32 (else one sendto each). The worker prepares its ticks 6-10 ms ahead (Playout), so neither
// its SIP work, its deadline sweep nor its own late wake-ups delay a send: only this thread's
// wake-up does, and it alone may run SCHED_FIFO (app.realtime_priority) - bounded work that
// cannot let a burst of call set-ups outrank the rest of the machine.
//
// Hand-off: a ring of tick buffers, single producer (the worker) and single consumer (the
// sender), no locks. The worker fills the next free buffer and publishes it (release); the
// sender sends it at its due time and gives it back (release). The sender blocks on a futex only
// when nothing is published (no call sending). The worker learns from sentBelow() which ticks
// have left, so it closes a call's socket and reports a prompt's end only after its last packet
// is out.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <sys/socket.h>
#include <thread>
#include <vector>

#include <evosip/rtp/pacer.hpp>
#include <evosip/runtime/clock.hpp>

namespace evosip::app {

class UringSendBatch;

class PacingThread {
 public:
  using TimePoint = runtime::Clock::time_point;

  struct Settings {
    // true: the thread sends each tick when due, sleeping on the steady clock. false: no thread;
    // sendDue() sends the ticks due at the caller's time, on the caller's thread (a manual
    // clock drives every send).
    bool thread = true;
    size_t ring = 64;          // tick buffers (at 1 ms ticks: 64 ms the worker may be ahead)
    bool ioUring = true;       // else one sendto per packet
    int realtimePriority = 0;  // SCHED_FIFO priority of the thread; 0: normal scheduling
    size_t submitChunk = 32;   // packets per io_uring submission
    std::chrono::seconds jitterWindow{5};
  };

  // Written by the sender thread only; read at scrape time.
  struct Stats {
    std::atomic<uint64_t> sent{0}, failed{0};
    // Lateness of each packet behind its tick's due time (taken when its submission returned)
    // over the last full window, nanoseconds.
    std::atomic<uint64_t> jitterP50Ns{0}, jitterP99Ns{0}, jitterMaxNs{0}, jitterWindowPackets{0};
  };

  struct Packet {
    int fd = -1;
    socklen_t toLen = 0;
    uint16_t size = 0;
    sockaddr_storage to{};
    uint8_t data[256];
  };
  struct Tick {
    uint64_t index = 0;
    TimePoint due;
    std::vector<Packet> packets;
  };

  // `clock` times the lateness of each send (and, without the thread, decides what is due).
  PacingThread(const Settings& settings, const runtime::Clock& clock);
  ~PacingThread();  // stops the thread; ticks not yet due are dropped
  PacingThread(const PacingThread&) = delete;
  PacingThread& operator=(const PacingThread&) = delete;

  // Starts the thread (a warning line in `error` when SCHED_FIFO was refused; sends go on).
  void start(std::string* error = nullptr);
  void stop();
  bool batched() const;  // io_uring in use

  // ---- worker side ----
  // The buffer for tick `index` (increasing from call to call) due at `due`, empty; null when
  // the whole ring is waiting to be sent (the sender is that far behind: the tick is dropped).
  Tick* prepare(uint64_t index, TimePoint due);
  // Adds a datagram to the prepared tick (false: larger than a Packet holds).
  static bool add(Tick& tick, int fd, const sockaddr* to, socklen_t toLen,
                  std::span<const uint8_t> packet);
  // Hands the prepared tick to the sender.
  void publish();
  // Without the thread: sends every published tick due at `now`, oldest first (with the
  // thread: nothing, the thread sends them).
  void sendDue(TimePoint now);
  // Every tick with an index below this has been sent (or dropped at stop).
  uint64_t sentBelow() const { return sentBelow_.load(std::memory_order_acquire); }
  // Ticks published and not yet sent.
  uint64_t backlog() const {
    return published_.load(std::memory_order_relaxed) - consumed_.load(std::memory_order_acquire);
  }

  const Stats& stats() const { return stats_; }

 private:
  void run();
  // Sends the oldest published tick and gives its buffer back.
  void sendNext();
  void send(Tick& tick);
  void sendChunk(const Tick& tick, size_t queued);

  Settings settings_;
  const runtime::Clock& clock_;
  std::vector<Tick> ring_;
  std::unique_ptr<UringSendBatch> batch_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool started_ = false;
  uint64_t next_ = 0;  // the oldest published tick not yet sent (sender side)
  // Ticks published by the worker / sent by the sender, counted since the start (ring position
  // = count % ring size). published_ is also the futex the idle sender sleeps on.
  std::atomic<uint32_t> publishedLow_{0};
  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> consumed_{0};
  std::atomic<bool> idle_{false};
  std::atomic<uint64_t> sentBelow_{0};
  Stats stats_;
  rtp::JitterHistogram window_;  // sender thread
  TimePoint windowStart_;
};

}  // namespace evosip::app
