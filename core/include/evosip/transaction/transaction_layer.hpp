#pragma once
// The transactions of ONE worker (RFC 3261 17): single-threaded, no locks, no sockets. The
// wiring layer feeds it parsed messages (onMessage), gives it a send callback, and drives its
// timers from an asio timer (onTick at nextDeadline()); tests drive them with a ManualClock.
//
// Matching (17.1.3, 17.2.3): by the top Via branch + sent-by + method (an ACK matches its
// INVITE, a CANCEL has its own transaction), or, for an RFC 2543 peer (no magic cookie), by
// Request-URI, From tag, To tag, Call-ID, CSeq number and the whole top Via. The index is a
// hash map keyed by a hash of the branch (of Call-ID and CSeq for RFC 2543 requests).
//
// What the layer does on its own, without asking its user (the TU):
// - absorbs retransmitted requests (resending the last response) and retransmitted finals;
// - acknowledges non-2xx finals to INVITEs it sent (hop-by-hop ACK) and absorbs the ACKs of
//   the non-2xx finals it sent;
// - answers a CANCEL that matches an INVITE server transaction with 200 and tells the TU;
// - answers 503 to a new request when it holds maxServerTransactions, or when the bytes its
//   transactions hold reach maxTransactionBytes (a flood of requests that never complete must
//   not grow the process without bound).

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <evosip/base/result.hpp>
#include <evosip/sip/message.hpp>
#include <evosip/transaction/transaction.hpp>

namespace evosip::transaction {

struct LayerSettings {
  TimerSettings timers;
  size_t maxServerTransactions = 50000;
  size_t maxClientTransactions = 100000;
  // Bytes held by all transactions (their copies of requests and responses plus a fixed cost
  // per transaction) beyond which new requests get 503. Client transactions are refused at
  // twice this: they only start for requests already admitted.
  size_t maxTransactionBytes = 256u << 20;
  // Mixed into the branches this layer makes, so that two instances (and two workers) never
  // make the same one: the wiring layer passes a per-instance, per-worker value.
  uint64_t branchSeed = 0;
  // >= 0: written into every branch this layer makes ("...w<N>t"), so that a response that
  // reaches another worker of the same process can be handed to this one (workerOfBranch).
  int32_t branchWorker = -1;
};

// The transaction user (RFC 3261 17: the UA core or proxy core above the layer). Called on the
// worker thread, from onMessage, onTick or a layer call; it may call back into the layer.
class TransactionUser {
 public:
  virtual ~TransactionUser() = default;
  // A new request created server transaction `server` (not for an ACK; for a CANCEL only when
  // no INVITE transaction matched it). The TU answers with TransactionLayer::respond.
  virtual void onRequest(TransactionId server, const sip::Message& request,
                         const Source& source) = 0;
  // A CANCEL matched INVITE server transaction `invite`, which has not sent a final response
  // yet. The layer has answered the CANCEL with 200; the TU should answer the INVITE (487).
  virtual void onCancel(TransactionId invite, const sip::Message& cancel) = 0;
  // An ACK that matched no transaction: the ACK of a 2xx (end to end, RFC 3261 17.1.1.3).
  virtual void onAck(const sip::Message& ack, const Source& source) = 0;
  // A response to client transaction `client` (provisional or final, not a retransmission).
  virtual void onResponse(TransactionId client, const sip::Message& response) = 0;
  // A response that matched no client transaction (e.g. a retransmitted 2xx to an INVITE).
  virtual void onStrayResponse(const sip::Message& response, const Source& source) = 0;
  // A client transaction failed: timeout (act as for a 408) or transport error (503).
  virtual void onClientError(TransactionId client, TransactionError error) = 0;
  // A server transaction failed: no ACK before Timer H, or a response could not be sent.
  virtual void onServerError(TransactionId server, TransactionError error) = 0;
};

struct LayerStats {
  uint64_t serverCreated = 0, clientCreated = 0, retransmissionsAbsorbed = 0,
           retransmissionsSent = 0, timeouts = 0, transportErrors = 0, rejectedFull = 0,
           strayResponses = 0;
};

class TransactionLayer {
 public:
  using SendFn = std::function<bool(const Destination&, std::string_view)>;

  TransactionLayer(LayerSettings settings, const runtime::Clock& clock, SendFn send,
                   TransactionUser& user);
  ~TransactionLayer();
  TransactionLayer(const TransactionLayer&) = delete;
  TransactionLayer& operator=(const TransactionLayer&) = delete;

  // Entry point for every message received by this worker.
  void onMessage(const sip::Message& msg, const Source& source);

  // Server side. `response` is a complete response to the transaction's request; it is copied
  // when it may have to be resent. False when the id is unknown, the transaction has already
  // sent a final response, or the transport refused it (the TU is also told, onServerError).
  bool respond(TransactionId server, std::string_view response);
  // Builds the response from the stored request (RFC 3261 8.2.6), with the transaction's local
  // To tag (except on 100), and sends it. extraHeaders: complete lines ending with CRLF.
  bool respond(TransactionId server, int code, std::string_view reason = {},
               std::string_view extraHeaders = {});
  // A final response (>= 300) for a source that has proven nothing (a challenge, a refusal
  // before authentication), built as respond() builds it and sent ONCE: never retransmitted
  // (no Timer G), so a spoofed source gets at most one response per request it was sent. The
  // transaction then only lingers T4 without its request copy, to answer a retransmission of
  // the request with the same response (one for one) and to absorb the ACK of an INVITE's
  // response, which the TU never sees; on reliable transports a non-INVITE ends at once.
  bool respondOnce(TransactionId server, int code, std::string_view reason = {},
                   std::string_view extraHeaders = {});
  // Ends a server transaction without a response (RFC 4320: no 408 to a non-INVITE).
  void abandon(TransactionId server);

  // Client side. `request` carries its top Via, with a branch from newBranch(); it is copied
  // and sent. Errors: kParse (not a request, no Via branch, no CSeq), kTooLarge (at
  // maxClientTransactions), kIo (the transport refused it at once).
  Result<TransactionId> sendRequest(std::string request, const Destination& to);
  // The transport could not open the stream connection to `to` (a connect refused or timed
  // out) after it accepted requests for it: every client transaction sent to that address
  // without a connection that has had no response fails with kTransport (onClientError), at
  // once rather than at Timer B / F.
  void onTransportFailure(const Destination& to);
  // True when a CANCEL matches one of this layer's INVITE server transactions, or any request
  // one of its server transactions (a retransmission).
  bool knowsRequest(const sip::Message& request);
  // The worker written into a branch by a layer with LayerSettings::branchWorker (nullopt for
  // any other branch).
  static std::optional<size_t> workerOfBranch(std::string_view branch);
  // Cancels an INVITE client transaction (RFC 3261 9.1): the CANCEL goes out now if a
  // provisional was received, at the first provisional otherwise, never after a final. After
  // the CANCEL, an INVITE still unanswered after 64*T1 ends with kTimeout.
  void cancel(TransactionId inviteClient);
  // A unique RFC 3261 branch ("z9hG4bK" + 16 hex digits + "t"); with `loop`, its 8 hex digits
  // follow an "l" (RFC 3261 16.6 item 8: the loop-detection part, see loopOfBranch).
  std::string newBranch(std::optional<uint32_t> loop = std::nullopt);
  // The loop-detection part of a branch this kind of layer made with one.
  static std::optional<uint32_t> loopOfBranch(std::string_view branch);

  // Timers: fire everything due at `now`; nextDeadline() is the earliest armed deadline
  // (TimePoint::max() when none).
  void onTick(TimePoint now);
  TimePoint nextDeadline() const;

  const ServerTransaction* server(TransactionId id) const;
  const ClientTransaction* client(TransactionId id) const;
  size_t serverCount() const { return serverCount_; }
  size_t clientCount() const { return clientCount_; }
  // Bytes held by every transaction (see LayerSettings::maxTransactionBytes).
  size_t bytes() const { return bytes_; }
  const LayerStats& stats() const { return stats_; }
  const LayerSettings& settings() const { return settings_; }
  const runtime::Clock& clock() const { return clock_; }

 private:
  struct TimerEntry {
    TimePoint when;
    uint64_t id;
    TimerSlot slot;
    bool operator>(const TimerEntry& o) const { return when > o.when; }
  };

  void onRequest(const sip::Message& msg, const Source& source);
  void onResponse(const sip::Message& msg, const Source& source);
  ServerTransaction* matchServer(const sip::Message& msg, const sip::Via& via, bool forCancel);
  ClientTransaction* matchClient(std::string_view branch, sip::Method method,
                                 std::string_view methodText);
  void retransmitted(ServerTransaction& st);
  void receivedAck(ServerTransaction& st);
  void receivedCancel(ServerTransaction& invite, const sip::Message& cancel, const Source& src);
  ServerTransaction* createServer(const sip::Message& msg, const sip::Via& via,
                                  const Source& source);
  void rejectFull(const sip::Message& msg, const Source& source);
  void clientResponse(ClientTransaction& ct, const sip::Message& msg);
  bool sendCancel(ClientTransaction& invite);
  std::string buildAck(const ClientTransaction& ct, const sip::Message& response) const;

  void arm(Transaction& t, TimerSlot slot, std::chrono::milliseconds after);
  void disarm(Transaction& t, TimerSlot slot);
  void fire(Transaction& t, TimerSlot slot);
  void fireClient(ClientTransaction& ct, TimerSlot slot);
  void fireServer(ServerTransaction& st, TimerSlot slot);
  // Moves to kTerminated and frees the transaction (the object is gone after this call).
  void terminate(Transaction& t);
  void forgetAwaitingConnection(const ClientTransaction& ct);
  bool transmit(const Destination& to, std::string_view bytes);
  // Recounts the bytes `t` holds into bytes_ after its copies changed.
  void account(Transaction& t);
  Transaction* find(uint64_t id) const;

  LayerSettings settings_;
  const runtime::Clock& clock_;
  SendFn send_;
  TransactionUser& user_;
  uint64_t nextId_ = 1;
  uint64_t branchCounter_ = 0;
  size_t serverCount_ = 0;
  size_t clientCount_ = 0;
  size_t bytes_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<Transaction>> byId_;
  // Hash of the branch (or of Call-ID + CSeq for RFC 2543) -> transaction id.
  std::unordered_multimap<uint64_t, uint64_t> serverIndex_;
  std::unordered_multimap<uint64_t, uint64_t> clientIndex_;
  // Hash of the remote address -> client transactions sent over a stream transport without a
  // connection (the transport may be opening one for them: onTransportFailure).
  std::unordered_multimap<uint64_t, uint64_t> awaitingConnection_;
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> timers_;
  std::string scratch_;  // locally built responses
  LayerStats stats_;
};

}  // namespace evosip::transaction
