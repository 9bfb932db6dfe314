// Dialog recording: the early dialogs (a 1xx with a To tag) of the INVITEs a worker forwards,
// the dialog record written to the store before the 2xx of an initial INVITE goes upstream, and
// the end of a forwarded request (ProxyUser::holdResponse, onContextDone).
#include <boost/asio/post.hpp>

#include <evosip/log/log.hpp>
#include <evosip/router/router.hpp>

#include "media_rules.hpp"

namespace evosip::router {

using transaction::TransactionId;
using namespace detail;

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
  noteAppResponse(client);
  const int code = response.statusCode();
  auto cseq = response.cseq();
  if (code <= 100 || code >= 300 || !cseq || cseq->method != sip::Method::kInvite) {
    return false;
  }
  const TransactionId server = client.valid() ? proxy_.serverOf(client) : TransactionId{};
  if (code < 200) {
    noteEarlyDialog(server, response);
  } else if (server.valid()) {
    applyTargetRefresh(server);
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

void Router::onContextDone(TransactionId server, bool answered) {
  appRequests_.erase(server.value);
  refreshes_.erase(server.value);
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
