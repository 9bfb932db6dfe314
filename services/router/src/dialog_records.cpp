// The router's dialogs: the in-dialog step of the request path (a To-tagged request goes on
// only along a dialog the platform knows), the ACK of a 2xx, early dialogs, and the dialog
// records written when an initial INVITE is answered 2xx.
#include <boost/asio/post.hpp>

#include <evosip/log/log.hpp>
#include <evosip/router/router.hpp>

#include "router_util.hpp"

namespace evosip::router {

using transaction::TransactionId;
using namespace detail;

std::string_view rejectionName(Rejection r) {
  static constexpr std::string_view kNames[] = {
      "no_dialog",     "foreign_hop",       "ack_dropped",   "for_self",          "loop",
      "too_many_hops", "too_many_contacts", "binding_bytes", "transaction_memory"};
  const auto i = static_cast<size_t>(r);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

// ---- 3. in-dialog validation ----

void Router::validateInDialog(TransactionId id, const sip::Message& req,
                              const transaction::RouteInfo& route) {
  // A PRACK or UPDATE of an early dialog of this worker: no store read.
  if (const auto* early = earlyDialogs(req.callId())) {
    const auto check = checkInDialog(req, nextHopOf(route), *early);
    if (check.verdict == InDialogVerdict::kForward) {
      forward(id, {transaction::Target{}}, forwardOptions());
      return;
    }
  }
  // One store read per in-dialog request; a BYE and a re-offer use the same read.
  store_->getDialogs(std::string(req.callId()), [this, id, alive = std::weak_ptr<char>(alive_)](
                                                    Result<std::vector<store::DialogRecord>> r) {
    if (alive.expired()) {
      return;
    }
    if (!r) {
      storeFailed(id);
      return;
    }
    onDialogsLoaded(id, *r);
  });
}

void Router::onDialogsLoaded(TransactionId id, const std::vector<store::DialogRecord>& dialogs) {
  withRequest(id, [&](const sip::Message& req) {
    const auto check = checkInDialog(req, nextHopOf(proxy_.routeInfo(req)), dialogs);
    switch (check.verdict) {
      case InDialogVerdict::kForward:
        forwardInDialog(id, req, *check.dialog);
        return;
      case InDialogVerdict::kForeignHop:
        counters_.reject(Rejection::kForeignHop);
        refuse(id, 403, "Not Along The Dialog");
        return;
      case InDialogVerdict::kMalformed:
        refuse(id, 400, "Bad Dialog Identifiers");
        return;
      case InDialogVerdict::kNoDialog:
        counters_.reject(Rejection::kNoDialog);
        refuse(id, 481, "Call/Transaction Does Not Exist");
        return;
    }
  });
}

void Router::forwardInDialog(TransactionId id, const sip::Message& req,
                             const store::DialogRecord& dialog) {
  // The route set carries the way (the edge Record-Routes); any router serves the dialog.
  if (req.method() == sip::Method::kBye) {
    removeDialog(dialog);
    mediaCalls_.erase(std::string(req.callId()));
  }
  auto relay = relayEndpoint(dialog.mediaRelay);
  if (req.method() != sip::Method::kInvite || !hasSdp(req) || dialog.mediaRelay.empty() || !relay) {
    forward(id, {transaction::Target{}}, forwardOptions());
    return;
  }
  // A re-INVITE with an offer: through the relay of the dialog.
  sendOffer(id, {transaction::Target{}}, forwardOptions(), dialog.mediaRelay, *relay, false,
            SIZE_MAX);
}

void Router::removeDialog(const store::DialogRecord& d) {
  if (!d.mediaRelay.empty()) {
    deleteMedia(d.mediaRelay, d.id.callId, d.id.fromTag);
  }
  store_->removeDialog(d.id, [this, alive = std::weak_ptr<char>(alive_)](Result<void> done) {
    if (!alive.expired()) {
      RouterCounters::bump(done ? counters_.dialogsRemoved : counters_.storeErrors);
    }
  });
}

// ---- the ACK of a 2xx (no transaction: validated like any in-dialog request, never answered) --

bool Router::onAck(const sip::Message& ack, const transport::Source&) {
  auto to = ack.to();
  if (!to || !to->tag().has_value()) {
    counters_.reject(Rejection::kAckDropped);  // matches no INVITE we answered: nothing to do
    return false;
  }
  std::string text(ack.buffer().substr(ack.startOffset(), ack.size() - ack.startOffset()));
  const std::string callId(ack.callId());
  store_->getDialogs(callId, [this, text = std::move(text), alive = std::weak_ptr<char>(alive_)](
                                 Result<std::vector<store::DialogRecord>> r) {
    if (alive.expired()) {
      return;
    }
    if (!r) {
      RouterCounters::bump(counters_.storeErrors);
      return;
    }
    onAckDialogs(text, *r);
  });
  return false;
}

void Router::onAckDialogs(const std::string& text,
                          const std::vector<store::DialogRecord>& dialogs) {
  auto ack = sip::Message::parse(text);
  if (!ack) {
    return;
  }
  const auto check = checkInDialog(*ack, nextHopOf(proxy_.routeInfo(*ack)), dialogs);
  if (check.verdict != InDialogVerdict::kForward || !proxy_.forwardAck(*ack, forwardOptions())) {
    counters_.reject(Rejection::kAckDropped);
  }
}

// ---- early dialogs ----

void Router::noteEarlyDialog(TransactionId server, const sip::Message& response) {
  if (!server.valid() || tagOf(response.to()).empty()) {
    return;
  }
  auto rec = dialogRecordOf(server, response);
  if (!rec) {
    return;
  }
  auto& entry = early_[rec->id.callId];
  for (const auto& d : entry.dialogs) {
    if (d.id == rec->id) {
      return;  // a second 18x of the same callee
    }
  }
  if (entry.dialogs.size() >= 16) {
    return;  // a fork answers early from at most a few callees
  }
  entry.server = server.value;
  earlyByServer_[server.value] = rec->id.callId;
  entry.dialogs.push_back(std::move(*rec));
}

const std::vector<store::DialogRecord>* Router::earlyDialogs(std::string_view callId) const {
  auto it = early_.find(std::string(callId));
  return it == early_.end() ? nullptr : &it->second.dialogs;
}

// ---- dialog records ----

std::optional<store::DialogRecord> Router::dialogRecordOf(TransactionId server,
                                                          const sip::Message& response) {
  store::DialogRecord rec;
  bool initial = false;
  withRequest(server, [&](const sip::Message& req) {
    auto to = req.to();
    initial = to && !to->tag().has_value();
    if (auto c = req.find(sip::HeaderId::kContact)) {
      if (auto na = sip::parseNameAddr(c->value)) {
        rec.callerContact = std::string(na->uriText);
      }
    }
  });
  if (!initial) {
    return std::nullopt;  // a re-INVITE: the dialog exists
  }
  rec.id.callId = std::string(response.callId());
  rec.id.fromTag = tagOf(response.from());
  rec.id.toTag = tagOf(response.to());
  for (const auto& h : response.headers()) {
    if (h.id == sip::HeaderId::kRecordRoute) {
      sip::ValueSplitter values(h.value);
      while (auto v = values.next()) {
        rec.callerRouteSet.emplace_back(*v);
      }
    }
    if (h.id == sip::HeaderId::kContact && rec.calleeContact.empty()) {
      if (auto na = sip::parseNameAddr(h.value)) {
        rec.calleeContact = std::string(na->uriText);
      }
    }
  }
  rec.calleeRouteSet.assign(rec.callerRouteSet.rbegin(), rec.callerRouteSet.rend());
  if (auto cseq = response.cseq()) {
    rec.callerCseq = cseq->number;
  }
  rec.owner = shared_.settings().instanceId;
  if (auto m = mediaCalls_.find(rec.id.callId); m != mediaCalls_.end()) {
    rec.mediaRelay = m->second.relayUri;  // any router can send the delete on BYE
  }
  rec.created = store::systemNow();
  rec.expires = rec.created + shared_.settings().dialogMaxDuration;
  return rec;
}

void Router::recordDialog(TransactionId client, store::DialogRecord rec, std::string text) {
  store_->putDialog(std::move(rec), [this, client, text = std::move(text),
                                     alive = std::weak_ptr<char>(alive_)](Result<void> r) mutable {
    if (alive.expired()) {
      return;
    }
    RouterCounters::bump(r ? counters_.dialogsCreated : counters_.storeErrors);
    // Posted: a backend may call back before putDialog returns, inside holdResponse.
    boost::asio::post(io_,
                      [this, client, text = std::move(text), alive = std::weak_ptr<char>(alive_)] {
                        if (!alive.expired()) {
                          proxy_.resumeResponse(client, text);
                        }
                      });
  });
}

bool Router::holdResponse(TransactionId client, const sip::Message& response) {
  const int code = response.statusCode();
  auto cseq = response.cseq();
  if (code <= 100 || code >= 300 || !cseq || cseq->method != sip::Method::kInvite) {
    return false;
  }
  const TransactionId server = client.valid() ? proxy_.serverOf(client) : TransactionId{};
  if (code < 200) {
    noteEarlyDialog(server, response);
  }
  // A 2xx to an initial INVITE waits for its dialog record; one with SDP of an anchored call
  // for the relay's answer first.
  auto rec = code >= 200 && server.valid() ? dialogRecordOf(server, response) : std::nullopt;
  const bool media = hasSdp(response) && mediaCalls_.count(std::string(response.callId())) != 0;
  if (!media && !rec) {
    return false;
  }
  std::string text(
      response.buffer().substr(response.startOffset(), response.size() - response.startOffset()));
  if (media) {
    answerMedia(client, std::move(text), std::move(rec));
  } else {
    recordDialog(client, std::move(*rec), std::move(text));
  }
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
                if (alive.expired()) {
                  return;
                }
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
              });
}

void Router::onContextDone(TransactionId server, bool answered) {
  if (auto e = earlyByServer_.find(server.value); e != earlyByServer_.end()) {
    if (auto it = early_.find(e->second); it != early_.end() && it->second.server == server.value) {
      early_.erase(it);
    }
    earlyByServer_.erase(e);
  }
  auto it = mediaByServer_.find(server.value);
  if (it == mediaByServer_.end()) {
    return;
  }
  const std::string callId = std::move(it->second);
  mediaByServer_.erase(it);
  auto call = mediaCalls_.find(callId);
  if (call == mediaCalls_.end()) {
    return;
  }
  if (!answered && call->second.initial) {
    // Failed, cancelled or timed out: the relay's session has no use.
    deleteMedia(call->second.relayUri, callId, call->second.fromTag);
    mediaCalls_.erase(call);
    return;
  }
  // Kept a while for retransmitted 2xx (Timer L, 64*T1), whose SDP is rewritten again.
  call->second.forgetAt = clock_.now() + std::chrono::seconds(32);
}

}  // namespace evosip::router
