#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <random>
#include <unistd.h>

#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <evosip/app/app_core.hpp>
#include <evosip/app/sdp_answer.hpp>
#include <evosip/app/voicemail.hpp>
#include <evosip/audio/g711.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/log/log.hpp>
#include <evosip/rtp/packet.hpp>
#include <evosip/rtp/packetizer.hpp>
#include <evosip/rtp/telephone_event.hpp>
#include <evosip/sip/response.hpp>

namespace evosip::app {

namespace asio = boost::asio;
using transaction::TransactionId;

namespace {

constexpr std::string_view kAllow = "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n";
constexpr auto kT1 = std::chrono::milliseconds(500);
constexpr auto kT2 = std::chrono::milliseconds(4000);
constexpr size_t kRxBatch = 16;
constexpr int kDefaultMenuTimeoutS = 5;
constexpr int kDefaultMenuRetries = 2;
// 20 ticks of 1 ms per 20 ms frame. With N calls a tick sends N/20 packets, so its last packet
// leaves that many sends after its due time (2,000 calls, io_uring: ~0.3 ms, p99 0.5 ms). 40
// ticks of 0.5 ms halve that, but three A/B pairs at 2,000 streams on the VM gave +7..22 % of a
// core (every wake-up costs there) for a median 0.05 ms lower and no better p99.
constexpr PacingGrid::Settings kPacing{std::chrono::milliseconds(20), 20, 40};
// The worker prepares the ticks due within the next kHorizon, waking every kPrepareEvery: each
// tick is handed to the pacing thread 6-10 ms before it is due, so the worker may be that late
// (SIP work, a busy CPU) without delaying a packet, and wakes 250 times a second, not 1,000.
constexpr auto kHorizon = std::chrono::milliseconds(10);
constexpr auto kPrepareEvery = std::chrono::milliseconds(4);

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("app");
  return l;
}

uint32_t randomU32() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return rng();
}

// "host", "host:port" of a SIP URI -> a numeric endpoint (no DNS in the app).
std::optional<transport::Endpoint> uriEndpoint(const sip::Uri& uri) {
  std::string text = uri.hostType == sip::HostType::kIpv6 ? "[" + std::string(uri.host) + "]"
                                                          : std::string(uri.host);
  auto ep = transport::parseEndpoint(text, uri.portOrDefault());
  if (!ep) {
    return std::nullopt;
  }
  return *ep;
}

bool toSockaddr(const std::string& ip, uint16_t port, sockaddr_storage& sa, socklen_t& len) {
  std::memset(&sa, 0, sizeof sa);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&sa);
  if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&sa);
  if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return true;
  }
  len = 0;
  return false;
}

// Whether a packet's source is the address and port a call latched to.
bool sameSource(const sockaddr_storage& a, socklen_t aLen, const sockaddr_storage& b,
                socklen_t bLen) {
  if (aLen != bLen || a.ss_family != b.ss_family) {
    return false;
  }
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port &&
           std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
  }
  return false;
}

std::string tagOf(const Result<sip::NameAddr>& na) {
  if (!na) {
    return {};
  }
  auto t = na->tag();
  return t ? std::string(*t) : std::string();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

enum class Phase : uint8_t {
  kLoading,      // prompts being loaded
  kPlaying,      // Playback: the sound
  kGreeting,     // Voicemail: greeting and beep
  kRecording,    // Voicemail: recording
  kEcho,         // Echo
  kMenuPrompt,   // Menu: the prompt (a digit interrupts it)
  kMenuWait,     // Menu: waiting for digits
  kMenuInvalid,  // Menu: the error prompt
  kEnding,       // hanging up (BYE waits for the ACK)
};

enum class DialogState : uint8_t { kEarly, kAnswered, kConfirmed, kEnded };

struct AppCore::Call {
  explicit Call(asio::io_context& io) : sock(io) {}

  std::string callId, localTag, remoteTag;
  CallRequest request;
  Action action = Action::kMissing;
  Phase phase = Phase::kLoading;
  DialogState dialog = DialogState::kEarly;
  bool earlyMedia = false;  // noanswer Playback, Menu: 183 and no answer
  bool byeAfterAck = false;

  // Dialog (RFC 3261 12.1.1, UAS side)
  std::string fromValue;  // the INVITE's From (their tag): To of our requests
  std::string toValue;    // the INVITE's To + our tag: From of our requests
  std::string remoteTarget;
  std::vector<std::string> routeSet;  // Record-Route, in order
  std::string recordRoute;            // Record-Route lines copied into 18x/2xx
  std::string callerUri, callerUser;
  transport::Source source;
  uint32_t localCseq = 0;
  uint32_t remoteCseq = 0;

  // The INVITE transaction and the 2xx retransmission (RFC 3261 13.3.1.4)
  TransactionId inviteTx;
  bool finalSent = false;
  std::string okBytes;
  uint32_t okCseq = 0;
  transport::Destination okTo;
  TimePoint okNext, okGiveUp;
  std::chrono::milliseconds okInterval = kT1;

  // Media
  Negotiated media;
  uint64_t sessionId = 0, sdpVersion = 1;
  asio::ip::udp::socket sock;
  int fd = -1;
  uint16_t port = 0;
  bool closed = false;
  sockaddr_storage dest{};
  socklen_t destLen = 0;
  bool latched = false;
  bool heard = false;  // a packet (RTP or RTCP) came back since peerSince
  std::optional<rtp::Packetizer> packetizer;
  bool mediaStarted = false;
  bool sending = false;  // has a slot in the grid
  uint32_t slot = 0;
  size_t slotPos = 0;
  uint64_t nextCycle = 0;
  bool marker = false;
  size_t rosterPos = 0;
  uint64_t sentBelow = 0;  // every packet of this call is in a tick below this one

  // Playing
  PromptPtr playing;
  size_t position = 0;
  std::vector<PromptPtr> queue;

  // Input
  rtp::DtmfReceiver dtmf;
  std::string digits;
  std::unique_ptr<VoicemailRecorder> recorder;
  std::chrono::system_clock::time_point recordStart;
  uint64_t recordRoom = 0;  // samples the mailbox has room for (0: full)

  // Prompts of the application
  int loading = 0;
  PromptPtr main;     // Playback: the sound; Menu: the prompt; Voicemail: the greeting
  PromptPtr invalid;  // Menu: the error prompt
  PromptPtr beep;     // Voicemail
  std::string loadError;

  // Menu
  MenuTargets targets;
  int attempts = 0;
  int retries = kDefaultMenuRetries;
  std::chrono::seconds menuTimeout{kDefaultMenuTimeoutS};
  std::string pendingTarget;

  // Time
  TimePoint created, lastRtp, menuSince, deadline = TimePoint::max();
  TimePoint peerSince = TimePoint::max();  // answered (or moved): the peer must send from here
};

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
      grid_(kPacing, clock_.now()),
      paceTimer_(io) {
  contact_ = fmt::format("Contact: <sip:app@{}:{}>\r\n", settings_.viaHost, settings_.viaPort);
  ipv6_ = settings_.rtpAddress.find(':') != std::string::npos;
  slots_.resize(grid_.settings().slots);
  PacedSender::Settings ps;
  ps.thread = settings_.pacingThread;
  ps.ioUring = settings_.ioUring;
  ps.realtimePriority = settings_.realtimePriority;
  sender_ = std::make_unique<PacedSender>(ps, clock_);
  std::string error;
  sender_->start(&error);
  if (!error.empty()) {
    logger()->warn("app.realtime_priority {}: pacing thread {} keeps normal scheduling: {}",
                   settings_.realtimePriority, worker_, error);
  }
}

AppCore::~AppCore() {
  closeAll();
}

void AppCore::closeAll() {
  paceTimer_.cancel();
  sender_->stop();  // nothing is sent any more: every socket may close
  auto calls = calls_;
  for (auto& [id, call] : calls) {
    endCall(*call, EndReason::kShutdown);
  }
  pendingDone_.clear();
  reapSent();
}

// ---- SIP ------------------------------------------------------------------------------------

void AppCore::reject(TransactionId id, int code, std::string_view reason) {
  counters_.bump(counters_.rejected);
  layer_.respond(id, code, safeReason(reason));
}

void AppCore::onRequest(TransactionId id, const sip::Message& req, const transport::Source& src) {
  switch (req.method()) {
    case sip::Method::kInvite: {
      auto to = req.to();
      if (to && to->tag()) {
        Call* call = findDialog(req);
        if (call == nullptr) {
          layer_.respond(id, 481, "Call/Transaction Does Not Exist");
          return;
        }
        reInvite(*call, id, req);
        return;
      }
      newInvite(id, req, src);
      return;
    }
    case sip::Method::kBye:
      onBye(id, req);
      return;
    case sip::Method::kOptions:
      layer_.respond(id, 200, {}, std::string(kAllow) + "Accept: application/sdp\r\n");
      return;
    case sip::Method::kCancel:
      layer_.respond(id, 481, "Call/Transaction Does Not Exist");
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

AppCore::Call* AppCore::findDialog(const sip::Message& req) {
  auto it = calls_.find(std::string(req.callId()));
  if (it == calls_.end()) {
    return nullptr;
  }
  Call& c = *it->second;
  if (tagOf(req.from()) != c.remoteTag || tagOf(req.to()) != c.localTag) {
    return nullptr;
  }
  return &c;
}

void AppCore::newInvite(TransactionId id, const sip::Message& req, const transport::Source& src) {
  const std::string callId(req.callId());
  auto cseq = req.cseq();
  const std::string fromTag = tagOf(req.from());
  if (auto it = calls_.find(callId); it != calls_.end()) {
    Call& c = *it->second;
    // The INVITE again after its 2xx ended the transaction: the 2xx again (13.3.1.4).
    if (cseq && cseq->number == c.okCseq && fromTag == c.remoteTag && !c.okBytes.empty()) {
      layer_.respond(id, c.okBytes);
      return;
    }
    layer_.respond(id, 482, "Loop Detected");
    return;
  }
  if (shared_.draining.load(std::memory_order_relaxed)) {
    reject(id, 503, "Draining");
    return;
  }
  if (const auto* require = req.find(sip::HeaderId::kRequire)) {
    // No extension is supported (no 100rel, no timer): RFC 3261 8.2.2.3.
    counters_.bump(counters_.rejected);
    layer_.respond(id, 420, "Bad Extension",
                   "Unsupported: " + std::string(trim(require->value)) + "\r\n");
    return;
  }
  CallRequest request = readCallRequest(req);
  switch (request.action) {
    case Action::kMissing:
      reject(id, 400, "Missing X-Evosip-Action");
      return;
    case Action::kUnknown:
      counters_.bump(counters_.calls[size_t(Action::kUnknown)]);
      reject(id, 501, "Unknown Action " + request.actionText);
      return;
    case Action::kHangup: {
      counters_.bump(counters_.calls[size_t(Action::kHangup)]);
      const auto st = readFinalStatus(request, 480);
      layer_.respond(id, st.code, st.reason);
      return;
    }
    default:
      break;
  }
  auto negotiated = negotiate(req.body());
  if (!negotiated) {
    reject(id, 488, req.body().empty() ? "SDP Offer Required" : "Not Acceptable Here");
    return;
  }
  if (negotiated->remoteIpv6 != ipv6_) {
    reject(id, 488, "Address Family Not Supported");
    return;
  }
  const auto* st = layer_.server(id);
  if (st == nullptr || !cseq) {
    return;
  }

  auto call = std::make_shared<Call>(io_);
  call->callId = callId;
  call->request = std::move(request);
  call->action = call->request.action;
  call->localTag = std::string(st->localTag());
  call->remoteTag = fromTag;
  call->inviteTx = id;
  call->remoteCseq = cseq->number;
  call->okCseq = cseq->number;
  call->source = src;
  call->okTo = st->responseDestination();
  call->media = *negotiated;
  call->sessionId = randomU32();
  call->created = clock_.now();
  call->lastRtp = call->created;
  call->deadline = call->created + settings_.maxCall;
  if (const auto* f = req.find(sip::HeaderId::kFrom)) {
    call->fromValue = std::string(f->value);
  }
  if (const auto* t = req.find(sip::HeaderId::kTo)) {
    call->toValue = std::string(t->value) + ";tag=" + call->localTag;
  }
  if (auto from = req.from()) {
    call->callerUri = std::string(from->uriText);
    call->callerUser = std::string(from->uri.user);
  }
  if (const auto* c = req.find(sip::HeaderId::kContact)) {
    sip::ValueSplitter split(c->value);
    if (auto first = split.next()) {
      if (auto na = sip::parseNameAddr(*first)) {
        call->remoteTarget = std::string(na->uriText);
      }
    }
  }
  for (const auto& h : req.headers()) {
    if (h.id != sip::HeaderId::kRecordRoute) {
      continue;
    }
    call->recordRoute += "Record-Route: " + std::string(h.value) + "\r\n";
    sip::ValueSplitter split(h.value);
    while (auto e = split.next()) {
      call->routeSet.emplace_back(*e);
    }
  }

  // Application parameters that can be refused before any media.
  switch (call->action) {
    case Action::kVoicemail: {
      auto box = call->request.param("Mailbox");
      if (!box || !isValidMailbox(*box)) {
        reject(id, 400, "Invalid X-Evosip-Mailbox");
        return;
      }
      break;
    }
    case Action::kMenu: {
      auto targets = parseTargets(call->request.paramOr("Targets", ""));
      if (!targets || targets->entries.empty()) {
        reject(id, 500, targets ? "No X-Evosip-Targets" : "Invalid X-Evosip-Targets");
        return;
      }
      call->targets = std::move(*targets);
      if (auto r = call->request.param("Retries")) {
        call->retries = static_cast<int>(parseDecimal(trim(*r), 9).value_or(kDefaultMenuRetries));
      }
      if (auto t = call->request.param("Timeout")) {
        call->menuTimeout =
            std::chrono::seconds(parseDecimal(trim(*t), 600).value_or(kDefaultMenuTimeoutS));
      }
      break;
    }
    case Action::kPlayback:
      if (call->request.paramOr("Sound", "").empty()) {
        reject(id, 400, "Missing X-Evosip-Sound");
        return;
      }
      break;
    default:
      break;
  }
  if (auto ok = openMedia(*call); !ok) {
    logger()->warn("call {}: {}", callId, ok.error().message);
    reject(id, 503, "No RTP Port");
    return;
  }
  counters_.bump(counters_.calls[size_t(call->action)]);
  counters_.active.fetch_add(1, std::memory_order_relaxed);
  shared_.calls.fetch_add(1, std::memory_order_relaxed);
  calls_.emplace(callId, call);
  call->rosterPos = roster_.size();
  roster_.push_back(call);
  byInvite_[id.value] = call.get();
  layer_.respond(id, 100);
  armRead(call);
  loadPrompts(call);
}

std::string AppCore::respondWithSdp(Call& call, TransactionId id, const sip::Message& req, int code,
                                    std::string_view reason) {
  AnswerAddress a{settings_.rtpAddress, ipv6_, call.port, call.sessionId, call.sdpVersion};
  const std::string body = buildAnswer(call.media, a);
  std::string extra =
      call.recordRoute + contact_ + std::string(kAllow) + "Content-Type: application/sdp\r\n";
  std::string out;
  if (!sip::buildResponse(req, code, reason, call.localTag, extra, out)) {
    return {};
  }
  constexpr std::string_view kEmpty = "Content-Length: 0\r\n\r\n";
  if (out.size() >= kEmpty.size() && out.ends_with(kEmpty)) {
    out.resize(out.size() - kEmpty.size());
    out += fmt::format("Content-Length: {}\r\n\r\n", body.size());
    out += body;
  }
  layer_.respond(id, out);
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
  call.okBytes = respondWithSdp(call, tx, *req, 200, "OK");
  byInvite_.erase(tx.value);
  if (call.closed) {
    return;
  }
  call.dialog = DialogState::kAnswered;
  const auto now = clock_.now();
  if (!call.heard) {
    call.peerSince = now;
  }
  call.okInterval = kT1;
  call.okNext = now + kT1;
  call.okGiveUp = now + 64 * kT1;
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

void AppCore::reInvite(Call& call, TransactionId id, const sip::Message& req) {
  auto cseq = req.cseq();
  if (!cseq) {
    layer_.respond(id, 400, "Bad CSeq");
    return;
  }
  if (cseq->number == call.okCseq && !call.okBytes.empty()) {
    layer_.respond(id, call.okBytes);  // retransmitted re-INVITE after its 2xx
    return;
  }
  if (call.dialog != DialogState::kConfirmed || awaitingAck_.count(&call) != 0) {
    layer_.respond(id, 491, "Request Pending");
    return;
  }
  call.remoteCseq = cseq->number;
  if (!req.body().empty()) {
    auto n = negotiate(req.body(), call.media.law);
    if (!n || n->remoteIpv6 != ipv6_) {
      layer_.respond(id, 488, "Not Acceptable Here");
      return;
    }
    const bool moved =
        n->remoteAddress != call.media.remoteAddress || n->remotePort != call.media.remotePort;
    if (call.packetizer && n->payloadType != call.media.payloadType) {
      // Another codec or payload type: a new stream (SSRC) in it.
      call.packetizer.emplace(rtp::PacketizerSettings{n->payloadType});
    }
    call.media = *n;
    if (moved) {
      call.latched = false;
      call.heard = false;  // the new address has to answer too
      setDestination(call);
    }
    if (!call.heard) {
      call.peerSince = clock_.now();  // (also after a hold: the peer's time starts again)
    }
    ++call.sdpVersion;
    call.marker = true;
  }
  // Contact may change with a target refresh.
  if (const auto* c = req.find(sip::HeaderId::kContact)) {
    sip::ValueSplitter split(c->value);
    if (auto first = split.next()) {
      if (auto na = sip::parseNameAddr(*first)) {
        call.remoteTarget = std::string(na->uriText);
      }
    }
  }
  // The route set is fixed by the initial INVITE: no Record-Route in this 2xx.
  const std::string saved = call.recordRoute;
  call.recordRoute.clear();
  if (const auto* st = layer_.server(id)) {
    call.okTo = st->responseDestination();
  }
  call.okBytes = respondWithSdp(call, id, req, 200, "OK");
  call.recordRoute = saved;
  call.okCseq = cseq->number;
  const auto now = clock_.now();
  call.okInterval = kT1;
  call.okNext = now + kT1;
  call.okGiveUp = now + 64 * kT1;
  awaitingAck_.insert(&call);
}

void AppCore::onBye(TransactionId id, const sip::Message& req) {
  Call* call = findDialog(req);
  if (call == nullptr) {
    layer_.respond(id, 481, "Call/Transaction Does Not Exist");
    return;
  }
  counters_.bump(counters_.byesReceived);
  layer_.respond(id, 200);
  if (!call->finalSent) {
    sendFinal(*call, 487, "Request Terminated");
  }
  call->dialog = DialogState::kEnded;
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
  if (!cseq || cseq->number != call->okCseq) {
    return;
  }
  if (awaitingAck_.erase(call) == 0) {
    return;  // a retransmitted ACK
  }
  call->dialog = DialogState::kConfirmed;
  if (call->byeAfterAck) {
    sendBye(*call);
    endCall(*call, EndReason::kHangup);
  }
}

void AppCore::onResponse(TransactionId, const sip::Message&) {}
void AppCore::onStrayResponse(const sip::Message&, const transport::Source&) {}
void AppCore::onClientError(TransactionId, transaction::TransactionError) {}

void AppCore::onServerError(TransactionId server, transaction::TransactionError) {
  auto it = byInvite_.find(server.value);
  if (it != byInvite_.end()) {
    Call& call = *it->second;
    call.finalSent = true;
    endCall(call, EndReason::kTransportError);
  }
}

void AppCore::sendBye(Call& call) {
  if (call.dialog == DialogState::kEnded) {
    return;
  }
  call.dialog = DialogState::kEnded;
  std::optional<transport::Endpoint> to;
  std::string routes;
  if (!call.routeSet.empty()) {
    if (auto na = sip::parseNameAddr(call.routeSet.front())) {
      to = uriEndpoint(na->uri);
    }
    for (const auto& r : call.routeSet) {
      routes += "Route: " + r + "\r\n";
    }
  } else if (auto uri = sip::parseUri(call.remoteTarget)) {
    to = uriEndpoint(*uri);
  }
  if (!to) {
    to = call.source.remote;  // a name we cannot resolve: back where the INVITE came from
  }
  const std::string target = call.remoteTarget.empty() ? "sip:" + to->str() : call.remoteTarget;
  call.localCseq = std::max<uint32_t>(call.localCseq + 1, 1);
  std::string bye = fmt::format(
      "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {}:{};branch={};rport\r\n{}Max-Forwards: 70\r\n"
      "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} BYE\r\nContent-Length: 0\r\n\r\n",
      target, settings_.viaHost, settings_.viaPort, layer_.newBranch(), routes, call.toValue,
      call.fromValue, call.callId, call.localCseq);
  counters_.bump(counters_.byesSent);
  if (auto r = layer_.sendRequest(std::move(bye), {transport::Protocol::kUdp, *to, {}}); !r) {
    logger()->warn("call {}: BYE not sent: {}", call.callId, r.error().message);
  }
}

void AppCore::hangup(Call& call, int earlyCode, std::string_view earlyReason) {
  if (!call.finalSent) {
    sendFinal(call, earlyCode, earlyReason);
    endCall(call, EndReason::kHangup);
    return;
  }
  if (call.dialog == DialogState::kAnswered) {
    call.byeAfterAck = true;  // RFC 3261 15: no BYE before the ACK of our 2xx
    call.phase = Phase::kEnding;
    stopSending(call);
    return;
  }
  sendBye(call);
  endCall(call, EndReason::kHangup);
}

std::string_view AppCore::endReasonName(EndReason why) {
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
  }
  return "?";
}

void AppCore::endCall(Call& call, EndReason why) {
  auto it = calls_.find(call.callId);
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
  stopSending(call);
  call.closed = true;
  if (call.sock.is_open()) {
    boost::system::error_code ec;
    if (call.sentBelow > sender_->sentBelow()) {
      // Packets of the call still wait for their tick: the descriptor (not to be reused by
      // another socket meanwhile) and the port stay until they are out.
      const int fd = call.sock.release(ec);
      if (!ec) {
        closing_.push_back({fd, call.port, call.sentBelow});
      } else {
        call.sock.close(ec);
        ports_.release(call.port);
      }
    } else {
      call.sock.close(ec);
      ports_.release(call.port);
    }
  } else {
    ports_.release(call.port);
  }
  counters_.active.fetch_sub(1, std::memory_order_relaxed);
  shared_.calls.fetch_sub(1, std::memory_order_relaxed);

  if (call.recorder && !call.recorder->samples().empty()) {
    // The blocking pool drops queued work when it stops: at shutdown, store it here.
    storeMessage(call, why == EndReason::kShutdown);
  }
  logger()->debug("call {}: ended ({})", call.callId, endReasonName(why));
}

void AppCore::storeMessage(Call& call, bool now) {
  VoicemailMessage m;
  m.id = newMessageId(call.recordStart, randomU32());
  m.mailbox = call.request.paramOr("Mailbox", "");
  m.caller = call.callerUser.empty() ? call.callerUri : call.callerUser;
  m.callerUri = call.callerUri;
  m.callId = call.callId;
  m.start = isoTime(call.recordStart);
  m.startUnix =
      std::chrono::duration_cast<std::chrono::seconds>(call.recordStart.time_since_epoch()).count();
  auto samples = call.recorder->take();
  m.samples = samples.size();
  m.durationS = static_cast<double>(samples.size()) / 8000.0;
  m.file = m.id + ".wav";
  auto* counters = &counters_;
  AppShared* shared = &shared_;
  std::weak_ptr<char> alive = alive_;
  // On the blocking pool nothing of this core is touched: the outcome is counted on the worker,
  // where the core would be destroyed, and only if it still exists.
  asio::io_context& io = io_;
  auto store = [dir = settings_.voicemailDir, quota = settings_.voicemailQuota, m = std::move(m),
                samples = std::move(samples), counters, shared, alive, &io, now] {
    // The quotas again, now that the message's length is known: messages deposited meanwhile
    // (other calls, other instances on the same volume) may have filled the mailbox.
    auto box = mailboxUsage(dir, m.mailbox);
    const VoicemailUsage total{shared->voicemailMessages.load(), shared->voicemailBytes.load()};
    const bool fits = box && voicemailRoom(quota, *box, total, samples.size()) == samples.size();
    auto r = fits ? storeVoicemail(dir, m, samples) : Result<void>{};
    if (fits && r) {
      shared->voicemailMessages.fetch_add(1);
      shared->voicemailBytes.fetch_add(voicemailMessageBytes(samples.size()));
    }
    auto report = [counters, alive, fits, r, callId = m.callId, id = m.id, mailbox = m.mailbox,
                   durationS = m.durationS] {
      if (alive.expired()) {
        return;
      }
      if (!fits) {
        counters->recordingsOverQuota.fetch_add(1, std::memory_order_relaxed);
        logger()->warn("call {}: voicemail for {} not stored: over quota", callId, mailbox);
      } else if (r) {
        counters->recordingsWritten.fetch_add(1, std::memory_order_relaxed);
        logger()->info("call {}: voicemail {} for {} ({:.1f} s)", callId, id, mailbox, durationS);
      } else {
        counters->recordingsFailed.fetch_add(1, std::memory_order_relaxed);
        logger()->error("call {}: voicemail not stored: {}", callId, r.error().message);
      }
    };
    if (now) {
      report();  // on the worker already (a shutdown stores inline)
    } else {
      asio::post(io, std::move(report));
    }
  };
  if (now) {
    store();
  } else {
    shared_.runBlocking(std::move(store));
  }
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

void AppCore::checkMailbox(const CallPtr& call) {
  std::weak_ptr<Call> weak = call;
  std::weak_ptr<char> alive = alive_;
  AppShared* shared = &shared_;
  const uint64_t maxSamples = static_cast<uint64_t>(settings_.voicemailMax.count()) * 8000;
  // The blocking thread touches nothing of this core: the worker's io_context outlives it, and
  // whether the core still exists is asked on the worker, where it would be destroyed.
  asio::io_context& io = io_;
  shared_.runBlocking([this, &io, weak, alive, shared, maxSamples, dir = settings_.voicemailDir,
                       quota = settings_.voicemailQuota,
                       mailbox = call->request.paramOr("Mailbox", "")] {
    auto box = mailboxUsage(dir, mailbox);
    const VoicemailUsage total{shared->voicemailMessages.load(), shared->voicemailBytes.load()};
    const uint64_t room = box ? voicemailRoom(quota, *box, total, maxSamples) : 0;
    asio::post(io, [this, weak, alive, room] {
      if (alive.expired()) {
        return;
      }
      auto c = weak.lock();
      if (!c || c->closed) {
        return;
      }
      c->recordRoom = room;
      if (--c->loading == 0) {
        onPromptsDone(*c);
      }
    });
  });
}

// ---- applications ---------------------------------------------------------------------------

void AppCore::loadPrompts(const CallPtr& call) {
  SoundRef base;
  base.locale = call->request.paramOr("SoundLocale", "en");
  base.custom = call->request.paramOr("SoundCustom", "");
  struct Want {
    std::string sound;
    PromptPtr Call::*slot;
    bool required;
  };
  std::vector<Want> wants;
  switch (call->action) {
    case Action::kPlayback:
      wants.push_back({call->request.paramOr("Sound", ""), &Call::main, true});
      break;
    case Action::kVoicemail:
      wants.push_back({call->request.paramOr("Sound", "voicemail-greeting"), &Call::main, false});
      wants.push_back({"beep", &Call::beep, false});
      break;
    case Action::kMenu:
      wants.push_back({call->request.paramOr("Sound", "menu"), &Call::main, true});
      wants.push_back({call->request.paramOr("InvalidSound", "invalid"), &Call::invalid, false});
      break;
    default:
      break;
  }
  if (wants.empty()) {
    start(*call);
    return;
  }
  call->loading = static_cast<int>(wants.size());
  if (call->action == Action::kVoicemail) {
    ++call->loading;
    checkMailbox(call);
  }
  std::weak_ptr<Call> weak = call;
  for (const auto& w : wants) {
    SoundRef ref = base;
    ref.sound = w.sound;
    auto slot = w.slot;
    const bool required = w.required;
    shared_.prompts->get(ref, [this, weak, slot, required](Result<PromptPtr> r) {
      asio::post(io_, [this, weak, slot, required, r = std::move(r)] {
        auto call = weak.lock();
        if (!call || call->closed) {
          return;
        }
        if (r) {
          (*call).*slot = *r;
        } else if (required && call->loadError.empty()) {
          call->loadError = r.error().message;
        }
        if (--call->loading == 0) {
          onPromptsDone(*call);
        }
      });
    });
  }
}

void AppCore::onPromptsDone(Call& call) {
  if (!call.loadError.empty()) {
    logger()->info("call {}: {}", call.callId, call.loadError);
    counters_.bump(counters_.rejected);
    sendFinal(call, 404, "Sound Not Found");
    endCall(call, EndReason::kSoundNotFound);
    return;
  }
  if (call.action == Action::kVoicemail && call.recordRoom == 0) {
    // Refused before any media: nothing is recorded for a full mailbox (or a full store).
    logger()->info("call {}: mailbox {} is full", call.callId, call.request.paramOr("Mailbox", ""));
    counters_.bump(counters_.mailboxFull);
    counters_.bump(counters_.rejected);
    sendFinal(call, 486, "Mailbox Full");
    endCall(call, EndReason::kMailboxFull);
    return;
  }
  start(call);
}

void AppCore::start(Call& call) {
  const auto* st = layer_.server(call.inviteTx);
  if (st == nullptr) {
    endCall(call, EndReason::kTransactionGone);
    return;
  }
  auto req = sip::Message::parse(st->request());
  if (!req) {
    return;
  }
  call.packetizer.emplace(rtp::PacketizerSettings{call.media.payloadType});
  call.mediaStarted = true;
  call.lastRtp = clock_.now();
  setDestination(call);
  switch (call.action) {
    case Action::kPlayback:
      call.earlyMedia = call.request.hasOption("noanswer");
      call.phase = Phase::kPlaying;
      break;
    case Action::kVoicemail:
      call.phase = Phase::kGreeting;
      break;
    case Action::kMenu:
      call.earlyMedia = true;
      call.phase = Phase::kMenuPrompt;
      break;
    case Action::kEcho:
      call.phase = Phase::kEcho;
      break;
    default:
      break;
  }
  if (call.earlyMedia) {
    respondWithSdp(call, call.inviteTx, *req, 183, "Session Progress");
  } else {
    answer(call);
  }
  switch (call.action) {
    case Action::kPlayback:
      play(call, call.main);
      break;
    case Action::kVoicemail:
      if (call.main) {
        call.queue.push_back(call.beep ? call.beep : makeBeep());
        play(call, call.main);
      } else {
        play(call, call.beep ? call.beep : makeBeep());
      }
      break;
    case Action::kMenu:
      play(call, call.main);
      break;
    default:
      break;
  }
}

// The current prompt (and its queue) ended.
void AppCore::onPromptDone(Call& call) {
  const auto now = clock_.now();
  switch (call.phase) {
    case Phase::kPlaying:
      if (call.earlyMedia) {
        const auto st = readFinalStatus(call.request, 480);
        sendFinal(call, st.code, st.reason);
        endCall(call, EndReason::kPlayed);
      } else {
        hangup(call, 480, "Played");
      }
      return;
    case Phase::kGreeting:
      call.phase = Phase::kRecording;
      call.recorder = std::make_unique<VoicemailRecorder>(static_cast<size_t>(
          std::min<uint64_t>(call.recordRoom, uint64_t(settings_.voicemailMax.count()) * 8000)));
      call.recordStart = std::chrono::system_clock::now();
      call.lastRtp = now;
      return;
    case Phase::kMenuPrompt:
      call.phase = Phase::kMenuWait;
      call.menuSince = now;
      call.digits.clear();
      return;
    case Phase::kMenuInvalid:
      call.phase = Phase::kMenuPrompt;
      play(call, call.main);
      return;
    default:
      return;
  }
}

void AppCore::onDigit(Call& call, char digit) {
  counters_.bump(counters_.dtmfDigits);
  if (call.action != Action::kMenu ||
      (call.phase != Phase::kMenuPrompt && call.phase != Phase::kMenuWait &&
       call.phase != Phase::kMenuInvalid)) {
    return;
  }
  call.playing.reset();  // a digit interrupts the prompt (or the error prompt)
  call.queue.clear();
  call.phase = Phase::kMenuWait;
  call.menuSince = clock_.now();
  call.digits.push_back(digit);
  call.pendingTarget.clear();
  const auto r = matchDigits(call.targets, call.digits);
  switch (r.match) {
    case DigitMatch::kTarget:
      menuRedirect(call, r.target);
      return;
    case DigitMatch::kPrefix:
      call.pendingTarget = r.target;
      break;
    case DigitMatch::kNeedMore:
      break;
    case DigitMatch::kInvalid:
      menuInvalid(call, false);
      return;
  }
}

void AppCore::menuInvalid(Call& call, bool timeout) {
  call.digits.clear();
  call.pendingTarget.clear();
  if (++call.attempts > call.retries) {
    const auto st = readFinalStatus(call.request, 480);
    hangup(call, st.code, timeout ? "No Selection" : "Invalid Selection");
    return;
  }
  if (!timeout && call.invalid) {
    call.phase = Phase::kMenuInvalid;
    play(call, call.invalid);
  } else {
    call.phase = Phase::kMenuPrompt;
    play(call, call.main);
  }
}

void AppCore::menuRedirect(Call& call, const std::string& target) {
  counters_.bump(counters_.redirects);
  logger()->info("call {}: menu digits {} -> {}", call.callId, call.digits, target);
  sendFinal(call, 302, "Moved Temporarily", "Contact: <" + target + ">\r\n");
  endCall(call, EndReason::kRedirected);
}

void AppCore::checkDeadline(Call& call, TimePoint now) {
  if (call.closed || call.phase == Phase::kEnding || call.phase == Phase::kLoading) {
    return;
  }
  const size_t silenceLimit = static_cast<size_t>(settings_.voicemailSilence.count()) * 8000;
  if (now >= call.deadline) {
    counters_.bump(counters_.maxDurationEnds);
    hangup(call, 480, "Maximum Duration");
    return;
  }
  if (call.phase == Phase::kRecording && call.recorder) {
    if (call.recorder->full()) {
      hangup(call, 480, "Recording Full");
      return;
    }
    if (silenceLimit > 0 && call.recorder->trailingSilence() >= silenceLimit) {
      call.recorder->trimSilence(4000);
      hangup(call, 480, "Silence");
      return;
    }
  }
  const bool needsInput = call.phase == Phase::kRecording || call.phase == Phase::kEcho ||
                          call.phase == Phase::kMenuWait || call.phase == Phase::kMenuPrompt;
  const bool held = call.dialog == DialogState::kConfirmed && !call.media.canSend();
  if (!call.heard && !held && settings_.rtpPeerTimeout.count() > 0 && now > call.peerSince &&
      now - call.peerSince >= settings_.rtpPeerTimeout) {
    // Answered, and nothing ever came back from where the app sends: not a phone (or a victim
    // named in the SDP). Stop streaming to it.
    counters_.bump(counters_.rtpTimeouts);
    logger()->info("call {}: nothing received {} s after the answer: hanging up", call.callId,
                   settings_.rtpPeerTimeout.count());
    hangup(call, 480, "RTP Timeout");
    return;
  }
  if (needsInput && !held && settings_.rtpTimeout.count() > 0 &&
      now - call.lastRtp >= settings_.rtpTimeout) {
    counters_.bump(counters_.rtpTimeouts);
    logger()->info("call {}: no RTP for {} s", call.callId, settings_.rtpTimeout.count());
    hangup(call, 480, "RTP Timeout");
    return;
  }
  if (call.phase == Phase::kMenuWait) {
    // The inter-digit timer after a digit, the menu timeout without one.
    const auto since = now - call.menuSince;
    if (!call.digits.empty() && since >= settings_.interDigit) {
      if (!call.pendingTarget.empty()) {
        menuRedirect(call, call.pendingTarget);
      } else {
        menuInvalid(call, false);
      }
    } else if (call.digits.empty() && since >= call.menuTimeout) {
      menuInvalid(call, true);
    }
  }
}

void AppCore::resend2xx(Call& call) {
  if (!call.okBytes.empty()) {
    send_(call.okTo, call.okBytes);
  }
}

void AppCore::onTick() {
  const auto now = clock_.now();
  layer_.onTick(now);
  // 2xx retransmissions until the ACK (RFC 3261 13.3.1.4).
  std::vector<Call*> giveUp;
  for (Call* c : awaitingAck_) {
    if (now >= c->okGiveUp) {
      giveUp.push_back(c);
    } else if (now >= c->okNext) {
      c->okInterval = std::min(c->okInterval * 2, std::chrono::milliseconds(kT2));
      c->okNext = now + c->okInterval;
      resend2xx(*c);
    }
  }
  for (Call* c : giveUp) {
    awaitingAck_.erase(c);
    c->dialog = DialogState::kConfirmed;  // no ACK: confirmed, then torn down (13.3.1.4)
    logger()->info("call {}: no ACK for the 2xx: BYE", c->callId);
    sendBye(*c);
    endCall(*c, EndReason::kNoAck);
  }
  // The deadlines, a tenth of the calls at a time (held: hanging up changes roster_).
  sweep_.next(roster_.size(), [this](size_t i) { sweepShare_.push_back(roster_[i]); });
  for (auto& c : sweepShare_) {
    checkDeadline(*c, now);
  }
  sweepShare_.clear();
  if (worker_ == 0 && ticks_ % 6000 == 0) {
    countVoicemail();  // at the first tick, then every minute
  }
  if (!settings_.pacingThread) {
    onPacing();
  }
  if (++ticks_ % 100 == 0) {
    counters_.serverTransactions.store(layer_.serverCount(), std::memory_order_relaxed);
    counters_.clientTransactions.store(layer_.clientCount(), std::memory_order_relaxed);
    counters_.skippedTicks.store(grid_.skippedTicks(), std::memory_order_relaxed);
  }
  reapSent();
}

// ---- media ----------------------------------------------------------------------------------

Result<void> AppCore::openMedia(Call& call) {
  sockaddr_storage local{};
  socklen_t len = 0;
  if (!toSockaddr(settings_.rtpAddress, 0, local, len)) {
    return makeError(Errc::kInvalid, "app.rtp_address: not an IP address");
  }
  // Ports another process holds stay taken until a free one is found, so none is tried twice.
  std::vector<uint16_t> busy;
  auto giveBack = [&] {
    for (uint16_t p : busy) {
      ports_.release(p);
    }
  };
  for (;;) {
    auto port = ports_.allocate();
    if (!port) {
      giveBack();
      return makeError(Errc::kUnavailable, "out of RTP ports");
    }
    const int fd = ::socket(local.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      busy.push_back(*port);
      giveBack();
      return makeError(Errc::kIo, fmt::format("socket: {}", std::strerror(errno)));
    }
    if (local.ss_family == AF_INET6) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
      reinterpret_cast<sockaddr_in6*>(&local)->sin6_port = htons(*port);
    } else {
      reinterpret_cast<sockaddr_in*>(&local)->sin_port = htons(*port);
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), len) != 0) {
      ::close(fd);
      busy.push_back(*port);  // taken by another process: try another one
      continue;
    }
    giveBack();
    boost::system::error_code ec;
    call.sock.assign(local.ss_family == AF_INET6 ? asio::ip::udp::v6() : asio::ip::udp::v4(), fd,
                     ec);
    if (ec) {
      ::close(fd);
      ports_.release(*port);
      return makeError(Errc::kIo, "assign: " + ec.message());
    }
    call.fd = fd;
    call.port = *port;
    return {};
  }
}

void AppCore::setDestination(Call& call) {
  if (call.latched) {
    return;
  }
  if (!toSockaddr(call.media.remoteAddress, call.media.remotePort, call.dest, call.destLen)) {
    call.destLen = 0;
  }
}

void AppCore::armRead(const CallPtr& call) {
  call->sock.async_wait(asio::ip::udp::socket::wait_read,
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
    sockaddr_storage from{};
    socklen_t fromLen = sizeof from;
    const ssize_t n = ::recvfrom(call.fd, packet_.data(), packet_.size(), MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from), &fromLen);
    if (n < 0) {
      return;
    }
    const std::span<const uint8_t> datagram(packet_.data(), static_cast<size_t>(n));
    if (!rtp::looksLikeRtcp(datagram) && !rtp::parseRtp(datagram)) {
      continue;  // not RTP: neither a sign of life nor an address to send to
    }
    if (call.latched) {
      if (!sameSource(from, fromLen, call.dest, call.destLen)) {
        continue;  // not the peer: no digits, no voicemail audio, no sign of life
      }
    } else if (call.mediaStarted) {
      // Symmetric RTP: answer where the packets come from (a NATed phone, a relay), and only
      // there from now on.
      std::memcpy(&call.dest, &from, fromLen);
      call.destLen = fromLen;
      call.latched = true;
    }
    if (call.latched) {
      call.heard = true;
    }
    onRtp(call, datagram);
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
  if (call.media.telephoneEvent && pkt->header.payloadType == *call.media.telephoneEvent) {
    if (auto d = call.dtmf.onPacket(*pkt)) {
      onDigit(call, d->digit);
    }
    return;
  }
  if (pkt->header.payloadType != call.media.payloadType || call.closed) {
    return;
  }
  switch (call.phase) {
    case Phase::kEcho:
      if (call.media.canSend() && call.packetizer && !pkt->payload.empty() &&
          pkt->payload.size() <= 1024) {
        sendFrame(call, pkt->payload, static_cast<uint32_t>(pkt->payload.size()));
      }
      return;
    case Phase::kRecording: {
      std::array<int16_t, 1024> pcm;
      const size_t n = std::min(pkt->payload.size(), pcm.size());
      audio::decodeG711(call.media.law, pkt->payload.first(n), std::span<int16_t>(pcm.data(), n));
      call.recorder->onAudio(pkt->header.timestamp, std::span<const int16_t>(pcm.data(), n),
                             call.lastRtp);
      return;
    }
    default:
      return;
  }
}

void AppCore::sendFrame(Call& call, std::span<const uint8_t> payload, uint32_t samples,
                        PacedSender::Tick* paced) {
  if (call.destLen == 0) {
    return;
  }
  if (call.marker) {
    call.packetizer->startTalkspurt();
    call.marker = false;
  }
  std::array<uint8_t, rtp::kRtpHeaderSize + 1024> buf;
  auto size = call.packetizer->packetize(payload, samples, buf);
  if (!size) {
    return;
  }
  if (paced != nullptr) {
    if (PacedSender::add(*paced, call.fd, reinterpret_cast<const sockaddr*>(&call.dest),
                         call.destLen, std::span<const uint8_t>(buf.data(), *size))) {
      call.sentBelow = paced->index + 1;
      counters_.bump(counters_.pacedPackets);
    }
    return;
  }
  const ssize_t r = ::sendto(call.fd, buf.data(), *size, MSG_DONTWAIT,
                             reinterpret_cast<const sockaddr*>(&call.dest), call.destLen);
  if (r < 0) {
    counters_.bump(counters_.rtpSendErrors);
    return;
  }
  counters_.bump(counters_.rtpSent);
}

void AppCore::play(Call& call, PromptPtr prompt) {
  call.playing = std::move(prompt);
  call.position = 0;
  if (!call.playing || call.playing->frames() == 0) {
    call.playing.reset();
  }
  startSending(call);
  if (!call.playing && call.queue.empty()) {
    // Nothing to play: done once what was queued before has left.
    auto it = calls_.find(call.callId);
    if (it != calls_.end()) {
      pendingDone_.push_back({it->second, call.sentBelow});
    }
  }
}

void AppCore::startSending(Call& call) {
  if (call.sending) {
    return;
  }
  call.sending = true;
  call.marker = true;
  call.slot = grid_.acquireSlot();
  auto& list = slots_[call.slot];
  call.slotPos = list.size();
  list.push_back(&call);
  if (!paceArmed_) {
    grid_.resync(clock_.now());
  }
  call.nextCycle = grid_.nextCycleOf(call.slot);
  armPacing();
}

void AppCore::stopSending(Call& call) {
  if (!call.sending) {
    return;
  }
  call.sending = false;
  auto& list = slots_[call.slot];
  Call* last = list.back();
  list[call.slotPos] = last;
  last->slotPos = call.slotPos;
  list.pop_back();
  grid_.releaseSlot(call.slot);
}

void AppCore::armPacing() {
  if (!settings_.pacingThread || paceArmed_ || grid_.active() == 0) {
    return;
  }
  paceArmed_ = true;
  // Next wake-up: when the first tick not yet prepared is kHorizon - kPrepareEvery away.
  paceTimer_.expires_at(grid_.nextDue() - kHorizon + kPrepareEvery);
  std::weak_ptr<char> alive = alive_;
  paceTimer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (ec || alive.expired()) {
      return;
    }
    paceArmed_ = false;
    onPacing();
  });
}

void AppCore::onPacing() {
  const auto now = clock_.now();
  grid_.poll(now + kHorizon, [this](const PacingGrid::Tick& t) { paceSlot(t); });
  sender_->sendDue(now);  // without the pacing thread: the ticks due now
  reapSent();
  armPacing();
}

void AppCore::reapSent() {
  const uint64_t sent = sender_->sentBelow();
  if (!pendingDone_.empty()) {
    std::vector<CallPtr> done;
    for (size_t i = 0; i < pendingDone_.size();) {
      if (pendingDone_[i].sentBelow <= sent) {
        done.push_back(std::move(pendingDone_[i].call));
        pendingDone_[i] = std::move(pendingDone_.back());
        pendingDone_.pop_back();
      } else {
        ++i;
      }
    }
    for (auto& c : done) {
      if (!c->closed && !c->playing) {
        onPromptDone(*c);
      }
    }
  }
  for (size_t i = 0; i < closing_.size();) {
    if (closing_[i].sentBelow <= sent) {
      ::close(closing_[i].fd);
      ports_.release(closing_[i].port);
      closing_[i] = closing_.back();
      closing_.pop_back();
    } else {
      ++i;
    }
  }
}

void AppCore::paceSlot(const PacingGrid::Tick& tick) {
  auto& list = slots_[tick.slot];
  // Null when the sender is a whole ring behind: this tick's frames are dropped.
  PacedSender::Tick* out = list.empty() ? nullptr : sender_->prepare(tick.index, tick.due);
  for (size_t i = 0; i < list.size(); ++i) {
    Call& call = *list[i];
    if (tick.cycle < call.nextCycle) {
      continue;  // joined this slot after this tick was due
    }
    const uint64_t missed = tick.cycle - call.nextCycle;
    call.nextCycle = tick.cycle + 1;
    if (missed > 0) {
      call.packetizer->skip(static_cast<uint32_t>(missed * kFrameSamples));
      if (call.playing) {
        call.position += missed;
      }
    }
    std::span<const uint8_t> payload;
    if (call.playing) {
      if (call.position >= call.playing->frames()) {
        call.position = call.playing->frames() - 1;
      }
      payload = call.playing->frame(call.media.law, call.position++);
    } else {
      payload = silenceFrame(call.media.law);
    }
    if (call.media.canSend() && call.destLen != 0 && out != nullptr) {
      sendFrame(call, payload, kFrameSamples, out);
    } else {
      call.packetizer->skip(kFrameSamples);
      call.marker = true;
    }
    if (call.playing && call.position >= call.playing->frames()) {
      if (!call.queue.empty()) {
        call.playing = call.queue.front();
        call.queue.erase(call.queue.begin());
        call.position = 0;
      } else {
        call.playing.reset();
        auto it = calls_.find(call.callId);
        if (it != calls_.end()) {
          pendingDone_.push_back({it->second, call.sentBelow});
        }
      }
    }
  }
  if (out != nullptr && !out->packets.empty()) {
    sender_->publish();
  }
}

}  // namespace evosip::app
