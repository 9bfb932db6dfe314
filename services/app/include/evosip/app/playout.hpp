#pragma once
// What a worker plays to its calls, on one schedule (docs/architecture.md "app"): each call that
// sends has a slot of the PacingGrid; every 4 ms the worker prepares the packets of the ticks due
// in the next 10 ms (the current prompt's frame of each call of the tick's slot, or silence)
// and hands them to its PacingThread, which sends each tick when due. A prompt's end is reported
// only once its last packet has left, and an ended call's socket is closed only then.
//
// Without the pacing thread (a manual clock), onTick() prepares and sends what is due.

#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <evosip/app/call.hpp>
#include <evosip/app/pacing_grid.hpp>
#include <evosip/app/pacing_thread.hpp>
#include <evosip/rtp/port_allocator.hpp>
#include <evosip/runtime/clock.hpp>

namespace evosip::app {

struct AppCounters;

class Playout {
 public:
  struct Settings {
    bool thread = true;  // AppSettings::pacingThread
    bool ioUring = true;
    int realtimePriority = 0;
  };
  // promptDone(call): the call's prompt (and its queue) ended and its last packet has left.
  Playout(boost::asio::io_context& io, const runtime::Clock& clock, const Settings& settings,
          AppCounters& counters, rtp::PortAllocator& ports,
          std::function<void(const CallPtr&)> promptDone);
  ~Playout();
  Playout(const Playout&) = delete;
  Playout& operator=(const Playout&) = delete;

  // A warning when the pacing thread keeps normal scheduling, else "".
  const std::string& startError() const { return startError_; }

  // Plays `prompt` to the call (then what is queued in call.playout.queue): the call sends
  // from now on, silence once nothing is left.
  void play(Call& call, PromptPtr prompt);
  // The call stops sending (it hangs up or ends).
  void stop(Call& call);
  // The call's socket closes once its queued packets have left.
  void close(Call& call);
  // Every 10 ms: without the thread, the ticks that are due; what the sender has passed.
  void onTick();
  // Shutdown: nothing is sent any more, every socket may close.
  void stopSending();
  void reap();

  bool batched() const { return sender_->batched(); }
  const PacingThread::Stats& stats() const { return sender_->stats(); }
  uint64_t skippedTicks() const { return grid_.skippedTicks(); }

 private:
  void start(Call& call);
  void arm();
  void onWake();
  void paceSlot(const PacingGrid::Tick& tick);
  // The call's frame of this tick: the prompt's (moving on to what is queued), or silence.
  std::span<const uint8_t> nextFrame(Call& call);

  boost::asio::io_context& io_;
  const runtime::Clock& clock_;
  Settings settings_;
  AppCounters& counters_;
  rtp::PortAllocator& ports_;
  std::function<void(const CallPtr&)> promptDone_;
  std::string startError_;

  PacingGrid grid_;
  std::vector<std::vector<Call*>> slots_;
  boost::asio::steady_timer timer_;
  bool armed_ = false;
  std::unique_ptr<PacingThread> sender_;
  struct PendingDone {
    CallPtr call;
    uint64_t sentBelow;  // reported once the sender has sent every tick below this
  };
  std::vector<PendingDone> pendingDone_;
  std::vector<MediaSession::Pending> closing_;
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

}  // namespace evosip::app
