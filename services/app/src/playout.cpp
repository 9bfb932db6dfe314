#include <unistd.h>

#include <evosip/app/app_core.hpp>
#include <evosip/app/playout.hpp>

namespace evosip::app {

namespace {

// 20 ticks of 1 ms per 20 ms frame. With N calls a tick sends N/20 packets, so its last packet
// leaves that many sends after its due time (2,000 calls, io_uring: ~0.3 ms, p99 0.5 ms). 40
// ticks of 0.5 ms halve that, but cost 7-22 % more of a core (every wake-up costs) for a median
// 0.05 ms lower and no better p99.
constexpr PacingGrid::Settings kPacing{std::chrono::milliseconds(20), 20, 40};
// The worker prepares the ticks due within the next kHorizon, waking every kPrepareEvery: each
// tick is handed to the pacing thread 6-10 ms before it is due, so the worker may be that late
// (SIP work, a busy CPU) without delaying a packet, and wakes 250 times a second, not 1,000.
constexpr auto kHorizon = std::chrono::milliseconds(10);
constexpr auto kPrepareEvery = std::chrono::milliseconds(4);

}  // namespace

Playout::Playout(boost::asio::io_context& io, const runtime::Clock& clock, const Settings& settings,
                 AppCounters& counters, rtp::PortAllocator& ports,
                 std::function<void(const CallPtr&)> promptDone)
    : io_(io),
      clock_(clock),
      settings_(settings),
      counters_(counters),
      ports_(ports),
      promptDone_(std::move(promptDone)),
      grid_(kPacing, clock.now()),
      timer_(io) {
  slots_.resize(grid_.settings().slots);
  PacingThread::Settings ps;
  ps.thread = settings_.thread;
  ps.ioUring = settings_.ioUring;
  ps.realtimePriority = settings_.realtimePriority;
  sender_ = std::make_unique<PacingThread>(ps, clock_);
  sender_->start(&startError_);
}

Playout::~Playout() {
  stopSending();
}

void Playout::play(Call& call, PromptPtr prompt) {
  auto& p = call.playout;
  p.playing = std::move(prompt);
  p.position = 0;
  if (!p.playing || p.playing->frames() == 0) {
    p.playing.reset();
  }
  start(call);
  if (!p.playing && p.queue.empty()) {
    // Nothing to play: done once what was queued before has left.
    pendingDone_.push_back({call.shared_from_this(), call.media.sentBelow()});
  }
}

void Playout::start(Call& call) {
  auto& p = call.playout;
  if (p.sending) {
    return;
  }
  p.sending = true;
  call.media.markTalkspurt();
  p.slot = grid_.acquireSlot();
  auto& list = slots_[p.slot];
  p.slotPos = list.size();
  list.push_back(&call);
  if (!armed_) {
    grid_.resync(clock_.now());
  }
  p.nextCycle = grid_.nextCycleOf(p.slot);
  arm();
}

void Playout::stop(Call& call) {
  auto& p = call.playout;
  if (!p.sending) {
    return;
  }
  p.sending = false;
  auto& list = slots_[p.slot];
  Call* last = list.back();
  list[p.slotPos] = last;
  last->playout.slotPos = p.slotPos;
  list.pop_back();
  grid_.releaseSlot(p.slot);
}

void Playout::close(Call& call) {
  stop(call);
  if (auto pending = call.media.close(sender_->sentBelow(), ports_)) {
    closing_.push_back(*pending);
  }
}

void Playout::onTick() {
  if (!settings_.thread) {
    onWake();
  }
}

void Playout::stopSending() {
  timer_.cancel();
  sender_->stop();  // nothing is sent any more: every socket may close
  pendingDone_.clear();
  reap();
}

void Playout::arm() {
  if (!settings_.thread || armed_ || grid_.active() == 0) {
    return;
  }
  armed_ = true;
  // Next wake-up: when the first tick not yet prepared is kHorizon - kPrepareEvery away.
  timer_.expires_at(grid_.nextDue() - kHorizon + kPrepareEvery);
  std::weak_ptr<char> alive = alive_;
  timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (ec || alive.expired()) {
      return;
    }
    armed_ = false;
    onWake();
  });
}

void Playout::onWake() {
  const auto now = clock_.now();
  grid_.poll(now + kHorizon, [this](const PacingGrid::Tick& t) { paceSlot(t); });
  sender_->sendDue(now);  // without the pacing thread: the ticks due now
  reap();
  arm();
}

void Playout::reap() {
  const uint64_t sent = sender_->sentBelow();
  if (!pendingDone_.empty()) {
    std::vector<CallPtr> done;
    for (size_t i = 0; i < pendingDone_.size();) {
      if (pendingDone_[i].sentBelow <= sent) {
        done.push_back(std::move(pendingDone_[i].call));
        pendingDone_[i] = std::move(pendingDone_.back());
        pendingDone_.pop_back();
      } else {
        ++i;
      }
    }
    for (auto& c : done) {
      if (!c->closed && !c->playout.playing) {
        promptDone_(c);
      }
    }
  }
  for (size_t i = 0; i < closing_.size();) {
    if (closing_[i].sentBelow <= sent) {
      ::close(closing_[i].fd);
      ports_.release(closing_[i].port);
      closing_[i] = closing_.back();
      closing_.pop_back();
    } else {
      ++i;
    }
  }
}

void Playout::paceSlot(const PacingGrid::Tick& tick) {
  auto& list = slots_[tick.slot];
  // Null when the sender is a whole ring behind: this tick's frames are dropped.
  PacingThread::Tick* out = list.empty() ? nullptr : sender_->prepare(tick.index, tick.due);
  for (Call* call : list) {
    auto& p = call->playout;
    if (tick.cycle < p.nextCycle) {
      continue;  // joined this slot after this tick was due
    }
    const uint64_t missed = tick.cycle - p.nextCycle;
    p.nextCycle = tick.cycle + 1;
    if (missed > 0) {
      call->media.skip(static_cast<uint32_t>(missed * kFrameSamples), false);
      if (p.playing) {
        p.position += missed;
      }
    }
    const auto payload = nextFrame(*call);
    if (call->media.negotiated.canSend() && call->media.hasDestination() && out != nullptr) {
      if (call->media.addTo(*out, payload, kFrameSamples)) {
        AppCounters::bump(counters_.pacedPackets);
      }
    } else {
      call->media.skip(kFrameSamples, true);
    }
    if (p.playing && p.position >= p.playing->frames()) {
      if (!p.queue.empty()) {
        p.playing = p.queue.front();
        p.queue.erase(p.queue.begin());
        p.position = 0;
      } else {
        p.playing.reset();
        pendingDone_.push_back({call->shared_from_this(), call->media.sentBelow()});
      }
    }
  }
  if (out != nullptr && !out->packets.empty()) {
    sender_->publish();
  }
}

std::span<const uint8_t> Playout::nextFrame(Call& call) {
  auto& p = call.playout;
  if (!p.playing) {
    return silenceFrame(call.media.negotiated.law);
  }
  if (p.position >= p.playing->frames()) {
    p.position = p.playing->frames() - 1;
  }
  return p.playing->frame(call.media.negotiated.law, p.position++);
}

}  // namespace evosip::app
