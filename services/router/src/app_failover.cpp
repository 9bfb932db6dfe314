// Failover between the apps of the app set: a request to an app that answers 503 or nothing
// at all (router.app_timeout_ms) goes to the next app in the call's rendezvous order, each app
// at most once. For router.app_hold_down_s, an app that refused is chosen for new calls only
// when every other app refuses too (it drains), and one that answered nothing else since the
// request left is out of the set (an app that answers other requests is alive and chose to
// ignore this one).
#include <evosip/log/log.hpp>
#include <evosip/router/router.hpp>

namespace evosip::router {

using transaction::TransactionId;

transaction::Target Router::appTarget(role::Target& app, bool alternatives) const {
  transaction::Target t;
  t.nextHop = transaction::Destination{transport::Protocol::kUdp, app.endpoint, {}};
  if (alternatives) {
    // With one app there is nowhere else to go: its request runs to the transaction timers.
    t.silenceTimeout = shared_.settings().appTimeout;
  }
  app.forwarded.fetch_add(1, std::memory_order_relaxed);
  return t;
}

std::optional<transaction::Target> Router::retarget(TransactionId server,
                                                    const transaction::Target&, int code) {
  auto it = appRequests_.find(server.value);
  if (it == appRequests_.end()) {
    return std::nullopt;  // a binding or an outbound hop: no equivalent to try
  }
  AppRequest& request = it->second;
  auto apps = shared_.apps();
  const int64_t now = nowNs();
  size_t exclude = SIZE_MAX;
  if (request.app < apps->size() && apps->at(request.app).uri == request.uri) {
    role::Target& app = apps->at(request.app);
    exclude = request.app;
    const bool silent = code != 503;
    const auto hold = toNs(shared_.settings().appHoldDown);
    if (!silent) {
      // A refusal (its drain, overload): alive, and chosen again only if every app refuses.
      if (app.markDraining(now, hold)) {
        log::get("router")->warn("app {} refuses calls (503): others first for {} ms", app.uri,
                                 shared_.settings().appHoldDown.count());
      }
    } else {
      app.timeouts.fetch_add(1, std::memory_order_relaxed);
      if (!app.answeredSince(request.sentNs) && app.holdDown(now, hold)) {
        log::get("router")->warn("app {} answers nothing: out of new calls for {} ms", app.uri,
                                 shared_.settings().appHoldDown.count());
      }
    }
  }
  if (request.attempt >= apps->size()) {
    return std::nullopt;
  }
  const size_t next = apps->pick(request.callId, now, exclude);
  if (next == SIZE_MAX || apps->at(next).uri == request.uri) {
    return std::nullopt;
  }
  RouterCounters::bump(counters_.appFailovers);
  request = AppRequest{request.callId, next, apps->at(next).uri, now, request.attempt + 1};
  return appTarget(apps->at(next), true);
}

void Router::noteAppResponse(TransactionId client) {
  if (appRequests_.empty() || !client.valid()) {
    return;
  }
  auto it = appRequests_.find(proxy_.serverOf(client).value);
  if (it == appRequests_.end()) {
    return;
  }
  auto apps = shared_.apps();
  if (it->second.app < apps->size() && apps->at(it->second.app).uri == it->second.uri) {
    apps->at(it->second.app).noteResponse(nowNs());
  }
}

}  // namespace evosip::router
