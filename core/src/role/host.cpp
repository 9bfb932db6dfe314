#include <csignal>

#include <boost/json.hpp>

#include <evosip/role/host.hpp>

namespace evosip::role {

namespace json = boost::json;

Host::Host(std::string role, const CommonSettings& common, size_t workers, size_t blockingThreads)
    : role_(std::move(role)),
      common_(common),
      logger_(log::get(role_)),
      pool_(workers, blockingThreads),
      drain_(DrainSettings{common.drainTimeout, common.drainIdle},
             runtime::SteadyClock::instance()) {
  pool_.setIoMode(common.ioMode);
  registerRpc();
  auto& draining = metrics_
                       .gaugeFamily("evosip_draining",
                                    "1 while the instance drains (instance.drain or SIGTERM): "
                                    "not ready, no new work taken")
                       .Add({});
  metrics_.addCollectHook([this, &draining] { draining.Set(drain_.draining() ? 1 : 0); });
}

Host::~Host() {
  stopServing();
  stopWorkers();
}

void Host::tickEvery(std::chrono::milliseconds period, std::function<void(size_t)> tick) {
  ticks_ = std::make_unique<WorkerTicks>(pool_, period, std::move(tick));
}

void Host::start() {
  control_ = std::make_unique<control::ControlServer>(common_.control, rpc_, metrics_,
                                                      [this] { return ready(); });
  control_->start();
  pool_.start();
  started_ = true;
  const auto io = runtime::ioModeName(pool_.ioMode());
  metrics_
      .gaugeFamily("evosip_worker_io", "1 for what the workers wait in (sip.io): io_uring or epoll")
      .Add({{"mode", std::string(io)}})
      .Set(1);
  if (!pool_.ioFallbackReason().empty()) {
    logger_->warn("{}: workers wait in {} (io_uring: {})", role_, io, pool_.ioFallbackReason());
  } else if (common_.ioMode != runtime::IoMode::kEpoll) {
    logger_->info("{}: workers wait in {}", role_, io);
  }

  if (ticks_) {
    ticks_->start();
  }
}

bool Host::ready() const {
  return ready_.load() && !drain_.draining() && (!readyCheck_ || readyCheck_());
}

void Host::stopServing() {
  ready_ = false;
  if (control_) {
    control_->stop();
  }
  if (ticks_ && started_) {
    ticks_->stop();
  }
}

void Host::stopWorkers() {
  if (!started_) {
    return;
  }
  started_ = false;
  pool_.stop();
  ticks_.reset();
}

uint16_t Host::controlPort() const {
  return control_ ? control_->port() : 0;
}

uint64_t Host::inProgress() const {
  return work_.inProgress ? work_.inProgress() : 0;
}

uint64_t Host::arrivals() const {
  return work_.arrivals ? work_.arrivals() : 0;
}

json::object Host::status() {
  json::object o;
  o["role"] = role_;
  o["state"] = std::string(drainStateName(drain_.state()));
  o["draining"] = drain_.draining();
  o["ready"] = ready();
  o["in_progress"] = inProgress();
  o["drain_timeout_s"] = common_.drainTimeout.count();
  if (work_.describe) {
    work_.describe(o);
  }
  return o;
}

control::RpcResult Host::beginDrain() {
  if (drain_.begin() && work_.refuseNew) {
    work_.refuseNew(true);
  }
  auto o = status();
  logger_->info("draining: not ready, new work refused, {} in progress", inProgress());
  return json::value(std::move(o));
}

control::RpcResult Host::endDrain() {
  if (!drain_.end()) {
    return tl::unexpected(
        control::RpcError{control::kInvalidRequest,
                          "the instance is stopping on a signal: it cannot undrain", nullptr});
  }
  if (work_.refuseNew) {
    work_.refuseNew(false);
  }
  logger_->info("undrained: new work accepted again");
  return json::value(status());
}

void Host::registerRpc() {
  rpc_.add("instance.drain", [this](const json::value&) { return beginDrain(); });
  rpc_.add("instance.undrain", [this](const json::value&) { return endDrain(); });
  rpc_.add("instance.status",
           [this](const json::value&) -> control::RpcResult { return json::value(status()); });
}

int Host::serveUntilStopped() {
  return role::serveUntilStopped({this});
}

bool Host::beginStopOnSignal() {
  if (!drain_.beginStop()) {
    return false;
  }
  if (work_.refuseNew) {
    work_.refuseNew(true);
  }
  logger_->info(
      "SIGTERM: draining (not ready, no new work), {} in progress; exit when done or in {} s",
      inProgress(), common_.drainTimeout.count());
  return true;
}

bool Host::stopDrained() {
  if (!drain_.draining() || !drain_.poll(inProgress(), arrivals())) {
    return false;
  }
  if (drain_.timedOut()) {
    logger_->warn("drain_timeout_s passed with {} in progress: stopping", inProgress());
  } else {
    logger_->info("drained: stopping");
  }
  return true;
}

int serveUntilStopped(const std::vector<Host*>& hosts) {
  // How often the drain looks at the work in progress.
  constexpr std::chrono::milliseconds kPollPeriod(100);
  std::vector<bool> done(hosts.size(), false);
  while (true) {
    if (auto sig = runtime::waitForStopSignal(kPollPeriod)) {
      // The first SIGTERM drains; a SIGINT, or a SIGTERM while stopping, stops at once.
      bool drain = *sig == SIGTERM;
      for (Host* h : hosts) {
        drain = drain && h->beginStopOnSignal();
      }
      if (!drain) {
        hosts.front()->logger()->info("signal {}: stopping now", *sig);
        return 0;
      }
    }
    size_t left = 0;
    for (size_t i = 0; i < hosts.size(); ++i) {
      done[i] = done[i] || hosts[i]->stopDrained();
      left += done[i] ? 0 : 1;
    }
    if (left == 0) {
      return 0;
    }
  }
}

}  // namespace evosip::role
