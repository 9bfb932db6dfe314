// media.state (session_state.hpp): records, heartbeats and the takeover of a dead peer's address,
// on one thread with its own io_context and Store.
#include <future>
#include <map>
#include <set>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <evosip/log/log.hpp>
#include <evosip/media/session_state.hpp>

namespace evosip::media {

namespace asio = boost::asio;

struct SessionState::Impl : std::enable_shared_from_this<Impl> {
  Impl(StateSettings s, ServedAddress me, RecordLimits l, Hooks h, StateCounters& c)
      : settings(std::move(s)),
        self(std::move(me)),
        limits(l),
        hooks(std::move(h)),
        counters(c),
        work(asio::make_work_guard(io)),
        beatTimer(io),
        refreshTimer(io),
        log(log::get("media")) {}

  StateSettings settings;
  ServedAddress self;
  RecordLimits limits;
  Hooks hooks;
  StateCounters& counters;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::unique_ptr<store::Store> store;
  asio::steady_timer beatTimer, refreshTimer;
  std::shared_ptr<spdlog::logger> log;
  std::thread thread;

  // State thread only.
  std::map<std::string, std::string> live;     // key -> record: rewritten every record_ttl / 3
  std::map<std::string, Heartbeat> peersSeen;  // last heartbeat seen alive, by peer instance
  std::set<std::string> taking;                // peers whose address is being taken over
  bool claimed = false;   // this relay's own heartbeat key is ours (see claim())
  bool claiming = false;  // a read of it is under way
  int claimErrors = 0;    // reads of it the store did not answer
  static constexpr int kClaimAttempts = 10;
  std::map<std::string, std::chrono::steady_clock::time_point> takenAt;  // by peer
  // Read by served() from other threads.
  mutable std::mutex servedMutex;
  std::vector<ServedAddress> servedList;

  std::string recordKey(const std::string& owner, const std::string& callId) const {
    return settings.keyPrefix + "sess:" + (owner.empty() ? self.instance : owner) + ":" + callId;
  }
  std::string beatKey(const std::string& instance) const {
    return settings.keyPrefix + "hb:" + instance;
  }
  void failed(const char* what, const Error& e) {
    counters.storeErrors.fetch_add(1, std::memory_order_relaxed);
    log->warn("media.state: {}: {}", what, e.message);
  }

  void write(const std::string& key, std::string record);
  void beat();
  void claim();
  void releaseIdle();
  void writeBeats();
  void watch(const std::string& peer);
  void lock(const std::string& peer, const Heartbeat& last);
  void takeOver(const ServedAddress& dead);
  void restorePage(const ServedAddress& dead, const std::string& cursor);
  void refresh();
  void writeStopped(std::shared_ptr<std::promise<void>> done);
};

void SessionState::Impl::write(const std::string& key, std::string record) {
  if (record.empty()) {
    live.erase(key);
    store->removeValue(key, [self = shared_from_this()](Result<void> r) {
      if (!r) {
        self->failed("remove", r.error());
      }
    });
  } else {
    live[key] = record;
    store->putValue(key, std::move(record), settings.recordTtl, false,
                    [self = shared_from_this()](Result<bool> r) {
                      if (!r) {
                        self->failed("write", r.error());
                      }
                    });
  }
  counters.records.store(live.size(), std::memory_order_relaxed);
}

void SessionState::Impl::refresh() {
  for (const auto& [key, record] : live) {
    store->putValue(key, record, settings.recordTtl, false,
                    [self = shared_from_this()](Result<bool> r) {
                      if (!r) {
                        self->failed("refresh", r.error());
                      }
                    });
  }
  refreshTimer.expires_after(settings.recordTtl / 3);
  refreshTimer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) {
      self->refresh();
    }
  });
}

void SessionState::Impl::writeBeats() {
  std::vector<ServedAddress> served;
  {
    std::lock_guard lock(servedMutex);
    served = servedList;
  }
  for (const auto& s : served) {
    Heartbeat hb{false, self.instance, s.address, s.ng};
    store->putValue(beatKey(s.instance), encodeHeartbeat(hb), settings.heartbeatTtl, false,
                    [self = shared_from_this()](Result<bool> r) {
                      if (!r) {
                        self->failed("heartbeat", r.error());
                      }
                    });
  }
}

// The relay's own address is served by a peer that took it over while this process was gone
// (restarted under the same instance_id): it stays in standby (not in served(), new calls
// refused) until the peer gives the address back.
void SessionState::Impl::claim() {
  if (claiming) {
    return;
  }
  claiming = true;
  store->getValue(beatKey(self.instance), [self = shared_from_this()](Result<std::string> r) {
    self->claiming = false;
    if (!r && r.error().code != Errc::kNotFound) {
      // The store is not there yet (it connects at start), or gone: after a few heartbeats
      // without it, serve the address (nobody can take it over without the store either).
      self->failed("own heartbeat", r.error());
      if (++self->claimErrors < kClaimAttempts) {
        return;
      }
    }
    auto hb = r ? decodeHeartbeat(*r) : Result<Heartbeat>(Heartbeat{true, "", "", ""});
    // hb->by is another relay: it took this address over while this process was gone.
    if (hb && !hb->stopped && hb->by != self->self.instance) {
      self->log->warn(
          "media.state: relay {} serves this relay's address: standby until it "
          "gives it back",
          hb->by);
      return;
    }
    self->claimed = true;
    {
      std::lock_guard lock(self->servedMutex);
      self->servedList.insert(self->servedList.begin(), self->self);
    }
    if (self->hooks.standby) {
      self->hooks.standby(false);
    }
    self->writeBeats();
  });
}

// A taken-over address whose calls have all ended goes back (its relay may be restarted).
void SessionState::Impl::releaseIdle() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = takenAt.begin(); it != takenAt.end();) {
    const std::string prefix = recordKey(it->first, "");
    auto rec = live.lower_bound(prefix);
    const bool idle = rec == live.end() || rec->first.compare(0, prefix.size(), prefix) != 0;
    if (!idle || now - it->second < 2 * settings.heartbeatTtl) {
      ++it;
      continue;
    }
    log->info("media.state: the calls of relay {} have ended: its address goes back", it->first);
    {
      std::lock_guard lock(servedMutex);
      std::erase_if(servedList, [&](const ServedAddress& s) { return s.instance == it->first; });
    }
    store->removeValue(beatKey(it->first), [](Result<void>) {});
    if (hooks.release) {
      hooks.release(it->first);
    }
    it = takenAt.erase(it);
  }
}

void SessionState::Impl::beat() {
  if (!claimed) {
    claim();
  }
  releaseIdle();
  writeBeats();
  for (const auto& peer : settings.takeoverPeers) {
    watch(peer);
  }
  beatTimer.expires_after(settings.heartbeat);
  beatTimer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) {
      self->beat();
    }
  });
}

void SessionState::Impl::watch(const std::string& peer) {
  {
    std::lock_guard lock(servedMutex);
    for (const auto& s : servedList) {
      if (s.instance == peer) {
        return;  // served here already
      }
    }
  }
  if (taking.count(peer) != 0) {
    return;
  }
  store->getValue(beatKey(peer), [self = shared_from_this(), peer](Result<std::string> r) {
    if (r) {
      auto hb = decodeHeartbeat(*r);
      if (!hb) {
        self->failed("peer heartbeat", hb.error());
      } else if (hb->stopped) {
        self->peersSeen.erase(peer);  // ended cleanly: nothing to take over
      } else {
        self->peersSeen[peer] = std::move(*hb);
      }
      return;
    }
    if (r.error().code != Errc::kNotFound) {
      self->failed("peer heartbeat", r.error());  // the store is unreachable: decide nothing
      return;
    }
    auto seen = self->peersSeen.find(peer);
    if (seen != self->peersSeen.end()) {
      self->lock(peer, seen->second);
    }
  });
}

void SessionState::Impl::lock(const std::string& peer, const Heartbeat& last) {
  Heartbeat mine{false, self.instance, last.address, last.ng};
  taking.insert(peer);
  store->putValue(beatKey(peer), encodeHeartbeat(mine), settings.heartbeatTtl, true,
                  [self = shared_from_this(), peer, mine](Result<bool> won) {
                    self->taking.erase(peer);
                    if (!won) {
                      self->failed("takeover lock", won.error());
                      return;
                    }
                    self->peersSeen.erase(peer);
                    if (*won) {
                      self->takeOver(ServedAddress{peer, mine.address, mine.ng});
                    }
                  });
}

void SessionState::Impl::takeOver(const ServedAddress& dead) {
  log->warn("media.state: relay {} stopped its heartbeat: taking over its address {} (ng {})",
            dead.instance, dead.address, dead.ng);
  if (hooks.takeOver && !hooks.takeOver(dead)) {
    return;
  }
  {
    std::lock_guard lock(servedMutex);
    servedList.push_back(dead);
  }
  takenAt[dead.instance] = std::chrono::steady_clock::now();
  counters.takeovers.fetch_add(1, std::memory_order_relaxed);
  writeBeats();
  restorePage(dead, "");
}

void SessionState::Impl::restorePage(const ServedAddress& dead, const std::string& cursor) {
  store->listValues(settings.keyPrefix + "sess:" + dead.instance + ":", cursor, 256,
                    [self = shared_from_this(), dead](Result<store::Page<store::KeyValue>> page) {
                      if (!page) {
                        self->failed("restore", page.error());
                        return;
                      }
                      for (const auto& kv : page->items) {
                        auto record = decodeSessionRecord(kv.value, self->limits);
                        if (!record) {
                          self->counters.restoreErrors.fetch_add(1, std::memory_order_relaxed);
                          self->log->warn("media.state: stored call {} not restored: {}", kv.key,
                                          record.error().message);
                          continue;
                        }
                        self->hooks.restore(std::move(*record), dead.instance);
                      }
                      if (!page->next.empty()) {
                        self->restorePage(dead, page->next);
                      }
                    });
}

void SessionState::Impl::writeStopped(std::shared_ptr<std::promise<void>> done) {
  std::vector<ServedAddress> served;
  {
    std::lock_guard lock(servedMutex);
    served = servedList;
  }
  auto remaining = std::make_shared<size_t>(served.size());
  for (const auto& s : served) {
    store->putValue(beatKey(s.instance), encodeHeartbeat(Heartbeat{true, "", "", ""}),
                    std::chrono::hours(24), false, [remaining, done](Result<bool>) {
                      if (--*remaining == 0) {
                        done->set_value();
                      }
                    });
  }
}

SessionState::SessionState(StateSettings settings, ServedAddress self, RecordLimits limits,
                           Hooks hooks)
    : impl_(std::make_shared<Impl>(std::move(settings), std::move(self), limits, std::move(hooks),
                                   counters_)) {}

SessionState::~SessionState() {
  stop();
}

void SessionState::start() {
  auto factory = store::makeStoreFactory(impl_->settings.store);
  impl_->store = factory->open(impl_->io.get_executor());
  asio::post(impl_->io, [impl = impl_] {
    impl->beat();
    impl->refreshTimer.expires_after(impl->settings.recordTtl / 3);
    impl->refreshTimer.async_wait([impl](boost::system::error_code ec) {
      if (!ec) {
        impl->refresh();
      }
    });
  });
  impl_->thread = std::thread([impl = impl_] { impl->io.run(); });
}

void SessionState::stop() {
  if (!impl_->thread.joinable()) {
    return;
  }
  const bool clean = !impl_->hooks.sessions || impl_->hooks.sessions() == 0;
  if (clean) {
    auto done = std::make_shared<std::promise<void>>();
    auto written = done->get_future();
    asio::post(impl_->io, [impl = impl_, done] {
      impl->beatTimer.cancel();
      impl->writeStopped(done);
    });
    written.wait_for(std::chrono::seconds(1));
  }
  asio::post(impl_->io, [impl = impl_] {
    impl->beatTimer.cancel();
    impl->refreshTimer.cancel();
    impl->store.reset();
    impl->work.reset();
  });
  impl_->thread.join();
}

void SessionState::write(const std::string& callId, const std::string& owner, std::string record) {
  asio::post(impl_->io, [impl = impl_, key = impl_->recordKey(owner, callId),
                         record = std::move(record)]() mutable {
    if (impl->store) {
      impl->write(key, std::move(record));
    }
  });
}

std::vector<ServedAddress> SessionState::served() const {
  std::lock_guard lock(impl_->servedMutex);
  return impl_->servedList;
}

}  // namespace evosip::media
