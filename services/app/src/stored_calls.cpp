// app.state (stored_calls.hpp): records, the heartbeat lease and the takeover of a dead peer
// app's calls, on one thread with its own io_context and Store.
#include <map>
#include <set>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <evosip/app/stored_calls.hpp>
#include <evosip/log/log.hpp>
#include <evosip/store/store_thread.hpp>

namespace evosip::app {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kStopped = "stopped";

// The heartbeat of an app that serves its own calls, and a survivor's hold of a dead app's.
std::string aliveValue(const std::string& instance) {
  return "alive " + instance;
}
std::string takenValue(const std::string& by) {
  return "taken " + by;
}

}  // namespace

struct StoredCalls::Impl : std::enable_shared_from_this<Impl> {
  Impl(StoredCallsSettings s, Hooks h, StoredCallsCounters& c)
      : settings(std::move(s)),
        hooks(std::move(h)),
        counters(c),
        beatTimer(thread.io()),
        refreshTimer(thread.io()),
        log(log::get("app")) {}

  StoredCallsSettings settings;
  Hooks hooks;
  StoredCallsCounters& counters;
  store::StoreThread thread;
  asio::steady_timer beatTimer, refreshTimer;
  std::shared_ptr<spdlog::logger> log;

  // State thread only.
  std::map<std::string, std::string> live;  // key -> record: rewritten every record_ttl / 3
  std::set<std::string> peersSeen;          // peers whose heartbeat was seen alive
  std::set<std::string> taking;             // peers whose lock is being raced for
  bool claimed = false;                     // this app's own heartbeat key is its own
  bool claiming = false;

  std::string recordPrefix(const std::string& instance) const {
    return settings.keyPrefix + "call:" + instance + ":";
  }
  std::string beatKey(const std::string& instance) const {
    return settings.keyPrefix + "hb:" + instance;
  }
  void failed(const char* what, const Error& e) {
    counters.storeErrors.fetch_add(1, std::memory_order_relaxed);
    log->warn("app.state: {}: {}", what, e.message);
  }
  auto onDone(const char* what) {
    return [self = shared_from_this(), what](auto r) {
      if (!r) {
        self->failed(what, r.error());
      }
    };
  }

  void write(const std::string& key, std::string record);
  void refresh();
  void beat();
  void claim();
  void renew();
  void lose();
  void watch(const std::string& peer);
  void lock(const std::string& peer);
  // The stored calls of `instance`, page by page, handed to Hooks::adopt; a dead peer's are
  // removed from its name once handed over (the worker writes them under this app's).
  void adoptPage(const std::string& instance, const std::string& cursor);
  void writeStopped(std::function<void()> done);
  store::Store* store() const { return thread.store(); }
};

void StoredCalls::Impl::write(const std::string& key, std::string record) {
  if (record.empty()) {
    if (live.erase(key) != 0) {
      store()->removeValue(key, onDone("remove"));
    }
  } else {
    live[key] = record;
    store()->putValue(key, std::move(record), settings.recordTtl, false, onDone("write"));
  }
  counters.records.store(live.size(), std::memory_order_relaxed);
}

void StoredCalls::Impl::refresh() {
  if (!store()) {
    return;  // stopped: a timer that had fired before stop() cancelled it
  }
  for (const auto& [key, record] : live) {
    store()->putValue(key, record, settings.recordTtl, false, onDone("refresh"));
  }
  refreshTimer.expires_after(settings.recordTtl / 3);
  refreshTimer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) {
      self->refresh();
    }
  });
}

void StoredCalls::Impl::beat() {
  if (!store()) {
    return;
  }
  if (claimed) {
    renew();
  } else {
    claim();
  }
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

// The app's own lease: written only where the key is absent, "stopped" or this app's own. Won,
// the calls stored under its name (left by its previous process) are adopted; held by a peer
// (it took them over), the app serves new calls and claims again at the next heartbeat.
void StoredCalls::Impl::claim() {
  if (claiming) {
    return;
  }
  claiming = true;
  const std::string mine = aliveValue(settings.instanceId);
  store()->putValueIf(beatKey(settings.instanceId), mine, settings.heartbeatTtl,
                      {mine, std::string(kStopped)}, [self = shared_from_this()](Result<bool> r) {
                        self->claiming = false;
                        if (!r) {
                          self->failed("own heartbeat", r.error());
                        } else if (*r && !self->claimed) {
                          self->claimed = true;
                          self->adoptPage(self->settings.instanceId, "");
                        }
                      });
}

void StoredCalls::Impl::renew() {
  const std::string mine = aliveValue(settings.instanceId);
  store()->putValueIf(beatKey(settings.instanceId), mine, settings.heartbeatTtl, {mine},
                      [self = shared_from_this()](Result<bool> r) {
                        if (!r) {
                          self->failed("heartbeat", r.error());
                        } else if (!*r && self->claimed) {
                          self->lose();
                        }
                      });
}

// A peer holds this app's heartbeat: its lease expired (the store did not see it renewed) and
// the peer took the calls over. They are the peer's now: dropped here, their records left alone.
void StoredCalls::Impl::lose() {
  claimed = false;
  live.clear();
  counters.records.store(0, std::memory_order_relaxed);
  counters.lost.fetch_add(1, std::memory_order_relaxed);
  log->warn(
      "app.state: a peer holds this app's heartbeat (its lease expired and the peer took its "
      "calls over): calls here dropped");
  if (hooks.lost) {
    hooks.lost();
  }
}

void StoredCalls::Impl::watch(const std::string& peer) {
  if (taking.count(peer) != 0) {
    return;
  }
  store()->getValue(beatKey(peer), [self = shared_from_this(), peer](Result<std::string> r) {
    if (r) {
      if (*r == aliveValue(peer)) {
        self->peersSeen.insert(peer);
      } else {
        self->peersSeen.erase(peer);  // stopped cleanly, or held by a survivor already
      }
      return;
    }
    if (r.error().code != Errc::kNotFound) {
      self->failed("peer heartbeat", r.error());  // the store is unreachable: decide nothing
      return;
    }
    if (self->peersSeen.count(peer) != 0) {
      self->lock(peer);
    }
  });
}

// The survivors race for the dead app's heartbeat key (SET NX): one wins and adopts its calls.
// The hold outlives every record of the dead app (record_ttl), so nobody adopts them twice.
void StoredCalls::Impl::lock(const std::string& peer) {
  taking.insert(peer);
  store()->putValue(beatKey(peer), takenValue(settings.instanceId), settings.recordTtl, true,
                    [self = shared_from_this(), peer](Result<bool> won) {
                      self->taking.erase(peer);
                      if (!won) {
                        self->failed("takeover lock", won.error());
                        return;
                      }
                      self->peersSeen.erase(peer);
                      if (!*won) {
                        return;  // another survivor took it
                      }
                      self->log->warn(
                          "app.state: app {} stopped its heartbeat: taking its calls over", peer);
                      self->counters.takeovers.fetch_add(1, std::memory_order_relaxed);
                      self->adoptPage(peer, "");
                    });
}

void StoredCalls::Impl::adoptPage(const std::string& instance, const std::string& cursor) {
  const bool peer = instance != settings.instanceId;
  auto onPage = [self = shared_from_this(), instance,
                 peer](Result<store::Page<store::KeyValue>> page) {
    if (!page) {
      self->failed("adopt", page.error());
      return;
    }
    for (const auto& kv : page->items) {
      auto record = decodeCallRecord(kv.value, self->settings.limits);
      if (!record) {
        self->counters.badRecords.fetch_add(1, std::memory_order_relaxed);
        self->log->warn("app.state: stored call {} skipped: {}", kv.key, record.error().message);
        continue;
      }
      self->counters.adopted.fetch_add(1, std::memory_order_relaxed);
      if (peer) {
        self->store()->removeValue(kv.key, self->onDone("remove adopted"));
      }
      self->hooks.adopt(std::move(*record));
    }
    if (!page->next.empty()) {
      self->adoptPage(instance, page->next);
    }
  };
  store()->listValues(recordPrefix(instance), cursor, 256, std::move(onPage));
}

void StoredCalls::Impl::writeStopped(std::function<void()> done) {
  if (!claimed) {
    done();
    return;
  }
  // Only over this app's own heartbeat: never over a peer's hold of it.
  store()->putValueIf(beatKey(settings.instanceId), std::string(kStopped), std::chrono::hours(24),
                      {aliveValue(settings.instanceId)},
                      [done = std::move(done)](Result<bool>) { done(); });
}

StoredCalls::StoredCalls(StoredCallsSettings settings, Hooks hooks)
    : impl_(std::make_shared<Impl>(std::move(settings), std::move(hooks), counters_)) {}

StoredCalls::~StoredCalls() {
  stop();
}

void StoredCalls::start() {
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

void StoredCalls::stop() {
  if (!impl_->thread.running()) {
    return;
  }
  std::function<void(std::function<void()>)> last;
  if (!impl_->hooks.calls || impl_->hooks.calls() == 0) {
    last = [impl = impl_](std::function<void()> done) {
      impl->beatTimer.cancel();
      impl->writeStopped(std::move(done));
    };
  }
  impl_->thread.stop(std::move(last), std::chrono::seconds(1), [impl = impl_] {
    impl->beatTimer.cancel();
    impl->refreshTimer.cancel();
  });
}

void StoredCalls::write(const std::string& callId, std::string record) {
  asio::post(impl_->thread.io(),
             [impl = impl_, key = impl_->recordPrefix(impl_->settings.instanceId) + callId,
              record = std::move(record)]() mutable {
               if (impl->store()) {
                 impl->write(key, std::move(record));
               }
             });
}

}  // namespace evosip::app
