// app.state on the worker (app_core.hpp): an established call's record into the store, and a
// stored call of a dead peer taken over here - its dialog rebuilt, a re-INVITE to the caller
// (same Call-ID and tags, the next CSeq, the stored route set, our Contact and our media address)
// and its application resumed where it was.
#include <chrono>

#include <fmt/format.h>

#include <evosip/app/app_core.hpp>
#include <evosip/log/log.hpp>
#include <evosip/sip/address.hpp>

namespace evosip::app {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("app");
  return l;
}

int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

CallRecord recordOf(const Call& call) {
  const UasDialog& d = call.dialog;
  CallRecord r;
  r.callId = d.callId;
  r.localTag = d.localTag;
  r.remoteTag = d.remoteTag;
  r.fromValue = d.fromValue;
  r.toValue = d.toValue;
  r.remoteTarget = d.remoteTarget;
  r.routeSet = d.routeSet;
  r.sourceHost = d.source.remote.ip.to_string();
  r.sourcePort = d.source.remote.port;
  r.localCseq = d.localCseq;
  r.remoteCseq = d.remoteCseq;
  r.remoteSdp = call.remoteSdp;
  r.sessionId = call.sessionId;
  r.sdpVersion = call.sdpVersion;
  r.action = std::string(actionName(call.request.action));
  r.params = call.request.params;
  r.startedMs = call.startedMs;
  return r;
}

}  // namespace

void AppCore::storeCall(Call& call) {
  if (!shared_.storeCall || call.closed || call.dialog.state != DialogState::kConfirmed) {
    return;
  }
  call.stored = true;
  shared_.storeCall(call.dialog.callId, encodeCallRecord(recordOf(call)));
}

void AppCore::forgetCall(Call& call, EndReason why) {
  // A shutdown with calls up leaves them stored (a peer takes them over); a call a peer holds
  // now is the peer's record.
  if (call.stored && why != EndReason::kShutdown && why != EndReason::kTakenOver) {
    shared_.storeCall(call.dialog.callId, {});
  }
}

void AppCore::resume(const CallRecord& record) {
  if (calls_.count(record.callId) != 0) {
    return;  // this app's own call (its record read back at start)
  }
  auto call = restoreCall(record);
  if (!call) {
    counters_.bump(counters_.resumeFailed);
    return;
  }
  enroll(call);
  logger()->info("call {}: taken over ({} since {} ms): re-INVITE to the caller",
                 call->dialog.callId, actionName(call->request.action), wallMs() - call->startedMs);
  sendReInvite(*call);
  if (call->closed) {
    return;
  }
  storeCall(*call);  // under this app's name from now on
  armRead(call);
  call->loading = 1;
  call->app->load(*call, *this);
  loaded(*call);
}

CallPtr AppCore::restoreCall(const CallRecord& rec) {
  auto fail = [&](std::string_view why) {
    logger()->warn("call {}: stored call not taken over: {}", rec.callId, why);
    return nullptr;
  };
  auto negotiated = negotiate(rec.remoteSdp);
  if (!negotiated || negotiated->remoteIpv6 != ipv6_) {
    return fail("its SDP is not usable here");
  }
  CallRequest request;
  request.action = actionFromName(rec.action);
  request.actionText = rec.action;
  request.params = rec.params;
  ActionRefusal refusal;
  auto app = makeCallAction(request, refusal);
  if (!app) {
    return fail(refusal.reason.empty() ? "no application" : refusal.reason);
  }
  boost::system::error_code ec;
  auto sourceIp = boost::asio::ip::make_address(rec.sourceHost, ec);
  if (ec) {
    return fail("bad source address");
  }
  auto call = std::make_shared<Call>(io_);
  call->request = std::move(request);
  call->app = std::move(app);
  UasDialog& d = call->dialog;
  d.callId = rec.callId;
  d.localTag = rec.localTag;
  d.remoteTag = rec.remoteTag;
  d.fromValue = rec.fromValue;
  d.toValue = rec.toValue;
  d.remoteTarget = rec.remoteTarget;
  d.routeSet = rec.routeSet;
  if (auto from = sip::parseNameAddr(rec.fromValue)) {
    d.callerUri = std::string(from->uriText);
    d.callerUser = std::string(from->uri.user);
  }
  d.source.remote = transport::Endpoint{sourceIp, rec.sourcePort};
  d.localCseq = rec.localCseq;
  d.remoteCseq = rec.remoteCseq;
  d.state = DialogState::kConfirmed;
  call->finalSent = true;
  call->resumed = true;
  call->remoteSdp = rec.remoteSdp;
  call->sessionId = rec.sessionId;
  call->sdpVersion = rec.sdpVersion + 1;  // our new offer
  call->startedMs = rec.startedMs;
  call->media.negotiated = *negotiated;
  call->created = clock_.now();
  call->lastRtp = call->created;
  call->peerSince = call->created;
  call->deadline = call->created + settings_.maxCall;
  if (auto ok = call->media.open(settings_.rtpAddress, ports_); !ok) {
    return fail(ok.error().message);
  }
  return call;
}

void AppCore::sendReInvite(Call& call) {
  const AnswerAddress a{settings_.rtpAddress, ipv6_, call.media.port(), call.sessionId,
                        call.sdpVersion};
  const std::string sdp = buildAnswer(call.media.negotiated, a);
  const std::string headers = contact_ + "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n" +
                              "Content-Type: application/sdp\r\n";
  call.dialog.localCseq = std::max<uint32_t>(call.dialog.localCseq + 1, 1);
  call.reInviteCseq = call.dialog.localCseq;
  auto req = call.dialog.request("INVITE", call.reInviteCseq, settings_.viaHost, settings_.viaPort,
                                 layer_.newBranch(), headers, sdp);
  auto tx = layer_.sendRequest(std::move(req.text), {transport::Protocol::kUdp, req.to, {}});
  if (!tx) {
    logger()->warn("call {}: re-INVITE not sent: {}", call.dialog.callId, tx.error().message);
    counters_.bump(counters_.resumeFailed);
    endCall(call, EndReason::kResumeFailed);
    return;
  }
  call.reInviteTx = *tx;
  byReInvite_[tx->value] = &call;
}

void AppCore::onReInviteFinal(Call& call, const sip::Message& response) {
  byReInvite_.erase(call.reInviteTx.value);
  call.reInviteTx = {};
  const int code = response.statusCode();
  if (code < 200 || code >= 300) {
    logger()->info("call {}: the caller answered {} to the re-INVITE after the takeover",
                   call.dialog.callId, code);
    counters_.bump(counters_.resumeFailed);
    if (code != 481 && code != 408) {
      sendBye(call);  // the dialog still exists at the caller: end it there too
    }
    endCall(call, EndReason::kResumeFailed);
    return;
  }
  // The ACK of the 2xx, end to end (RFC 3261 13.2.2.4): kept for its retransmissions.
  auto ack = call.dialog.request("ACK", call.reInviteCseq, settings_.viaHost, settings_.viaPort,
                                 layer_.newBranch());
  call.reInviteAck = ack.text;
  call.reInviteAckTo = ack.to;
  send_({transport::Protocol::kUdp, ack.to, {}}, call.reInviteAck);
  call.dialog.refreshTarget(response);
  if (!response.body().empty()) {
    if (auto n = negotiate(response.body(), call.media.negotiated.law);
        n && n->remoteIpv6 == ipv6_) {
      call.media.update(*n);
      call.remoteSdp = std::string(response.body());
      call.peerSince = clock_.now();
    }
  }
  counters_.bump(counters_.resumed);
  storeCall(call);
}

void AppCore::resumeStart(Call& call) {
  call.media.start();
  call.lastRtp = clock_.now();
  call.state = CallState::kRunning;
  call.app->start(call, *this);
  auto& p = call.playout;
  if (p.playing && p.playing->frames() > 0 && call.startedMs > 0) {
    const int64_t elapsed = std::max<int64_t>(0, wallMs() - call.startedMs);
    const auto frames = static_cast<size_t>(elapsed / 20);
    p.position = std::min(frames, p.playing->frames() - 1);
  }
}

void AppCore::dropAll() {
  auto calls = calls_;
  for (auto& [id, call] : calls) {
    endCall(*call, EndReason::kTakenOver);
  }
}

}  // namespace evosip::app
