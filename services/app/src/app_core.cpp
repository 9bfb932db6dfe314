#include <random>

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <evosip/app/app_core.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/log/log.hpp>
#include <evosip/rtp/packet.hpp>
#include <evosip/sip/response.hpp>

namespace evosip::app {

namespace asio = boost::asio;
using transaction::TransactionId;

namespace {

constexpr std::string_view kAllow = "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n";
constexpr std::string_view kCallDoesNotExist = "Call/Transaction Does Not Exist";

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("app");
  return l;
}

uint32_t randomU32() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return rng();
}

}  // namespace

std::string_view endReasonName(EndReason why) {
  switch (why) {
    case EndReason::kBye:
      return "bye";
    case EndReason::kCancel:
      return "cancel";
    case EndReason::kHangup:
      return "hangup";
    case EndReason::kPlayed:
      return "played";
    case EndReason::kRedirected:
      return "redirected";
    case EndReason::kSoundNotFound:
      return "sound not found";
    case EndReason::kMailboxFull:
      return "mailbox full";
    case EndReason::kNoAck:
      return "no ACK";
    case EndReason::kTransportError:
      return "transport error";
    case EndReason::kTransactionGone:
      return "transaction gone";
    case EndReason::kShutdown:
      return "shutdown";
    case EndReason::kTakenOver:
      return "taken over by a peer app";
    case EndReason::kResumeFailed:
      return "re-INVITE after the takeover refused";
  }
  return "?";
}

Call::Call(asio::io_context& io) : media(io) {}
Call::~Call() = default;

AppCore::AppCore(AppShared& shared, asio::io_context& io, size_t worker, rtp::PortRange ports,
                 SendFn send, const runtime::Clock& clock)
    : shared_(shared),
      settings_(shared.settings),
      io_(io),
      worker_(worker),
      send_(send),
      clock_(clock),
      layer_(
          [&] {
            auto s = shared.settings.layer;
            s.branchSeed = (s.branchSeed << 8) ^ (worker + 1) ^ (uint64_t(randomU32()) << 20);
            return s;
          }(),
          clock, send, *this),
      ports_(ports),
      playout_(io, clock, {settings_.pacingThread, settings_.ioUring, settings_.realtimePriority},
               counters_, ports_, [this](const CallPtr& call) { onPromptDone(*call); }) {
  contact_ = fmt::format("Contact: <sip:app@{}:{}>\r\n", settings_.viaHost, settings_.viaPort);
  ipv6_ = settings_.rtpAddress.find(':') != std::string::npos;
  if (!playout_.startError().empty()) {
    logger()->warn("app.realtime_priority {}: pacing thread {} keeps normal scheduling: {}",
                   settings_.realtimePriority, worker_, playout_.startError());
  }
}

AppCore::~AppCore() {
  closeAll();
}

void AppCore::closeAll() {
  playout_.stopSending();
  auto calls = calls_;
  for (auto& [id, call] : calls) {
    endCall(*call, EndReason::kShutdown);
  }
  playout_.reap();
}

// ---- requests -------------------------------------------------------------------------------

void AppCore::reject(TransactionId id, int code, std::string_view reason) {
  counters_.bump(counters_.rejected);
  layer_.respond(id, code, safeReason(reason));
}

void AppCore::onRequest(TransactionId id, const sip::Message& req, const transport::Source& src) {
  switch (req.method()) {
    case sip::Method::kInvite: {
      auto to = req.to();
      if (!to || !to->tag()) {
        newInvite(id, req, src);
      } else if (Call* call = findDialog(req)) {
        reInvite(*call, id, req);
      } else {
        layer_.respond(id, 481, kCallDoesNotExist);
      }
      return;
    }
    case sip::Method::kBye:
      onBye(id, req);
      return;
    case sip::Method::kOptions:
      layer_.respond(id, 200, {}, std::string(kAllow) + "Accept: application/sdp\r\n");
      return;
    case sip::Method::kCancel:
      layer_.respond(id, 481, kCallDoesNotExist);
      return;
    default:
      break;
  }
  if (findDialog(req) != nullptr && iequals(req.methodText(), "INFO")) {
    layer_.respond(id, 200);
    return;
  }
  layer_.respond(id, 405, {}, kAllow);
}

Call* AppCore::findDialog(const sip::Message& req) {
  auto it = calls_.find(std::string(req.callId()));
  if (it == calls_.end() || !it->second->dialog.matches(req)) {
    return nullptr;
  }
  return it->second.get();
}

// An initial INVITE: each step answers it and stops, or hands it on.
void AppCore::newInvite(TransactionId id, const sip::Message& req, const transport::Source& src) {
  if (answerKnownCall(id, req) || refuseBeforeReading(id, req)) {
    return;
  }
  CallRequest request = readCallRequest(req);
  if (answerWithoutCall(id, request)) {
    return;
  }
  auto offer = negotiateOffer(id, req);
  if (!offer) {
    return;
  }
  if (auto call = createCall(id, req, src, std::move(request), *offer)) {
    admit(call, id);
  }
}

bool AppCore::answerKnownCall(TransactionId id, const sip::Message& req) {
  auto it = calls_.find(std::string(req.callId()));
  if (it == calls_.end()) {
    return false;
  }
  const Call& c = *it->second;
  // The INVITE again after its 2xx ended the transaction: the 2xx again (13.3.1.4).
  auto cseq = req.cseq();
  if (cseq && cseq->number == c.ok.cseq && tagOf(req.from()) == c.dialog.remoteTag &&
      !c.ok.bytes.empty()) {
    layer_.respond(id, c.ok.bytes);
  } else {
    layer_.respond(id, 482, "Loop Detected");
  }
  return true;
}

bool AppCore::refuseBeforeReading(TransactionId id, const sip::Message& req) {
  if (shared_.draining.load(std::memory_order_relaxed)) {
    reject(id, 503, "Draining");
    return true;
  }
  if (const auto* require = req.find(sip::HeaderId::kRequire)) {
    // No extension is supported (no 100rel, no timer): RFC 3261 8.2.2.3.
    counters_.bump(counters_.rejected);
    layer_.respond(id, 420, "Bad Extension",
                   "Unsupported: " + std::string(trim(require->value)) + "\r\n");
    return true;
  }
  return false;
}

bool AppCore::answerWithoutCall(TransactionId id, const CallRequest& request) {
  switch (request.action) {
    case Action::kMissing:
      reject(id, 400, "Missing X-Evosip-Action");
      return true;
    case Action::kUnknown:
      counters_.bump(counters_.calls[size_t(Action::kUnknown)]);
      reject(id, 501, "Unknown Action " + request.actionText);
      return true;
    case Action::kHangup: {
      counters_.bump(counters_.calls[size_t(Action::kHangup)]);
      const auto st = readFinalStatus(request, 480);
      layer_.respond(id, st.code, st.reason);
      return true;
    }
    default:
      return false;
  }
}

std::optional<Negotiated> AppCore::negotiateOffer(TransactionId id, const sip::Message& req) {
  auto negotiated = negotiate(req.body());
  if (!negotiated) {
    reject(id, 488, req.body().empty() ? "SDP Offer Required" : "Not Acceptable Here");
    return std::nullopt;
  }
  if (negotiated->remoteIpv6 != ipv6_) {
    reject(id, 488, "Address Family Not Supported");
    return std::nullopt;
  }
  return *negotiated;
}

CallPtr AppCore::createCall(TransactionId id, const sip::Message& req, const transport::Source& src,
                            CallRequest request, const Negotiated& offer) {
  const auto* st = layer_.server(id);
  auto cseq = req.cseq();
  if (st == nullptr || !cseq) {
    return nullptr;
  }
  ActionRefusal refusal;
  auto app = makeCallAction(request, refusal);
  if (!app) {
    reject(id, refusal.code, refusal.reason);
    return nullptr;
  }
  auto call = std::make_shared<Call>(io_);
  call->request = std::move(request);
  call->app = std::move(app);
  call->dialog = UasDialog::fromInvite(req, std::string(st->localTag()), src);
  call->inviteTx = id;
  call->ok.cseq = cseq->number;
  call->ok.to = st->responseDestination();
  call->media.negotiated = offer;
  call->remoteSdp = std::string(req.body());
  call->sessionId = randomU32();
  call->created = clock_.now();
  call->lastRtp = call->created;
  call->deadline = call->created + settings_.maxCall;
  if (auto ok = call->media.open(settings_.rtpAddress, ports_); !ok) {
    logger()->warn("call {}: {}", call->dialog.callId, ok.error().message);
    reject(id, 503, "No RTP Port");
    return nullptr;
  }
  return call;
}

void AppCore::enroll(const CallPtr& call) {
  counters_.bump(counters_.calls[size_t(call->request.action)]);
  counters_.active.fetch_add(1, std::memory_order_relaxed);
  shared_.calls.fetch_add(1, std::memory_order_relaxed);
  calls_.emplace(call->dialog.callId, call);
  call->rosterPos = roster_.size();
  roster_.push_back(call);
}

void AppCore::admit(const CallPtr& call, TransactionId id) {
  enroll(call);
  byInvite_[id.value] = call.get();
  layer_.respond(id, 100);
  armRead(call);
  // Loading: the application's prompts and checks; it starts once all of them are in.
  call->loading = 1;
  call->app->load(*call, *this);
  loaded(*call);
}

void AppCore::reInvite(Call& call, TransactionId id, const sip::Message& req) {
  auto cseq = req.cseq();
  if (!cseq) {
    layer_.respond(id, 400, "Bad CSeq");
    return;
  }
  if (cseq->number == call.ok.cseq && !call.ok.bytes.empty()) {
    layer_.respond(id, call.ok.bytes);  // retransmitted re-INVITE after its 2xx
    return;
  }
  if (call.dialog.state != DialogState::kConfirmed || awaitingAck_.count(&call) != 0 ||
      call.reInviteTx.valid()) {
    layer_.respond(id, 491, "Request Pending");
    return;
  }
  call.dialog.remoteCseq = cseq->number;
  if (!req.body().empty()) {
    auto n = negotiate(req.body(), call.media.negotiated.law);
    if (!n || n->remoteIpv6 != ipv6_) {
      layer_.respond(id, 488, "Not Acceptable Here");
      return;
    }
    call.media.update(*n);
    call.remoteSdp = std::string(req.body());
    if (!call.media.heard()) {
      call.peerSince = clock_.now();  // (also after a hold: the peer's time starts again)
    }
    ++call.sdpVersion;
  }
  call.dialog.refreshTarget(req);
  if (const auto* st = layer_.server(id)) {
    call.ok.to = st->responseDestination();
  }
  // The route set is fixed by the initial INVITE: no Record-Route in this 2xx.
  call.ok.bytes = respondWithSdp(call, id, req, 200, "OK", false);
  call.ok.cseq = cseq->number;
  call.ok.start(clock_.now());
  awaitingAck_.insert(&call);
  storeCall(call);
}

void AppCore::onBye(TransactionId id, const sip::Message& req) {
  Call* call = findDialog(req);
  if (call == nullptr) {
    layer_.respond(id, 481, kCallDoesNotExist);
    return;
  }
  counters_.bump(counters_.byesReceived);
  layer_.respond(id, 200);
  if (!call->finalSent) {
    sendFinal(*call, 487, "Request Terminated");
  }
  call->dialog.state = DialogState::kEnded;
  endCall(*call, EndReason::kBye);
}

void AppCore::onCancel(TransactionId invite, const sip::Message&) {
  auto it = byInvite_.find(invite.value);
  if (it == byInvite_.end()) {
    layer_.respond(invite, 487, "Request Terminated");
    return;
  }
  Call& call = *it->second;
  counters_.bump(counters_.cancelled);
  sendFinal(call, 487, "Request Terminated");
  endCall(call, EndReason::kCancel);
}

void AppCore::onAck(const sip::Message& ack, const transport::Source&) {
  Call* call = findDialog(ack);
  if (call == nullptr) {
    return;
  }
  auto cseq = ack.cseq();
  if (!cseq || cseq->number != call->ok.cseq) {
    return;
  }
  if (awaitingAck_.erase(call) == 0) {
    return;  // a retransmitted ACK
  }
  call->dialog.state = DialogState::kConfirmed;
  if (call->byeAfterAck) {
    sendBye(*call);
    endCall(*call, EndReason::kHangup);
    return;
  }
  storeCall(*call);
}

void AppCore::onResponse(TransactionId client, const sip::Message& response) {
  auto it = byReInvite_.find(client.value);
  if (it != byReInvite_.end() && response.statusCode() >= 200) {
    onReInviteFinal(*it->second, response);
  }
}

// A 2xx to our re-INVITE again (its ACK was lost): the same ACK again.
void AppCore::onStrayResponse(const sip::Message& response, const transport::Source&) {
  auto cseq = response.cseq();
  auto it = calls_.find(std::string(response.callId()));
  if (!cseq || cseq->method != sip::Method::kInvite || it == calls_.end() ||
      response.statusCode() / 100 != 2) {
    return;
  }
  const Call& call = *it->second;
  if (cseq->number == call.reInviteCseq && !call.reInviteAck.empty() &&
      tagOf(response.from()) == call.dialog.localTag &&
      tagOf(response.to()) == call.dialog.remoteTag) {
    send_({transport::Protocol::kUdp, call.reInviteAckTo, {}}, call.reInviteAck);
  }
}

void AppCore::onClientError(TransactionId client, transaction::TransactionError) {
  auto it = byReInvite_.find(client.value);
  if (it != byReInvite_.end()) {
    Call& call = *it->second;
    byReInvite_.erase(it);
    logger()->info("call {}: no answer to the re-INVITE after the takeover", call.dialog.callId);
    counters_.bump(counters_.resumeFailed);
    endCall(call, EndReason::kResumeFailed);
  }
}

void AppCore::onServerError(TransactionId server, transaction::TransactionError) {
  auto it = byInvite_.find(server.value);
  if (it != byInvite_.end()) {
    Call& call = *it->second;
    call.finalSent = true;
    endCall(call, EndReason::kTransportError);
  }
}

// ---- our responses and requests -------------------------------------------------------------

std::string AppCore::respondWithSdp(Call& call, TransactionId id, const sip::Message& req, int code,
                                    std::string_view reason, bool withRecordRoute) {
  const AnswerAddress a{settings_.rtpAddress, ipv6_, call.media.port(), call.sessionId,
                        call.sdpVersion};
  const std::string headers = (withRecordRoute ? call.dialog.recordRoute : std::string()) +
                              contact_ + std::string(kAllow) + "Content-Type: application/sdp\r\n";
  std::string out = responseWithSdp(req, code, reason, call.dialog.localTag, headers,
                                    buildAnswer(call.media.negotiated, a));
  if (!out.empty()) {
    layer_.respond(id, out);
  }
  return out;
}

void AppCore::answer(Call& call) {
  const auto* st = layer_.server(call.inviteTx);
  if (st == nullptr) {
    return;
  }
  auto req = sip::Message::parse(st->request());
  if (!req) {
    return;
  }
  const TransactionId tx = call.inviteTx;
  call.finalSent = true;
  call.ok.bytes = respondWithSdp(call, tx, *req, 200, "OK");
  byInvite_.erase(tx.value);
  if (call.closed) {
    return;
  }
  call.dialog.state = DialogState::kAnswered;
  const auto now = clock_.now();
  if (!call.media.heard()) {
    call.peerSince = now;
  }
  call.ok.start(now);
  awaitingAck_.insert(&call);
}

void AppCore::sendFinal(Call& call, int code, std::string_view reason, std::string_view extra) {
  if (call.finalSent) {
    return;
  }
  call.finalSent = true;
  byInvite_.erase(call.inviteTx.value);
  layer_.respond(call.inviteTx, code, safeReason(reason), extra);
}

void AppCore::sendBye(Call& call) {
  if (call.dialog.state == DialogState::kEnded) {
    return;
  }
  call.dialog.state = DialogState::kEnded;
  auto bye = call.dialog.bye(settings_.viaHost, settings_.viaPort, layer_.newBranch());
  counters_.bump(counters_.byesSent);
  if (auto r = layer_.sendRequest(std::move(bye.text), {transport::Protocol::kUdp, bye.to, {}});
      !r) {
    logger()->warn("call {}: BYE not sent: {}", call.dialog.callId, r.error().message);
  }
}

void AppCore::retransmitOks(TimePoint now) {
  std::vector<Call*> giveUp;
  for (Call* c : awaitingAck_) {
    switch (c->ok.poll(now)) {
      case OkRetransmission::Due::kGiveUp:
        giveUp.push_back(c);
        break;
      case OkRetransmission::Due::kResend:
        if (!c->ok.bytes.empty()) {
          send_(c->ok.to, c->ok.bytes);
        }
        break;
      case OkRetransmission::Due::kNothing:
        break;
    }
  }
  for (Call* c : giveUp) {
    awaitingAck_.erase(c);
    c->dialog.state = DialogState::kConfirmed;  // no ACK: confirmed, then torn down (13.3.1.4)
    logger()->info("call {}: no ACK for the 2xx: BYE", c->dialog.callId);
    sendBye(*c);
    endCall(*c, EndReason::kNoAck);
  }
}

void AppCore::hangup(Call& call, int earlyCode, std::string_view earlyReason) {
  if (!call.finalSent) {
    sendFinal(call, earlyCode, earlyReason);
    endCall(call, EndReason::kHangup);
    return;
  }
  if (call.dialog.state == DialogState::kAnswered) {
    call.byeAfterAck = true;  // RFC 3261 15: no BYE before the ACK of our 2xx
    call.state = CallState::kEnding;
    playout_.stop(call);
    return;
  }
  sendBye(call);
  endCall(call, EndReason::kHangup);
}

void AppCore::finish(Call& call, int code, std::string_view reason, std::string_view headers,
                     EndReason why) {
  sendFinal(call, code, reason, headers);
  endCall(call, why);
}

void AppCore::endCall(Call& call, EndReason why) {
  auto it = calls_.find(call.dialog.callId);
  if (it == calls_.end() || it->second.get() != &call) {
    return;
  }
  CallPtr keep = it->second;  // alive until the end of this function
  calls_.erase(it);
  if (call.rosterPos < roster_.size() && roster_[call.rosterPos].get() == &call) {
    roster_[call.rosterPos] = std::move(roster_.back());
    roster_[call.rosterPos]->rosterPos = call.rosterPos;
    roster_.pop_back();
  }
  awaitingAck_.erase(&call);
  byInvite_.erase(call.inviteTx.value);
  byReInvite_.erase(call.reInviteTx.value);
  forgetCall(call, why);
  call.closed = true;
  playout_.close(call);
  counters_.active.fetch_sub(1, std::memory_order_relaxed);
  shared_.calls.fetch_sub(1, std::memory_order_relaxed);
  // The blocking pool drops queued work when it stops: at shutdown, a recording is stored here.
  call.app->onEnd(call, *this, why == EndReason::kShutdown);
  logger()->debug("call {}: ended ({})", call.dialog.callId, endReasonName(why));
}

// ---- the application ------------------------------------------------------------------------

void AppCore::loadPrompt(Call& call, std::string sound, PromptPtr* into, bool required) {
  SoundRef ref;
  ref.locale = call.request.paramOr("SoundLocale", "en");
  ref.custom = call.request.paramOr("SoundCustom", "");
  ref.sound = std::move(sound);
  ++call.loading;
  std::weak_ptr<Call> weak = call.shared_from_this();
  std::weak_ptr<char> alive = alive_;
  shared_.prompts->get(ref, [this, weak, alive, into, required](Result<PromptPtr> r) {
    asio::post(io_, [this, weak, alive, into, required, r = std::move(r)] {
      auto c = weak.lock();
      if (alive.expired() || !c || c->closed) {
        return;
      }
      if (r) {
        *into = *r;
      } else if (required && c->loadError.empty()) {
        c->loadError = r.error().message;
      }
      loaded(*c);
    });
  });
}

void AppCore::loadBlocking(Call& call, std::function<std::function<void()>()> work) {
  ++call.loading;
  std::weak_ptr<Call> weak = call.shared_from_this();
  // On the blocking thread only `work` runs; the rest waits for the worker.
  blocking(
      [this, weak, work = std::move(work)] {
        auto then = work();
        return std::function<void()>([this, weak, then = std::move(then)] {
          auto c = weak.lock();
          if (!c || c->closed) {
            return;
          }
          then();
          loaded(*c);
        });
      },
      false);
}

void AppCore::blocking(std::function<std::function<void()>()> work, bool now) {
  if (now) {
    work()();  // on the worker already (a shutdown stores inline)
    return;
  }
  // The worker's io_context outlives the blocking pool's jobs; whether the core still exists is
  // asked on the worker, where it would be destroyed.
  std::weak_ptr<char> alive = alive_;
  asio::io_context& io = io_;
  shared_.runBlocking([work = std::move(work), alive, &io] {
    asio::post(io, [then = work(), alive] {
      if (!alive.expired()) {
        then();
      }
    });
  });
}

void AppCore::loaded(Call& call) {
  if (--call.loading > 0 || call.closed) {
    return;
  }
  if (!call.loadError.empty()) {
    logger()->info("call {}: {}", call.dialog.callId, call.loadError);
    counters_.bump(counters_.rejected);
    finish(call, 404, "Sound Not Found", {}, EndReason::kSoundNotFound);
    return;
  }
  if (call.app->ready(call, *this)) {
    start(call);
  }
}

void AppCore::start(Call& call) {
  if (call.resumed) {
    resumeStart(call);
    return;
  }
  call.startedMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const auto* st = layer_.server(call.inviteTx);
  if (st == nullptr) {
    endCall(call, EndReason::kTransactionGone);
    return;
  }
  auto req = sip::Message::parse(st->request());
  if (!req) {
    return;
  }
  call.media.start();
  call.lastRtp = clock_.now();
  call.state = CallState::kRunning;
  call.earlyMedia = call.app->earlyMedia(call);
  if (call.earlyMedia) {
    respondWithSdp(call, call.inviteTx, *req, 183, "Session Progress");
  } else {
    answer(call);
  }
  call.app->start(call, *this);
}

// The current prompt (and its queue) ended, to the last packet.
void AppCore::onPromptDone(Call& call) {
  if (call.state == CallState::kRunning) {
    call.app->onPromptDone(call, *this);
  }
}

void AppCore::onDigit(Call& call, char digit) {
  counters_.bump(counters_.dtmfDigits);
  if (call.state == CallState::kRunning) {
    call.app->onDigit(call, *this, digit);
  }
}

void AppCore::checkDeadline(Call& call, TimePoint now) {
  if (call.closed || call.state != CallState::kRunning) {
    return;
  }
  if (now >= call.deadline) {
    counters_.bump(counters_.maxDurationEnds);
    hangup(call, 480, "Maximum Duration");
    return;
  }
  if (call.app->checkLimits(call, *this)) {
    return;
  }
  const bool held =
      call.dialog.state == DialogState::kConfirmed && !call.media.negotiated.canSend();
  if (!call.media.heard() && !held && settings_.rtpPeerTimeout.count() > 0 &&
      now > call.peerSince && now - call.peerSince >= settings_.rtpPeerTimeout) {
    // Answered, and nothing ever came back from where the app sends: not a phone (or a victim
    // named in the SDP). Stop streaming to it.
    counters_.bump(counters_.rtpTimeouts);
    logger()->info("call {}: nothing received {} s after the answer: hanging up",
                   call.dialog.callId, settings_.rtpPeerTimeout.count());
    hangup(call, 480, "RTP Timeout");
    return;
  }
  if (call.app->needsInput() && !held && settings_.rtpTimeout.count() > 0 &&
      now - call.lastRtp >= settings_.rtpTimeout) {
    counters_.bump(counters_.rtpTimeouts);
    logger()->info("call {}: no RTP for {} s", call.dialog.callId, settings_.rtpTimeout.count());
    hangup(call, 480, "RTP Timeout");
    return;
  }
  call.app->onTimer(call, *this, now);
}

void AppCore::countVoicemail() {
  if (shared_.voicemailCounting.exchange(true)) {
    return;
  }
  AppShared* shared = &shared_;
  shared_.runBlocking([dir = settings_.voicemailDir, shared] {
    if (auto u = voicemailUsage(dir)) {
      shared->voicemailMessages.store(u->messages);
      shared->voicemailBytes.store(u->bytes);
    } else {
      logger()->warn("voicemail: cannot count {}: {}", dir, u.error().message);
    }
    shared->voicemailCounting.store(false);
  });
}

void AppCore::onTick() {
  const auto now = clock_.now();
  layer_.onTick(now);
  retransmitOks(now);
  // The deadlines, a tenth of the calls at a time (held: hanging up changes roster_).
  sweep_.next(roster_.size(), [this](size_t i) { sweepShare_.push_back(roster_[i]); });
  for (auto& c : sweepShare_) {
    checkDeadline(*c, now);
  }
  sweepShare_.clear();
  if (worker_ == 0 && ticks_ % 6000 == 0) {
    countVoicemail();  // at the first tick, then every minute
  }
  playout_.onTick();
  if (++ticks_ % 100 == 0) {
    counters_.serverTransactions.store(layer_.serverCount(), std::memory_order_relaxed);
    counters_.clientTransactions.store(layer_.clientCount(), std::memory_order_relaxed);
    counters_.skippedTicks.store(playout_.skippedTicks(), std::memory_order_relaxed);
  }
  playout_.reap();
}

// ---- media ----------------------------------------------------------------------------------

void AppCore::armRead(const CallPtr& call) {
  call->media.socket().async_wait(asio::ip::udp::socket::wait_read,
                                  [this, call](const boost::system::error_code& ec) {
                                    if (ec || call->closed) {
                                      return;
                                    }
                                    onReadable(*call);
                                    if (!call->closed) {
                                      armRead(call);
                                    }
                                  });
}

void AppCore::onReadable(Call& call) {
  for (int round = 0; round < 16 && !call.closed; ++round) {
    auto datagram = call.media.receive(packet_);
    if (!datagram) {
      return;
    }
    if (!datagram->empty()) {
      onRtp(call, *datagram);
    }
  }
}

void AppCore::onRtp(Call& call, std::span<const uint8_t> datagram) {
  if (rtp::looksLikeRtcp(datagram)) {
    counters_.bump(counters_.rtcpReceived);
    return;
  }
  auto pkt = rtp::parseRtp(datagram);
  if (!pkt) {
    return;
  }
  counters_.bump(counters_.rtpReceived);
  call.lastRtp = clock_.now();
  const auto& media = call.media.negotiated;
  if (media.telephoneEvent && pkt->header.payloadType == *media.telephoneEvent) {
    if (auto d = call.dtmf.onPacket(*pkt)) {
      onDigit(call, d->digit);
    }
    return;
  }
  if (pkt->header.payloadType != media.payloadType || call.closed ||
      call.state != CallState::kRunning) {
    return;
  }
  call.app->onAudio(call, *this, *pkt);
}

void AppCore::sendNow(Call& call, std::span<const uint8_t> payload) {
  switch (call.media.sendNow(payload, static_cast<uint32_t>(payload.size()))) {
    case MediaSession::Sent::kSent:
      counters_.bump(counters_.rtpSent);
      break;
    case MediaSession::Sent::kFailed:
      counters_.bump(counters_.rtpSendErrors);
      break;
    case MediaSession::Sent::kNothing:
      break;
  }
}

}  // namespace evosip::app
