#include <algorithm>

#include <evosip/base/assert.hpp>
#include <evosip/base/hash.hpp>
#include <evosip/base/hex.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/sip/address.hpp>
#include <evosip/sip/response.hpp>
#include <evosip/transaction/transaction_layer.hpp>
#include <evosip/transport/response_destination.hpp>

#include "message_text.hpp"

namespace evosip::transaction {
namespace {

using std::chrono::milliseconds;

constexpr size_t slotIndex(TimerSlot s) {
  return static_cast<size_t>(s);
}

uint64_t rfc2543Key(std::string_view callId, uint32_t cseq) {
  return hash64(callId, 0x2543'0000'0000ULL + cseq);
}

bool isClientKind(Kind k) {
  return k == Kind::kClientInvite || k == Kind::kClientNonInvite;
}

// Appends every header line of `id` of the message as written.
void appendAll(std::string& out, const sip::Message& msg, sip::HeaderId id) {
  for (const auto& h : msg.headers()) {
    if (h.id == id) {
      out.append(text::lineOf(msg, h));
    }
  }
}

// The start line, single Via and the headers an ACK or CANCEL copies from its INVITE
// (RFC 3261 9.1, 17.1.1.3); the caller adds To and CSeq.
void appendDerivedHead(std::string& out, std::string_view method, const sip::Message& invite,
                       const sip::Via& via) {
  out.append(method).append(" ").append(invite.requestUri()).append(" SIP/2.0\r\n");
  text::appendLine(out, "Via", via.text);
  appendAll(out, invite, sip::HeaderId::kRoute);
  out.append("Max-Forwards: 70\r\n");
  appendAll(out, invite, sip::HeaderId::kFrom);
  text::appendLine(out, "Call-ID", invite.callId());
}

}  // namespace

std::string_view stateName(State s) {
  switch (s) {
    case State::kCalling:
      return "calling";
    case State::kTrying:
      return "trying";
    case State::kProceeding:
      return "proceeding";
    case State::kCompleted:
      return "completed";
    case State::kConfirmed:
      return "confirmed";
    case State::kTerminated:
      return "terminated";
  }
  return "unknown";
}

TransactionLayer::TransactionLayer(LayerSettings settings, const runtime::Clock& clock, SendFn send,
                                   TransactionUser& user)
    : settings_(settings), clock_(clock), send_(std::move(send)), user_(user) {}

TransactionLayer::~TransactionLayer() = default;

std::string TransactionLayer::newBranch(std::optional<uint32_t> loop) {
  std::string b = "z9hG4bK";
  // mix64 is a bijection: distinct counters give distinct branches for one seed.
  appendHex(b, mix64(settings_.branchSeed ^ mix64(++branchCounter_)));
  if (loop) {
    b.push_back('l');
    appendHex(b, *loop, 8);
  }
  if (settings_.branchWorker >= 0) {
    b.push_back('w');
    b.append(std::to_string(settings_.branchWorker));
  }
  b.push_back('t');
  return b;
}

namespace {

// "z9hG4bK" + 16 hex digits, then "l" + 8 hex digits (optional), "w" + decimal (optional), "t".
constexpr size_t kHexEnd = 7 + 16;
constexpr size_t kLoopEnd = kHexEnd + 9;

bool loopPart(std::string_view branch) {
  return branch.size() > kLoopEnd && branch[kHexEnd] == 'l' && branch.back() == 't';
}

}  // namespace

std::optional<uint32_t> TransactionLayer::loopOfBranch(std::string_view branch) {
  if (!loopPart(branch) || !branch.starts_with("z9hG4bK")) {
    return std::nullopt;
  }
  auto v = parseHex(branch.substr(kHexEnd + 1, 8));
  if (!v) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(*v);
}

std::optional<size_t> TransactionLayer::workerOfBranch(std::string_view branch) {
  const size_t at = loopPart(branch) ? kLoopEnd : kHexEnd;
  if (branch.size() < at + 3 || branch.back() != 't' || branch[at] != 'w' ||
      branch.size() > at + 12) {
    return std::nullopt;
  }
  size_t worker = 0;
  for (char c : branch.substr(at + 1, branch.size() - at - 2)) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    worker = worker * 10 + static_cast<size_t>(c - '0');
  }
  return worker;
}

Transaction* TransactionLayer::find(uint64_t id) const {
  auto it = byId_.find(id);
  return it == byId_.end() ? nullptr : it->second.get();
}

const ServerTransaction* TransactionLayer::server(TransactionId id) const {
  Transaction* t = find(id.value);
  return t != nullptr && !isClientKind(t->kind_) ? static_cast<ServerTransaction*>(t) : nullptr;
}

const ClientTransaction* TransactionLayer::client(TransactionId id) const {
  Transaction* t = find(id.value);
  return t != nullptr && isClientKind(t->kind_) ? static_cast<ClientTransaction*>(t) : nullptr;
}

void TransactionLayer::account(Transaction& t) {
  const size_t now = t.bytes();
  bytes_ = bytes_ - t.accounted_ + now;
  t.accounted_ = now;
}

bool TransactionLayer::transmit(const Destination& to, std::string_view bytes) {
  if (send_(to, bytes)) {
    return true;
  }
  ++stats_.transportErrors;
  return false;
}

// ---- receiving ----

void TransactionLayer::onMessage(const sip::Message& msg, const Source& source) {
  if (msg.isRequest()) {
    onRequest(msg, source);
  } else {
    onResponse(msg, source);
  }
}

ServerTransaction* TransactionLayer::matchServer(const sip::Message& msg, const sip::Via& via,
                                                 bool forCancel) {
  const bool isAck = msg.method() == sip::Method::kAck;
  auto methodMatches = [&](const ServerTransaction& st) {
    if (forCancel || isAck) {
      return st.method_ == sip::Method::kInvite;
    }
    return st.methodText_ == msg.methodText();
  };
  if (via.rfc3261Branch()) {
    // RFC 3261 17.2.3: branch, sent-by, method.
    const std::string_view branch = *via.branch();
    auto [it, end] = serverIndex_.equal_range(hash64(branch));
    for (; it != end; ++it) {
      auto* st = static_cast<ServerTransaction*>(find(it->second));
      if (st != nullptr && st->rfc3261_ && st->branch_ == branch && st->sentByPort_ == via.port &&
          iequals(st->sentByHost_, via.host) && methodMatches(*st)) {
        return st;
      }
    }
    return nullptr;
  }
  // RFC 2543 peer: Request-URI, To tag, From tag, Call-ID, CSeq, top Via. The ACK carries the
  // To tag of the response; a CANCEL the To tag of its INVITE.
  auto cseq = msg.cseq();
  if (!cseq) {
    return nullptr;
  }
  const std::string_view callId = msg.callId();
  const std::string_view toTag = sip::tagOf(msg.to());
  const std::string_view fromTag = sip::tagOf(msg.from());
  auto [it, end] = serverIndex_.equal_range(rfc2543Key(callId, cseq->number));
  for (; it != end; ++it) {
    auto* st = static_cast<ServerTransaction*>(find(it->second));
    if (st == nullptr || st->rfc3261_ || st->cseq_ != cseq->number || st->callId_ != callId ||
        st->requestUri_ != msg.requestUri() || st->fromTag_ != fromTag || st->topVia_ != via.text ||
        !methodMatches(*st)) {
      continue;
    }
    if ((isAck ? st->responseToTag_ : st->toTag_) == toTag) {
      return st;
    }
  }
  return nullptr;
}

bool TransactionLayer::knowsRequest(const sip::Message& msg) {
  auto via = msg.topVia();
  if (!via) {
    return false;
  }
  return matchServer(msg, *via, false) != nullptr ||
         (msg.method() == sip::Method::kCancel && matchServer(msg, *via, true) != nullptr);
}

void TransactionLayer::onRequest(const sip::Message& msg, const Source& source) {
  auto via = msg.topVia();
  if (!via) {
    return;  // no Via: no response can be sent
  }
  if (msg.method() == sip::Method::kAck) {
    if (ServerTransaction* st = matchServer(msg, *via, false)) {
      receivedAck(*st);
    } else {
      user_.onAck(msg, source);  // the ACK of a 2xx: end to end
    }
    return;
  }
  if (ServerTransaction* st = matchServer(msg, *via, false)) {
    retransmitted(*st);
    return;
  }
  if (msg.method() == sip::Method::kCancel) {
    if (ServerTransaction* invite = matchServer(msg, *via, true)) {
      receivedCancel(*invite, msg, source);
      return;
    }
  }
  if (serverCount_ >= settings_.maxServerTransactions || bytes_ >= settings_.maxTransactionBytes) {
    rejectFull(msg, source);
    return;
  }
  ServerTransaction* st = createServer(msg, *via, source);
  user_.onRequest(st->id_, msg, source);
}

ServerTransaction* TransactionLayer::createServer(const sip::Message& msg, const sip::Via& via,
                                                  const Source& source) {
  auto owned = std::make_unique<ServerTransaction>();
  ServerTransaction& st = *owned;
  st.id_ = TransactionId{nextId_++};
  const bool invite = msg.method() == sip::Method::kInvite;
  st.kind_ = invite ? Kind::kServerInvite : Kind::kServerNonInvite;
  st.state_ = invite ? State::kProceeding : State::kTrying;
  st.reliable_ = source.protocol != transport::Protocol::kUdp;
  st.method_ = msg.method();
  st.methodText_ = msg.methodText();
  st.callId_ = msg.callId();
  st.source_ = source;
  st.responseTo_ = transport::responseDestination(source, via);
  st.request_ = text::wholeMessage(msg);
  st.sentByHost_ = via.host;
  st.sentByPort_ = via.port;
  st.rfc3261_ = via.rfc3261Branch();
  auto cseq = msg.cseq();
  st.cseq_ = cseq ? cseq->number : 0;
  if (st.rfc3261_) {
    st.branch_ = *via.branch();
    st.indexKey_ = hash64(st.branch_);
  } else {
    st.branch_ = via.branch().value_or(std::string_view{});
    st.requestUri_ = msg.requestUri();
    st.fromTag_ = sip::tagOf(msg.from());
    st.toTag_ = sip::tagOf(msg.to());
    st.topVia_ = via.text;
    st.indexKey_ = rfc2543Key(st.callId_, st.cseq_);
  }
  appendHex(st.localTag_, mix64(hash64(st.callId_) ^ settings_.branchSeed ^ st.id_.value), 12);
  serverIndex_.emplace(st.indexKey_, st.id_.value);
  byId_.emplace(st.id_.value, std::move(owned));
  account(st);
  ++serverCount_;
  ++stats_.serverCreated;
  return &st;
}

void TransactionLayer::rejectFull(const sip::Message& msg, const Source& source) {
  ++stats_.rejectedFull;
  auto via = msg.topVia();
  std::string tag;
  appendHex(tag, hash64(msg.callId(), settings_.branchSeed), 12);
  std::string out;
  if (via && sip::buildResponse(msg, 503, "Service Unavailable", tag, "Retry-After: 5\r\n", out)) {
    transmit(transport::responseDestination(source, *via), out);
  }
}

void TransactionLayer::retransmitted(ServerTransaction& st) {
  ++stats_.retransmissionsAbsorbed;
  // Proceeding: the last provisional; Completed: the final. Trying / Confirmed: nothing.
  if ((st.state_ == State::kProceeding || st.state_ == State::kCompleted) &&
      !st.lastResponse_.empty()) {
    if (!transmit(st.responseTo_, st.lastResponse_)) {
      const TransactionId id = st.id_;
      terminate(st);
      user_.onServerError(id, TransactionError::kTransport);
    }
  }
}

void TransactionLayer::receivedAck(ServerTransaction& st) {
  ++stats_.retransmissionsAbsorbed;
  if (st.kind_ != Kind::kServerInvite || st.state_ != State::kCompleted) {
    return;  // a retransmitted ACK (Confirmed) or one before any final: absorbed
  }
  st.state_ = State::kConfirmed;
  disarm(st, TimerSlot::kRetransmit);
  disarm(st, TimerSlot::kTimeout);
  if (st.reliable_) {
    terminate(st);  // Timer I = 0
  } else {
    arm(st, TimerSlot::kLinger, settings_.timers.t4);  // Timer I
  }
}

void TransactionLayer::receivedCancel(ServerTransaction& invite, const sip::Message& cancel,
                                      const Source& source) {
  const TransactionId inviteId = invite.id_;
  const bool pending = invite.state_ == State::kProceeding;
  const std::string tag = invite.localTag_;
  auto via = cancel.topVia();
  ServerTransaction* st = createServer(cancel, *via, source);
  // RFC 3261 9.2: the 200 to the CANCEL carries the To tag of the INVITE's responses.
  st->localTag_ = tag;
  respond(st->id_, 200);
  if (pending) {
    user_.onCancel(inviteId, cancel);
  }
}

// ---- server transaction: responses from the TU ----

bool TransactionLayer::respond(TransactionId id, std::string_view response) {
  Transaction* t = find(id.value);
  if (t == nullptr || isClientKind(t->kind_)) {
    return false;
  }
  auto& st = static_cast<ServerTransaction&>(*t);
  if (st.state_ != State::kTrying && st.state_ != State::kProceeding) {
    return false;  // a final response was sent already
  }
  auto msg = sip::Message::parse(response);
  if (!msg || !msg->isResponse()) {
    return false;
  }
  const int code = msg->statusCode();
  if (!transmit(st.responseTo_, response)) {
    terminate(st);
    user_.onServerError(id, TransactionError::kTransport);
    return false;
  }
  st.lastStatus_ = code;
  if (code < 200) {
    st.state_ = State::kProceeding;
    st.lastResponse_.assign(response);
    account(st);
    return true;
  }
  if (st.kind_ == Kind::kServerInvite) {
    if (code < 300) {
      terminate(st);  // RFC 3261 17.2.1: 2xx retransmissions are the TU's (end to end)
      return true;
    }
    st.lastResponse_.assign(response);
    st.responseToTag_ = sip::tagOf(msg->to());
    account(st);
    st.state_ = State::kCompleted;
    if (!st.reliable_) {
      st.interval_ = settings_.timers.t1;
      arm(st, TimerSlot::kRetransmit, st.interval_);  // Timer G
    }
    arm(st, TimerSlot::kTimeout, 64 * settings_.timers.t1);  // Timer H
    return true;
  }
  st.state_ = State::kCompleted;
  if (st.reliable_) {
    terminate(st);  // Timer J = 0
  } else {
    st.lastResponse_.assign(response);
    account(st);
    arm(st, TimerSlot::kLinger, 64 * settings_.timers.t1);  // Timer J
  }
  return true;
}

bool TransactionLayer::respond(TransactionId id, int code, std::string_view reason,
                               std::string_view extraHeaders) {
  const ServerTransaction* st = server(id);
  if (st == nullptr) {
    return false;
  }
  auto request = sip::Message::parse(st->request_);
  if (!request) {
    return false;
  }
  std::string out = std::move(scratch_);  // respond() may re-enter through the TU
  if (!sip::buildResponse(*request, code, reason, code == 100 ? std::string_view{} : st->localTag_,
                          extraHeaders, out)) {
    scratch_ = std::move(out);
    return false;
  }
  const bool ok = respond(id, std::string_view(out));
  scratch_ = std::move(out);
  return ok;
}

bool TransactionLayer::respondOnce(TransactionId id, int code, std::string_view reason,
                                   std::string_view extraHeaders) {
  if (code < 300 || !respond(id, code, reason, extraHeaders)) {
    return false;
  }
  Transaction* t = find(id.value);
  if (t == nullptr) {
    return true;  // ended at once (a reliable transport)
  }
  auto& st = static_cast<ServerTransaction&>(*t);
  disarm(st, TimerSlot::kRetransmit);  // no Timer G
  disarm(st, TimerSlot::kTimeout);     // no Timer H: a missing ACK is nobody's error here
  std::string().swap(st.request_);
  account(st);
  if (st.reliable_ && st.kind_ != Kind::kServerInvite) {
    terminate(st);
    return true;
  }
  arm(st, TimerSlot::kLinger, settings_.timers.t4);
  return true;
}

void TransactionLayer::abandon(TransactionId id) {
  Transaction* t = find(id.value);
  if (t != nullptr && !isClientKind(t->kind_)) {
    terminate(*t);
  }
}

// ---- client transactions ----

Result<TransactionId> TransactionLayer::sendRequest(std::string request, const Destination& to) {
  if (clientCount_ >= settings_.maxClientTransactions ||
      bytes_ >= 2 * settings_.maxTransactionBytes) {
    return makeError(Errc::kTooLarge, "too many client transactions");
  }
  auto owned = std::make_unique<ClientTransaction>();
  ClientTransaction& ct = *owned;
  ct.request_ = std::move(request);
  auto msg = sip::Message::parse(ct.request_);
  if (!msg || !msg->isRequest() || msg->method() == sip::Method::kAck) {
    return makeError(Errc::kParse, "not a request that starts a transaction");
  }
  auto via = msg->topVia();
  if (!via || !via->rfc3261Branch()) {
    return makeError(Errc::kParse, "the request has no RFC 3261 branch");
  }
  if (!msg->cseq()) {
    return makeError(Errc::kParse, "the request has no CSeq");
  }
  const bool invite = msg->method() == sip::Method::kInvite;
  ct.id_ = TransactionId{nextId_++};
  ct.kind_ = invite ? Kind::kClientInvite : Kind::kClientNonInvite;
  ct.state_ = invite ? State::kCalling : State::kTrying;
  ct.reliable_ = to.protocol != transport::Protocol::kUdp;
  ct.method_ = msg->method();
  ct.methodText_ = msg->methodText();
  ct.branch_ = *via->branch();
  ct.callId_ = msg->callId();
  ct.destination_ = to;
  if (!transmit(to, ct.request_)) {
    return makeError(Errc::kIo, "the transport refused the request");
  }
  ct.indexKey_ = hash64(ct.branch_);
  clientIndex_.emplace(ct.indexKey_, ct.id_.value);
  if (ct.reliable_ && !to.connection.valid()) {
    ct.connectionKey_ = hash64(to.remote.str()) | 1;
    awaitingConnection_.emplace(ct.connectionKey_, ct.id_.value);
  }
  const TransactionId id = ct.id_;
  byId_.emplace(id.value, std::move(owned));
  account(ct);
  ++clientCount_;
  ++stats_.clientCreated;
  if (!ct.reliable_) {
    ct.interval_ = settings_.timers.t1;
    arm(ct, TimerSlot::kRetransmit, ct.interval_);  // Timer A / E
  }
  arm(ct, TimerSlot::kTimeout, 64 * settings_.timers.t1);  // Timer B / F
  return id;
}

void TransactionLayer::onTransportFailure(const Destination& to) {
  const uint64_t key = hash64(to.remote.str()) | 1;
  std::vector<uint64_t> failed;
  auto [it, end] = awaitingConnection_.equal_range(key);
  for (; it != end; ++it) {
    failed.push_back(it->second);
  }
  for (uint64_t id : failed) {
    Transaction* t = find(id);
    if (t == nullptr || !isClientKind(t->kind_)) {
      continue;
    }
    auto& ct = static_cast<ClientTransaction&>(*t);
    const bool unanswered = ct.state_ == State::kCalling || ct.state_ == State::kTrying;
    if (!unanswered || ct.destination_.protocol != to.protocol ||
        ct.destination_.remote != to.remote) {
      continue;
    }
    ++stats_.transportErrors;
    terminate(ct);
    user_.onClientError(TransactionId{id}, TransactionError::kTransport);
  }
}

void TransactionLayer::forgetAwaitingConnection(const ClientTransaction& ct) {
  auto [it, end] = awaitingConnection_.equal_range(ct.connectionKey_);
  for (; it != end; ++it) {
    if (it->second == ct.id_.value) {
      awaitingConnection_.erase(it);
      return;
    }
  }
}

ClientTransaction* TransactionLayer::matchClient(std::string_view branch, sip::Method method,
                                                 std::string_view methodText) {
  auto [it, end] = clientIndex_.equal_range(hash64(branch));
  for (; it != end; ++it) {
    auto* ct = static_cast<ClientTransaction*>(find(it->second));
    if (ct != nullptr && ct->branch_ == branch && ct->method_ == method &&
        ct->methodText_ == methodText) {
      return ct;
    }
  }
  return nullptr;
}

void TransactionLayer::onResponse(const sip::Message& msg, const Source& source) {
  auto via = msg.topVia();
  auto cseq = msg.cseq();
  ClientTransaction* ct = nullptr;
  if (via && cseq && via->branch()) {
    ct = matchClient(*via->branch(), cseq->method, cseq->methodText);
  }
  if (ct == nullptr) {
    ++stats_.strayResponses;
    user_.onStrayResponse(msg, source);
    return;
  }
  clientResponse(*ct, msg);
}

void TransactionLayer::clientResponse(ClientTransaction& ct, const sip::Message& msg) {
  const int code = msg.statusCode();
  const TransactionId id = ct.id_;
  const bool active = ct.state_ == State::kCalling || ct.state_ == State::kTrying ||
                      ct.state_ == State::kProceeding;
  if (!active) {
    // Completed: a retransmitted final. An INVITE's non-2xx is acknowledged again (17.1.1.2).
    ++stats_.retransmissionsAbsorbed;
    if (ct.kind_ == Kind::kClientInvite && code >= 300 && !ct.ack_.empty()) {
      transmit(ct.destination_, ct.ack_);
    }
    return;
  }
  ct.lastStatus_ = code;
  if (code < 200) {
    ct.state_ = State::kProceeding;
    if (ct.kind_ == Kind::kClientInvite) {
      disarm(ct, TimerSlot::kRetransmit);  // no Timer A in Proceeding
      if (!ct.cancelSent_) {
        disarm(ct, TimerSlot::kTimeout);  // Timer B only runs in Calling
      }
      if (ct.cancelRequested_ && !ct.cancelSent_) {
        sendCancel(ct);
      }
    }
    user_.onResponse(id, msg);
    return;
  }
  disarm(ct, TimerSlot::kRetransmit);
  disarm(ct, TimerSlot::kTimeout);
  if (ct.kind_ == Kind::kClientInvite) {
    if (code < 300) {
      terminate(ct);  // 2xx: the ACK is end to end (17.1.1.2)
      user_.onResponse(id, msg);
      return;
    }
    ct.ack_ = buildAck(ct, msg);
    account(ct);
    const bool sent = transmit(ct.destination_, ct.ack_);
    ct.state_ = State::kCompleted;
    if (!sent || ct.reliable_) {
      terminate(ct);  // Timer D = 0 on reliable transports
    } else {
      arm(ct, TimerSlot::kLinger, settings_.timers.timerD);
    }
    user_.onResponse(id, msg);
    return;
  }
  ct.state_ = State::kCompleted;
  if (ct.reliable_) {
    terminate(ct);  // Timer K = 0
  } else {
    arm(ct, TimerSlot::kLinger, settings_.timers.t4);  // Timer K
  }
  user_.onResponse(id, msg);
}

std::string TransactionLayer::buildAck(const ClientTransaction& ct,
                                       const sip::Message& response) const {
  std::string out;
  auto invite = sip::Message::parse(ct.request_);
  if (!invite) {
    return out;
  }
  auto via = invite->topVia();
  auto cseq = invite->cseq();
  out.reserve(ct.request_.size());
  appendDerivedHead(out, "ACK", *invite, *via);
  // The To of the response: it carries the tag of the element that answered.
  appendAll(out, response, sip::HeaderId::kTo);
  out.append("CSeq: ").append(std::to_string(cseq->number)).append(" ACK\r\n");
  out.append("Content-Length: 0\r\n\r\n");
  return out;
}

bool TransactionLayer::sendCancel(ClientTransaction& invite) {
  auto msg = sip::Message::parse(invite.request_);
  if (!msg) {
    return false;
  }
  auto via = msg->topVia();
  auto cseq = msg->cseq();
  std::string out;
  out.reserve(invite.request_.size());
  appendDerivedHead(out, "CANCEL", *msg, *via);
  appendAll(out, *msg, sip::HeaderId::kTo);
  out.append("CSeq: ").append(std::to_string(cseq->number)).append(" CANCEL\r\n");
  out.append("Content-Length: 0\r\n\r\n");
  invite.cancelSent_ = true;
  // RFC 3261 9.1: an INVITE still unanswered 64*T1 after its CANCEL is given up.
  arm(invite, TimerSlot::kTimeout, 64 * settings_.timers.t1);
  return sendRequest(std::move(out), invite.destination_).has_value();
}

void TransactionLayer::cancel(TransactionId id) {
  Transaction* t = find(id.value);
  if (t == nullptr || t->kind_ != Kind::kClientInvite) {
    return;
  }
  auto& ct = static_cast<ClientTransaction&>(*t);
  if (ct.cancelRequested_ || ct.state_ == State::kCompleted) {
    return;
  }
  ct.cancelRequested_ = true;
  if (ct.state_ == State::kProceeding) {
    sendCancel(ct);
  }
}

// ---- timers ----

void TransactionLayer::arm(Transaction& t, TimerSlot slot, milliseconds after) {
  const TimePoint when = clock_.now() + after;
  t.deadlines_[slotIndex(slot)] = when;
  t.armed_[slotIndex(slot)] = true;
  timers_.push(TimerEntry{when, t.id_.value, slot});
}

void TransactionLayer::disarm(Transaction& t, TimerSlot slot) {
  // The heap entry stays; it is skipped when it comes due.
  t.armed_[slotIndex(slot)] = false;
}

TimePoint TransactionLayer::nextDeadline() const {
  return timers_.empty() ? TimePoint::max() : timers_.top().when;
}

void TransactionLayer::onTick(TimePoint now) {
  while (!timers_.empty() && timers_.top().when <= now) {
    const TimerEntry e = timers_.top();
    timers_.pop();
    Transaction* t = find(e.id);
    const size_t s = slotIndex(e.slot);
    if (t == nullptr || !t->armed_[s] || t->deadlines_[s] != e.when) {
      continue;  // disarmed, re-armed later, or the transaction is gone
    }
    t->armed_[s] = false;
    fire(*t, e.slot);
  }
}

void TransactionLayer::fire(Transaction& t, TimerSlot slot) {
  if (isClientKind(t.kind_)) {
    fireClient(static_cast<ClientTransaction&>(t), slot);
  } else {
    fireServer(static_cast<ServerTransaction&>(t), slot);
  }
}

void TransactionLayer::fireClient(ClientTransaction& ct, TimerSlot slot) {
  const TransactionId id = ct.id_;
  switch (slot) {
    case TimerSlot::kRetransmit: {
      if (!transmit(ct.destination_, ct.request_)) {
        terminate(ct);
        user_.onClientError(id, TransactionError::kTransport);
        return;
      }
      ++stats_.retransmissionsSent;
      if (ct.kind_ == Kind::kClientInvite) {
        ct.interval_ *= 2;  // Timer A doubles without a cap; Timer B ends it
      } else if (ct.state_ == State::kProceeding) {
        ct.interval_ = settings_.timers.t2;  // Timer E in Proceeding: every T2
      } else {
        ct.interval_ = std::min(2 * ct.interval_, settings_.timers.t2);
      }
      arm(ct, TimerSlot::kRetransmit, ct.interval_);
      return;
    }
    case TimerSlot::kTimeout:
      ++stats_.timeouts;
      terminate(ct);
      user_.onClientError(id, TransactionError::kTimeout);
      return;
    case TimerSlot::kLinger:
      terminate(ct);
      return;
    case TimerSlot::kCount:
      break;
  }
}

void TransactionLayer::fireServer(ServerTransaction& st, TimerSlot slot) {
  const TransactionId id = st.id_;
  switch (slot) {
    case TimerSlot::kRetransmit:  // Timer G
      if (!transmit(st.responseTo_, st.lastResponse_)) {
        terminate(st);
        user_.onServerError(id, TransactionError::kTransport);
        return;
      }
      ++stats_.retransmissionsSent;
      st.interval_ = std::min(2 * st.interval_, settings_.timers.t2);
      arm(st, TimerSlot::kRetransmit, st.interval_);
      return;
    case TimerSlot::kTimeout:  // Timer H: the ACK never came
      ++stats_.timeouts;
      terminate(st);
      user_.onServerError(id, TransactionError::kTimeout);
      return;
    case TimerSlot::kLinger:  // Timer I / J
      terminate(st);
      return;
    case TimerSlot::kCount:
      break;
  }
}

void TransactionLayer::terminate(Transaction& t) {
  t.state_ = State::kTerminated;
  const bool isClient = isClientKind(t.kind_);
  auto& index = isClient ? clientIndex_ : serverIndex_;
  auto [it, end] = index.equal_range(t.indexKey_);
  for (; it != end; ++it) {
    if (it->second == t.id_.value) {
      index.erase(it);
      break;
    }
  }
  if (isClient && static_cast<ClientTransaction&>(t).connectionKey_ != 0) {
    forgetAwaitingConnection(static_cast<ClientTransaction&>(t));
  }
  (isClient ? clientCount_ : serverCount_)--;
  bytes_ -= t.accounted_;
  byId_.erase(t.id_.value);  // destroys t
}

}  // namespace evosip::transaction
