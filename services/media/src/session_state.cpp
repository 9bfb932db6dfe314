// media.state (session_state.hpp): records, heartbeats and the takeover of a dead peer's address,
// on one thread with its own io_context and Store.
#include <algorithm>
#include <map>
#include <set>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <evosip/log/log.hpp>
#include <evosip/media/session_state.hpp>
#include <evosip/store/store_thread.hpp>

namespace evosip::media {

namespace asio = boost::asio;

struct SessionState::Impl : std::enable_shared_from_this<Impl> {
  Impl(StateSettings s, ServedAddress me, RecordLimits l, Hooks h, StateCounters& c)
      : settings(std::move(s)),
        self(std::move(me)),
        limits(l),
        hooks(std::move(h)),
        counters(c),
        beatTimer(thread.io()),
        refreshTimer(thread.io()),
        fenceTimer(thread.io()),
        fence(settings.heartbeatTtl, settings.fenceMargin),
        log(log::get("media")) {}

  StateSettings settings;
  ServedAddress self;
  RecordLimits limits;
  Hooks hooks;
  StateCounters& counters;
  store::StoreThread thread;
  asio::steady_timer beatTimer, refreshTimer, fenceTimer;
  HeartbeatFence fence;  // state thread only
  std::atomic<bool> fenced{false};
  std::shared_ptr<spdlog::logger> log;

  // State thread only.
  std::map<std::string, std::string> live;     // key -> record: rewritten every record_ttl / 3
  std::set<std::string> removeLater;           // records of calls that ended while fenced
  std::map<std::string, Heartbeat> peersSeen;  // last heartbeat seen alive, by peer instance
  std::set<std::string> taking;                // peers whose address is being taken over
  bool claimed = false;   // this relay's own heartbeat key is ours (see claim())
  bool claiming = false;  // a write of it is under way
  bool standbyLogged = false;
  bool settled = false;  // the start-up claim is decided (Hooks::settled called)
  int claimErrors = 0;   // reads of it the store did not answer
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
  // This relay's heartbeat for an address it serves: the value of its lease on that address.
  std::string beatValue(const ServedAddress& s) const {
    return encodeHeartbeat(Heartbeat{false, self.instance, s.address, s.ng});
  }
  void addServed(const ServedAddress& s) {
    std::lock_guard lock(servedMutex);
    if (s.instance == self.instance) {
      servedList.insert(servedList.begin(), s);
    } else {
      servedList.push_back(s);
    }
  }
  bool serving(const std::string& instance) const {
    std::lock_guard lock(servedMutex);
    return std::any_of(servedList.begin(), servedList.end(),
                       [&](const ServedAddress& s) { return s.instance == instance; });
  }
  void failed(const char* what, const Error& e) {
    counters.storeErrors.fetch_add(1, std::memory_order_relaxed);
    log->warn("media.state: {}: {}", what, e.message);
  }

  void write(const std::string& owner, const std::string& key, std::string record);
  void beat();
  void claim();
  void ownLeaseWon(std::chrono::steady_clock::time_point sent);
  void serveOwn();
  void settle();
  void lose(const std::string& instance);
  void checkFence();
  void releaseIdle();
  void writeBeats();
  void watch(const std::string& peer);
  void lock(const std::string& peer, const Heartbeat& last);
  void takeOver(const ServedAddress& dead, std::chrono::steady_clock::time_point locked);
  // The stored calls of `instance`'s address, restored with `owner` ("" = this relay's own),
  // page by page; `done` after the last page.
  void restorePage(const std::string& instance, const std::string& owner, const std::string& cursor,
                   std::function<void()> done);
  void refresh();
  void writeStopped(std::function<void()> done);
  store::Store* store() const { return thread.store(); }
};

void SessionState::Impl::write(const std::string& owner, const std::string& key,
                               std::string record) {
  if (!serving(owner)) {
    return;  // the address went to another relay: the record is the holder's now
  }
  if (fenced) {
    // Nothing is written while fenced (a peer may hold the address by now); the fence lifts
    // only once the address is confirmed this relay's, and then every live record is rewritten.
    if (record.empty()) {
      live.erase(key);
      removeLater.insert(key);
    } else {
      removeLater.erase(key);
      live[key] = std::move(record);
    }
  } else if (record.empty()) {
    live.erase(key);
    store()->removeValue(key, [self = shared_from_this()](Result<void> r) {
      if (!r) {
        self->failed("remove", r.error());
      }
    });
  } else {
    live[key] = record;
    store()->putValue(key, std::move(record), settings.recordTtl, false,
                      [self = shared_from_this()](Result<bool> r) {
                        if (!r) {
                          self->failed("write", r.error());
                        }
                      });
  }
  counters.records.store(live.size(), std::memory_order_relaxed);
}

void SessionState::Impl::refresh() {
  if (!store()) {
    return;  // stopped: a timer that had fired before stop() cancelled it
  }
  for (const auto& [key, record] : live) {
    if (fenced) {
      break;
    }
    store()->putValue(key, record, settings.recordTtl, false,
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

// Every address served gets its heartbeat renewed as a lease (written only over this relay's own
// value): a confirmation keeps the fence away, a refusal means another relay holds the address.
void SessionState::Impl::writeBeats() {
  std::vector<ServedAddress> served;
  {
    std::lock_guard lock(servedMutex);
    served = servedList;
  }
  const auto sent = std::chrono::steady_clock::now();
  for (const auto& s : served) {
    std::string value = beatValue(s);
    store()->putValueIf(beatKey(s.instance), value, settings.heartbeatTtl, {value},
                        [self = shared_from_this(), instance = s.instance, sent](Result<bool> r) {
                          if (!r) {
                            self->failed("heartbeat", r.error());
                          } else if (!*r) {
                            self->lose(instance);
                          } else if (self->serving(instance)) {
                            self->fence.written(instance, sent);
                            self->checkFence();
                          }
                        });
  }
}

// The relay's own address, at start and after another relay held it: its heartbeat is written
// only where the key is absent, still this relay's, or "stopped". Held by another relay (a peer
// that took it over while this process was gone or cut off), the relay stays in standby (not in
// served(), new calls refused) until that relay gives the address back.
void SessionState::Impl::claim() {
  if (claiming) {
    return;
  }
  if (hooks.bindOwn && !hooks.bindOwn()) {
    // Its ng address is bound by another process: a peer relay on this host that serves it.
    if (!standbyLogged) {
      log->warn(
          "media.state: this relay's ng address {} is in use (a peer relay on this host serving "
          "this relay's address?): standby until it is free",
          self.ng);
      standbyLogged = true;
    }
    settle();
    return;
  }
  claiming = true;
  const std::string mine = beatValue(self);
  const auto sent = std::chrono::steady_clock::now();
  store()->putValueIf(
      beatKey(self.instance), mine, settings.heartbeatTtl,
      {mine, encodeHeartbeat(Heartbeat{true, "", "", ""})},
      [self = shared_from_this(), sent](Result<bool> r) {
        self->claiming = false;
        if (!r) {
          // The store is not there yet (it connects at start), or gone. Fenced relays serve
          // nothing they could not write a heartbeat for; others serve the address after a few
          // heartbeats without the store (nobody can take it over without the store either).
          self->failed("own heartbeat", r.error());
          if (++self->claimErrors >= kClaimAttempts) {
            self->settle();
          }
          if (self->settings.fence || self->claimErrors < kClaimAttempts) {
            return;
          }
          self->claimed = true;
          self->addServed(self->self);
          self->serveOwn();
        } else if (!*r) {
          if (!self->standbyLogged) {
            self->log->warn(
                "media.state: another relay serves this relay's address {}: standby until it "
                "gives it back",
                self->self.address);
            self->standbyLogged = true;
          }
          self->settle();
        } else {
          self->ownLeaseWon(sent);
        }
      });
}

// The lease on the relay's own address is this relay's (compare-and-set won): the calls stored
// under its name (left by its previous process, a crash or a restart within heartbeat_ttl, or
// given back by a peer) are restored on their ports before the relay serves the address.
void SessionState::Impl::ownLeaseWon(std::chrono::steady_clock::time_point sent) {
  claimed = true;
  addServed(self);  // heartbeats and records from now on: the lease must not lapse meanwhile
  fence.written(self.instance, sent);
  checkFence();
  restorePage(self.instance, "", "", [self = shared_from_this()] { self->serveOwn(); });
}

void SessionState::Impl::serveOwn() {
  standbyLogged = false;
  if (hooks.standby) {
    hooks.standby(false);
  }
  settle();
  checkFence();
}

void SessionState::Impl::settle() {
  if (!settled) {
    settled = true;
    if (hooks.settled) {
      hooks.settled();
    }
  }
}

// Another relay holds an address this one served (the store refused this relay's heartbeat
// there): it took the address over while this relay could not renew it. The calls on it are
// the holder's now: dropped here, their records left alone; the relay's own address goes to
// standby until it is given back.
void SessionState::Impl::lose(const std::string& instance) {
  size_t erased = 0;
  {
    std::lock_guard lock(servedMutex);
    erased =
        std::erase_if(servedList, [&](const ServedAddress& s) { return s.instance == instance; });
  }
  if (erased == 0) {
    return;
  }
  fence.drop(instance);
  takenAt.erase(instance);
  const std::string prefix = recordKey(instance, "");
  for (auto it = live.lower_bound(prefix);
       it != live.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
    it = live.erase(it);
  }
  for (auto it = removeLater.lower_bound(prefix);
       it != removeLater.end() && it->compare(0, prefix.size(), prefix) == 0;) {
    it = removeLater.erase(it);
  }
  counters.records.store(live.size(), std::memory_order_relaxed);
  counters.lost.fetch_add(1, std::memory_order_relaxed);
  if (instance == self.instance) {
    claimed = false;
    log->warn(
        "media.state: another relay holds this relay's address {} (taken over while its "
        "heartbeat was not written): its calls here dropped, standby until it is given back",
        self.address);
    if (hooks.standby) {
      hooks.standby(true);
    }
  } else {
    log->warn(
        "media.state: another relay holds relay {}'s address, taken over here: its calls "
        "here dropped",
        instance);
  }
  if (hooks.lost) {
    hooks.lost(instance);
  }
  checkFence();
}

// media.state.fence: fenced from heartbeat_ttl - fence_margin after the oldest unconfirmed
// heartbeat was sent (heartbeat_fence.hpp) until every address still held is confirmed again.
void SessionState::Impl::checkFence() {
  if (!store()) {
    return;  // stopped: a timer that had fired before stop() cancelled it
  }
  if (!settings.fence) {
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  const bool want = fence.fencedAt(now);
  if (want != fenced) {
    fenced = want;
    counters.fenced.store(want ? 1 : 0, std::memory_order_relaxed);
    if (want) {
      counters.fences.fetch_add(1, std::memory_order_relaxed);
      log->warn(
          "media.state: no heartbeat confirmed by the store for {} ms: fenced (relaying stopped, "
          "new calls refused, addresses withdrawn) before a peer may take the addresses over at "
          "{} ms",
          (settings.heartbeatTtl - settings.fenceMargin).count(), settings.heartbeatTtl.count());
    } else {
      log->info(
          "media.state: heartbeats confirmed again, no other relay holds the addresses: "
          "fence lifted, relaying {} calls",
          hooks.sessions ? hooks.sessions() : 0);
    }
    if (hooks.fence) {
      hooks.fence(want);
    }
    if (!want) {
      for (const auto& key : removeLater) {
        store()->removeValue(key, [](Result<void>) {});
      }
      removeLater.clear();
      refreshTimer.cancel();
      refresh();  // records written while fenced, and any that expired meanwhile
    }
  }
  const auto deadline = fence.deadline();
  if (want || !deadline) {
    fenceTimer.cancel();
    return;
  }
  fenceTimer.expires_at(*deadline);
  fenceTimer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) {
      self->checkFence();
    }
  });
}

// A taken-over address whose calls have all ended goes back (its relay may be restarted).
void SessionState::Impl::releaseIdle() {
  if (fenced) {
    return;
  }
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
    fence.drop(it->first);
    store()->removeValue(beatKey(it->first), [](Result<void>) {});
    if (hooks.release) {
      hooks.release(it->first);
    }
    it = takenAt.erase(it);
  }
}

void SessionState::Impl::beat() {
  if (!store()) {
    return;  // stopped: a timer that had fired before stop() cancelled it
  }
  if (!claimed) {
    claim();
  } else if (!fenced && hooks.bindOwn) {
    hooks.bindOwn();  // its ng socket, released while fenced, if it could not be bound since
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
  if (fenced) {
    return;  // a fenced relay takes nothing over
  }
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
  store()->getValue(beatKey(peer), [self = shared_from_this(), peer](Result<std::string> r) {
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
  const auto sent = std::chrono::steady_clock::now();
  store()->putValue(beatKey(peer), encodeHeartbeat(mine), settings.heartbeatTtl, true,
                    [self = shared_from_this(), peer, mine, sent](Result<bool> won) {
                      self->taking.erase(peer);
                      if (!won) {
                        self->failed("takeover lock", won.error());
                        return;
                      }
                      self->peersSeen.erase(peer);
                      if (*won) {
                        self->takeOver(ServedAddress{peer, mine.address, mine.ng}, sent);
                      }
                    });
}

void SessionState::Impl::takeOver(const ServedAddress& dead,
                                  std::chrono::steady_clock::time_point locked) {
  log->warn("media.state: relay {} stopped its heartbeat: taking over its address {} (ng {})",
            dead.instance, dead.address, dead.ng);
  if (hooks.takeOver && !hooks.takeOver(dead)) {
    // Its address cannot be served here (e.g. a fenced relay on this same host still holds
    // it): the lock goes at once, so that relay finds its heartbeat free when it is back.
    store()->removeValue(beatKey(dead.instance), [](Result<void>) {});
    return;
  }
  addServed(dead);
  takenAt[dead.instance] = std::chrono::steady_clock::now();
  fence.written(dead.instance, locked);
  counters.takeovers.fetch_add(1, std::memory_order_relaxed);
  checkFence();
  writeBeats();
  restorePage(dead.instance, dead.instance, "", [] {});
}

void SessionState::Impl::restorePage(const std::string& instance, const std::string& owner,
                                     const std::string& cursor, std::function<void()> done) {
  auto onPage = [self = shared_from_this(), instance, owner,
                 done](Result<store::Page<store::KeyValue>> page) mutable {
    if (!page) {
      self->failed("restore", page.error());
      done();
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
      self->hooks.restore(std::move(*record), owner);
    }
    if (page->next.empty()) {
      done();
    } else {
      self->restorePage(instance, owner, page->next, std::move(done));
    }
  };
  store()->listValues(settings.keyPrefix + "sess:" + instance + ":", cursor, 256,
                      std::move(onPage));
}

void SessionState::Impl::writeStopped(std::function<void()> done) {
  std::vector<ServedAddress> served;
  {
    std::lock_guard lock(servedMutex);
    served = servedList;
  }
  auto remaining = std::make_shared<size_t>(served.size());
  if (served.empty()) {
    done();
  }
  for (const auto& s : served) {
    // Only over this relay's own heartbeat: never over another relay's hold of the address.
    store()->putValueIf(beatKey(s.instance), encodeHeartbeat(Heartbeat{true, "", "", ""}),
                        std::chrono::hours(24), {beatValue(s)}, [remaining, done](Result<bool>) {
                          if (--*remaining == 0) {
                            done();
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
  impl_->thread.start(impl_->settings.storeFactory, impl_->settings.store, [impl = impl_] {
    impl->beat();
    impl->refreshTimer.expires_after(impl->settings.recordTtl / 3);
    impl->refreshTimer.async_wait([impl](boost::system::error_code ec) {
      if (!ec) {
        impl->refresh();
      }
    });
  });
}

void SessionState::stop() {
  if (!impl_->thread.running()) {
    return;
  }
  std::function<void(std::function<void()>)> last;
  if (!impl_->hooks.sessions || impl_->hooks.sessions() == 0) {
    last = [impl = impl_](std::function<void()> done) {
      impl->beatTimer.cancel();
      impl->writeStopped(std::move(done));
    };
  }
  impl_->thread.stop(std::move(last), std::chrono::seconds(1), [impl = impl_] {
    impl->beatTimer.cancel();
    impl->refreshTimer.cancel();
    impl->fenceTimer.cancel();
  });
}

void SessionState::write(const std::string& callId, const std::string& owner, std::string record) {
  asio::post(impl_->thread.io(), [impl = impl_, key = impl_->recordKey(owner, callId),
                                  instance = owner.empty() ? impl_->self.instance : owner,
                                  record = std::move(record)]() mutable {
    if (impl->store()) {
      impl->write(instance, key, std::move(record));
    }
  });
}

std::vector<ServedAddress> SessionState::served() const {
  if (impl_->fenced) {
    return {};
  }
  std::lock_guard lock(impl_->servedMutex);
  return impl_->servedList;
}

bool SessionState::fenced() const {
  return impl_->fenced;
}

}  // namespace evosip::media
