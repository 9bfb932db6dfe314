// Step 7 of the request path, media anchoring (rtpengine's ng protocol, towards `evosip media`
// or rtpengine): whether an offer goes through a relay, which relay (rendezvous by Call-ID, the
// next one when a relay is silent or refuses new sessions), the offer and the answer rewritten
// by it, and the delete when a call ends.
#include <evosip/log/log.hpp>
#include <evosip/router/router.hpp>

#include "media_rules.hpp"

namespace evosip::router {

using transaction::TransactionId;
using namespace detail;

namespace {

// The relay takes no new sessions (its drain, its session limit): another relay may.
bool refusesNewSessions(const Error& e) {
  return e.code == Errc::kInvalid &&
         (e.message == "draining" || e.message == "Parallel session limit reached");
}

// The relay is not there (no reply after every retransmission, or the socket failed).
bool relaySilent(const Error& e) {
  return e.code == Errc::kTimeout || e.code == Errc::kUnavailable;
}

}  // namespace

Router::MediaOffer Router::offerOf(const sip::Message& m, bool initial,
                                   std::string_view natSource) {
  MediaOffer offer;
  offer.callId = std::string(m.callId());
  offer.fromTag = tagOf(m.from());
  offer.initial = initial;
  offer.command = bencode::Value::makeDict();
  offer.command.set("command", "offer").set("call-id", offer.callId).set("from-tag", offer.fromTag);
  if (!initial) {
    offer.command.set("to-tag", tagOf(m.to()));
  }
  if (auto via = m.topVia(); via && via->branch()) {
    offer.command.set("via-branch", *via->branch());
  }
  offer.command.set("sdp", m.body());
  addMediaFlags(offer.command, natSource);
  return offer;
}

void Router::forwardWithMedia(TransactionId id, std::vector<transaction::Target> targets,
                              transaction::ForwardOptions options, MediaMode mode) {
  // Nothing to decide without a relay to use (`nat` goes on unanchored then): no second parse
  // of the request on the way of every call.
  auto set = shared_.media();
  PendingForward fwd{std::move(targets), std::move(options)};
  if (mode == MediaMode::kNever || (mode == MediaMode::kNat && set->size() == 0)) {
    forward(id, std::move(fwd.targets), std::move(fwd.options));
    return;
  }
  // One parse of the kept request, one walk of its Vias: the decision and the offer together.
  std::optional<MediaOffer> offer;
  withRequest(id, [&](const sip::Message& m) {
    if (m.method() != sip::Method::kInvite || !hasSdp(m)) {
      return;  // no offer in the request (a delayed offer is not anchored)
    }
    const CallerAddress caller = callerAddress(m);
    if (mode == MediaMode::kAlways || caller.behindNat) {
      offer = offerOf(m, true, caller.behindNat ? caller.source : std::string_view{});
    }
  });
  if (!offer) {
    forward(id, std::move(fwd.targets), std::move(fwd.options));
    return;
  }
  // The next hop's address first: no relay session for a call that cannot go anywhere.
  if (!nextHopsKnown(id, fwd.targets, [&] {
        return [this, id, fwd, mode]() mutable {
          forwardWithMedia(id, std::move(fwd.targets), std::move(fwd.options), mode);
        };
      })) {
    return;
  }
  const size_t pick = set->pick(offer->callId, nowNs());
  if (pick == SIZE_MAX) {
    forwardWithoutRelay(id, std::move(fwd), mode, set->size() != 0);
    return;
  }
  RelayChoice relay{set->at(pick).uri, set->at(pick).endpoint, pick, 1};
  sendOffer(id, std::move(fwd), std::move(*offer), std::move(relay));
}

void Router::forwardWithoutRelay(TransactionId id, PendingForward fwd, MediaMode mode,
                                 bool relaysConfigured) {
  // `nat` is best effort (no relay configured or none up: the call goes on unanchored);
  // `always` means the call must not bypass a relay.
  if (mode == MediaMode::kNat) {
    if (relaysConfigured) {
      RouterCounters::bump(counters_.mediaFailures);
    }
    forward(id, std::move(fwd.targets), std::move(fwd.options));
    return;
  }
  RouterCounters::bump(counters_.mediaFailures);
  proxy_.respond(id, 503, "No Media Relay", "Retry-After: 5\r\n");
}

void Router::sendOffer(TransactionId id, PendingForward fwd, MediaOffer offer, RelayChoice relay) {
  // Kept whole for a retry on the next relay; the command is read before the callback is made.
  auto kept = std::make_shared<MediaOffer>(std::move(offer));
  const transport::Endpoint to = relay.endpoint;
  ng_.request(to, kept->command,
              [this, id, fwd = std::move(fwd), kept, relay = std::move(relay),
               alive = std::weak_ptr<char>(alive_)](Result<bencode::Value> r) mutable {
                if (!alive.expired()) {
                  onOfferReply(id, std::move(fwd), std::move(*kept), std::move(relay), r);
                }
              });
}

void Router::onOfferReply(TransactionId id, PendingForward fwd, MediaOffer offer, RelayChoice relay,
                          const Result<bencode::Value>& r) {
  const auto sdp = r ? r->string("sdp") : std::nullopt;
  if (!sdp) {
    RouterCounters::bump(counters_.mediaFailures);
    log::get("router")->warn("call {}: media relay {} refused the offer: {}", offer.callId,
                             relay.uri, r ? "no sdp in the reply" : r.error().message);
    if (!r && offer.initial && (relaySilent(r.error()) || refusesNewSessions(r.error())) &&
        offerElsewhere(id, fwd, offer, relay, relaySilent(r.error()))) {
      return;
    }
    proxy_.respond(id, 503, "Media Relay Unavailable", "Retry-After: 5\r\n");
    return;
  }
  RouterCounters::bump(counters_.mediaOffers);
  const auto* st = proxy_.layer().server(id);
  if (st == nullptr || st->lastStatus() >= 200) {
    // Cancelled (or timed out) while the relay answered: nothing will use the session.
    if (offer.initial) {
      deleteMedia(relay.uri, offer.callId, offer.fromTag);
    }
    return;
  }
  MediaCall call;
  call.relayUri = relay.uri;
  call.relay = relay.endpoint;
  call.fromTag = offer.fromTag;
  call.initial = offer.initial;
  mediaCalls_[offer.callId] = std::move(call);
  mediaByServer_[id.value] = offer.callId;
  auto edit = std::move(fwd.options.editBranch);
  fwd.options.editBranch = [edit = std::move(edit), body = std::string(*sdp)](
                               size_t i, const transaction::Target& t, sip::MessageEditor& e) {
    if (edit) {
      edit(i, t, e);
    }
    e.replaceBody(body);
  };
  forward(id, std::move(fwd.targets), std::move(fwd.options));
}

bool Router::offerElsewhere(TransactionId id, PendingForward& fwd, MediaOffer& offer,
                            const RelayChoice& failed, bool silent) {
  // The relay that failed is held out of new calls for a while; the offer goes to the next
  // relay in the call's rendezvous order, each relay of the set at most once.
  auto set = shared_.media();
  const int64_t now = nowNs();
  size_t exclude = SIZE_MAX;
  if (failed.index < set->size() && set->at(failed.index).uri == failed.uri) {
    role::Target& t = set->at(failed.index);
    const auto hold = toNs(shared_.settings().relayHoldDown);
    if (silent) {
      t.timeouts.fetch_add(1, std::memory_order_relaxed);
      if (t.holdDown(now, hold)) {
        log::get("router")->warn("media relay {} answers nothing: out of new calls for {} ms",
                                 t.uri, shared_.settings().relayHoldDown.count());
      }
    } else if (t.markDraining(now, hold)) {
      log::get("router")->warn("media relay {} takes no new sessions: others first for {} ms",
                               t.uri, shared_.settings().relayHoldDown.count());
    }
    exclude = failed.index;
  }
  if (failed.attempt >= set->size()) {
    return false;
  }
  const size_t next = set->pick(offer.callId, now, exclude);
  if (next == SIZE_MAX || set->at(next).uri == failed.uri) {
    return false;
  }
  RouterCounters::bump(counters_.relayFailovers);
  RelayChoice relay{set->at(next).uri, set->at(next).endpoint, next, failed.attempt + 1};
  sendOffer(id, std::move(fwd), std::move(offer), std::move(relay));
  return true;
}

void Router::answerMedia(TransactionId client, std::string text,
                         std::optional<store::DialogRecord> rec) {
  auto response = sip::Message::parse(text);
  auto it = response ? mediaCalls_.find(std::string(response->callId())) : mediaCalls_.end();
  if (it == mediaCalls_.end()) {
    proxy_.resumeResponse(client, text);
    return;
  }
  bencode::Value cmd = bencode::Value::makeDict();
  cmd.set("command", "answer")
      .set("call-id", response->callId())
      .set("from-tag", tagOf(response->from()))
      .set("to-tag", tagOf(response->to()))
      .set("sdp", response->body());
  if (auto via = response->topVia(); via && via->branch()) {
    cmd.set("via-branch", *via->branch());
  }
  addMediaFlags(cmd);
  ng_.request(it->second.relay, cmd,
              [this, client, text = std::move(text), rec = std::move(rec),
               alive = std::weak_ptr<char>(alive_)](Result<bencode::Value> r) mutable {
                if (!alive.expired()) {
                  onAnswerReply(client, std::move(text), std::move(rec), r);
                }
              });
}

void Router::onAnswerReply(TransactionId client, std::string text,
                           std::optional<store::DialogRecord> rec,
                           const Result<bencode::Value>& r) {
  const auto sdp = r ? r->string("sdp") : std::nullopt;
  auto m = sip::Message::parse(text);
  std::string out = text;
  if (!sdp || !m) {
    // The answer goes on as the callee wrote it: better one-way audio than none.
    RouterCounters::bump(counters_.mediaFailures);
    log::get("router")->warn("media relay refused an answer: {}",
                             r ? "no sdp in the reply" : r.error().message);
  } else {
    RouterCounters::bump(counters_.mediaAnswers);
    sip::MessageEditor edit(*m);
    edit.replaceBody(*sdp);
    out = edit.str();
  }
  if (rec) {
    recordDialog(client, std::move(*rec), std::move(out));
  } else {
    proxy_.resumeResponse(client, out);
  }
}

void Router::deleteMedia(const std::string& relayUri, const std::string& callId,
                         const std::string& fromTag) {
  sendDelete(MediaDelete{
      relayUri, callId, fromTag, clock_.now() + shared_.settings().mediaDeleteRetry, {}});
}

void Router::sendDelete(MediaDelete d) {
  auto relay = relayEndpoint(d.relayUri);
  if (!relay) {
    RouterCounters::bump(counters_.mediaFailures);
    return;
  }
  bencode::Value cmd = bencode::Value::makeDict();
  cmd.set("command", "delete").set("call-id", d.callId).set("from-tag", d.fromTag);
  ng_.request(*relay, cmd,
              [this, d = std::move(d),
               alive = std::weak_ptr<char>(alive_)](Result<bencode::Value> r) mutable {
                if (!alive.expired()) {
                  onDeleteReply(std::move(d), r);
                }
              });
}

// A relay that answers nothing may be restarting, or its address being taken over by a peer:
// either restores the call from the store and serves it at the same ng address. The delete is
// sent there again until it is answered, or router.media.delete_retry_s passed, so that the
// call ended meanwhile does not come back and hold its ports until the relay's idle timeout.
void Router::onDeleteReply(MediaDelete d, const Result<bencode::Value>& r) {
  if (r) {
    RouterCounters::bump(counters_.mediaDeletes);
    return;
  }
  RouterCounters::bump(counters_.mediaFailures);
  const auto now = clock_.now();
  if (!relaySilent(r.error()) || now >= d.giveUpAt) {
    return;
  }
  if (deleteRetries_.size() >= kMaxDeleteRetries) {
    log::get("router")->warn("call {}: media relay {} answers no delete: not retried ({} wait)",
                             d.callId, d.relayUri, deleteRetries_.size());
    return;
  }
  d.dueAt = now + shared_.settings().mediaDeleteRetryEvery;
  deleteRetries_.push_back(std::move(d));
}

void Router::retryDeletes(runtime::Clock::time_point now) {
  while (!deleteRetries_.empty() && deleteRetries_.front().dueAt <= now) {
    MediaDelete d = std::move(deleteRetries_.front());
    deleteRetries_.pop_front();
    RouterCounters::bump(counters_.mediaDeleteRetries);
    sendDelete(std::move(d));
  }
  counters_.mediaDeletesWaiting.store(deleteRetries_.size(), std::memory_order_relaxed);
}

}  // namespace evosip::router
