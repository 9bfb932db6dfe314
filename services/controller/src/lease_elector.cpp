#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <evosip/controller/lease_elector.hpp>
#include <evosip/controller/slice_watch.hpp>
#include <evosip/log/log.hpp>

namespace evosip::controller {

namespace asio = boost::asio;

LeaseElector::LeaseElector(KubeClient& client, LeaseSettings settings,
                           std::function<void(bool)> onLeader)
    : client_(client), settings_(std::move(settings)), onLeader_(std::move(onLeader)) {}

std::string LeaseElector::path(bool item) const {
  std::string p =
      fmt::format("/apis/coordination.k8s.io/v1/namespaces/{}/leases", queryEscape(settings_.ns));
  return item ? p + "/" + queryEscape(settings_.name) : p;
}

void LeaseElector::setLeader(bool leader) {
  if (leader == leader_) {
    return;
  }
  leader_ = leader;
  log::get("controller")
      ->info("lease {}: {} {}", settings_.name, settings_.identity,
             leader ? "is the leader" : "is no longer the leader");
  onLeader_(leader);
}

void LeaseElector::observe(const Lease& lease) {
  if (lease.holder != observed_.holder || lease.renewTime != observed_.renewTime ||
      lease.resourceVersion != observed_.resourceVersion) {
    observedAt_ = Clock::now();
  }
  observed_ = lease;
}

asio::awaitable<void> LeaseElector::run() {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  const auto period = std::max(settings_.duration / 3, std::chrono::milliseconds(100));
  const auto renewDeadline = settings_.duration * 2 / 3;
  while (!released_) {
    const bool held = co_await attempt();
    if (released_) {
      break;  // an attempt that ended after release() must not take the Lease back
    }
    if (held) {
      renewedAt_ = Clock::now();
      setLeader(true);
    } else if (!leader_ || Clock::now() - renewedAt_ >= renewDeadline) {
      setLeader(false);
    }
    timer.expires_after(period);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> LeaseElector::release() {
  released_ = true;
  if (!leader_) {
    co_return;
  }
  setLeader(false);
  // As client-go's ReleaseOnCancel: no holder, so the Lease counts as free at once.
  Lease given = observed_;
  given.holder.clear();
  given.durationS = 1;
  if (co_await write("PUT", given)) {
    log::get("controller")->info("lease {}: released by {}", settings_.name, settings_.identity);
  }
}

asio::awaitable<bool> LeaseElector::write(const std::string& method, const Lease& lease) {
  const std::string body = leaseJson(settings_.name, settings_.ns, lease, microTimeNow());
  auto r = co_await client_.request(method, path(method == "PUT"), body, settings_.duration / 3,
                                    64 * 1024);
  if (!r || (r->status != 200 && r->status != 201)) {
    if (!r || r->status != 409) {
      log::get("controller")
          ->warn("lease {}: {} failed: {}", settings_.name, method,
                 r ? fmt::format("HTTP {}", r->status) : r.error().message);
    }
    co_return false;  // 409: another replica wrote first
  }
  if (auto written = parseLease(r->body)) {
    observe(*written);
  }
  co_return true;
}

asio::awaitable<bool> LeaseElector::attempt() {
  auto r = co_await client_.request("GET", path(true), "", settings_.duration / 3, 64 * 1024);
  if (released_ || !r || (r->status != 200 && r->status != 404)) {
    co_return false;
  }
  const int seconds =
      static_cast<int>(std::max<int64_t>(1, (settings_.duration.count() + 999) / 1000));
  if (r->status == 404) {
    const Lease fresh{"", settings_.identity, seconds, "", 0};
    co_return co_await write("POST", fresh);
  }
  auto lease = parseLease(r->body);
  if (!lease) {
    co_return false;
  }
  observe(*lease);
  const bool mine = lease->holder == settings_.identity;
  const auto held = std::chrono::seconds(lease->durationS > 0 ? lease->durationS : seconds);
  const bool expired = lease->holder.empty() || Clock::now() - observedAt_ >= held;
  if (!mine && !expired) {
    co_return false;
  }
  Lease next = *lease;
  next.holder = settings_.identity;
  next.durationS = seconds;
  next.transitions += mine ? 0 : 1;
  co_return co_await write("PUT", next);
}

}  // namespace evosip::controller
