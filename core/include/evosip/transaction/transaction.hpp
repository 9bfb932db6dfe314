#pragma once
// RFC 3261 section 17 transactions: the four state machines (client/server, INVITE/non-INVITE),
// their timers and the keys they are matched by. A transaction is driven by the
// TransactionLayer of one worker; this header holds what the layer and its user share.
//
// Transactions keep copies of what they may retransmit (the request of a client transaction,
// the last response of a server transaction): they outlive the receive buffer.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <evosip/runtime/clock.hpp>
#include <evosip/sip/method.hpp>
#include <evosip/transport/sip_transport.hpp>

namespace evosip::transaction {

using transport::Destination;
using transport::Source;
using TimePoint = runtime::Clock::time_point;

// RFC 3261 timer values (17.1.1.1, table 4). Timers A, E, G retransmit on unreliable
// transports only; D, I, J, K are 0 on reliable transports.
struct TimerSettings {
  std::chrono::milliseconds t1{500};
  std::chrono::milliseconds t2{4000};
  std::chrono::milliseconds t4{5000};
  std::chrono::milliseconds timerD{32000};  // >= 32 s on unreliable transports
};

// Which state machine (17.1.1, 17.1.2, 17.2.1, 17.2.2).
enum class Kind : uint8_t { kClientInvite, kClientNonInvite, kServerInvite, kServerNonInvite };

// States of all four machines. kCalling for client INVITE, kTrying for the non-INVITE ones,
// kConfirmed for server INVITE only.
enum class State : uint8_t { kCalling, kTrying, kProceeding, kCompleted, kConfirmed, kTerminated };

std::string_view stateName(State s);

enum class TransactionError : uint8_t {
  kTimeout,    // Timer B / F (client), Timer H (server: no ACK), CANCELled INVITE never answered
  kTransport,  // the send callback refused the message
};

// A handle that stays safe after the transaction is gone (the layer ignores unknown ids).
struct TransactionId {
  uint64_t value = 0;
  bool valid() const { return value != 0; }
  bool operator==(const TransactionId&) const = default;
};

// Timer slots of one transaction: at most three run at once.
enum class TimerSlot : uint8_t {
  kRetransmit,  // A (client INVITE), E (client non-INVITE), G (server INVITE)
  kTimeout,     // B, F, H; also the 64*T1 wait after a CANCEL (RFC 3261 9.1)
  kLinger,      // D, K (client), I, J (server): absorb retransmissions, then terminate
  kCount,
};

// What a transaction costs in the layer's tables beyond the object: its node in the id map and
// the index, its timer entries, the allocator's headers.
inline constexpr size_t kTableCost = 160;

// What client and server transactions have in common.
class Transaction {
 public:
  // The layer owns client and server transactions through this base.
  virtual ~Transaction() = default;

  TransactionId id() const { return id_; }
  // The memory it holds: its copies of messages, plus what it costs in the layer's tables.
  virtual size_t bytes() const = 0;
  Kind kind() const { return kind_; }
  State state() const { return state_; }
  bool isInvite() const { return kind_ == Kind::kClientInvite || kind_ == Kind::kServerInvite; }
  bool reliable() const { return reliable_; }
  sip::Method method() const { return method_; }
  std::string_view branch() const { return branch_; }
  std::string_view callId() const { return callId_; }

 protected:
  friend class TransactionLayer;
  TransactionId id_;
  Kind kind_ = Kind::kClientNonInvite;
  State state_ = State::kTrying;
  bool reliable_ = false;
  sip::Method method_ = sip::Method::kOther;
  std::string methodText_;
  std::string branch_;  // top Via branch (may be empty for an RFC 2543 peer)
  std::string callId_;
  uint64_t indexKey_ = 0;                  // key in the layer's index
  size_t accounted_ = 0;                   // bytes counted for it in the layer's total
  std::chrono::milliseconds interval_{0};  // current retransmission interval (A, E, G)
  TimePoint deadlines_[static_cast<size_t>(TimerSlot::kCount)] = {};
  bool armed_[static_cast<size_t>(TimerSlot::kCount)] = {};
};

// 17.1: sends a request, retransmits it (A, E), times out (B, F), acknowledges non-2xx finals
// of an INVITE itself (hop-by-hop ACK), absorbs retransmitted finals (D, K).
class ClientTransaction : public Transaction {
 public:
  size_t bytes() const override {
    return sizeof(*this) + kTableCost + request_.capacity() + ack_.capacity() +
           methodText_.capacity() + branch_.capacity() + callId_.capacity();
  }
  const Destination& destination() const { return destination_; }
  std::string_view request() const { return request_; }
  // Status of the last response received (0 = none).
  int lastStatus() const { return lastStatus_; }

 private:
  friend class TransactionLayer;
  Destination destination_;
  std::string request_;  // retransmitted as is
  std::string ack_;      // the ACK for a non-2xx final, resent on its retransmissions
  int lastStatus_ = 0;
  bool cancelRequested_ = false;  // CANCEL waits for a provisional (RFC 3261 9.1)
  bool cancelSent_ = false;
  uint64_t connectionKey_ = 0;  // its key in the layer's awaitingConnection_ (0: not there)
};

// 17.2: receives a request, absorbs its retransmissions by resending the last response,
// retransmits an INVITE's non-2xx final until the ACK (G, H), absorbs ACKs (I) and late
// retransmissions (J).
class ServerTransaction : public Transaction {
 public:
  size_t bytes() const override {
    return sizeof(*this) + kTableCost + request_.capacity() + lastResponse_.capacity() +
           methodText_.capacity() + branch_.capacity() + callId_.capacity() + localTag_.capacity() +
           sentByHost_.capacity() + requestUri_.capacity() + fromTag_.capacity() +
           toTag_.capacity() + responseToTag_.capacity() + topVia_.capacity();
  }
  const Source& source() const { return source_; }
  // Where responses go (RFC 3261 18.2.2, RFC 3581): the connection, or the source address
  // with the sent-by port unless rport was asked for.
  const Destination& responseDestination() const { return responseTo_; }
  std::string_view request() const { return request_; }
  std::string_view lastResponse() const { return lastResponse_; }
  int lastStatus() const { return lastStatus_; }
  // The To tag this transaction puts on the responses it builds itself.
  std::string_view localTag() const { return localTag_; }

 private:
  friend class TransactionLayer;
  Source source_;
  Destination responseTo_;
  std::string request_;
  std::string lastResponse_;
  int lastStatus_ = 0;
  std::string localTag_;
  // Matching keys (RFC 3261 17.2.3): sent-by for RFC 3261 branches, and the RFC 2543 set.
  std::string sentByHost_;
  uint16_t sentByPort_ = 0;
  bool rfc3261_ = true;
  std::string requestUri_;
  std::string fromTag_;
  std::string toTag_;          // of the request
  std::string responseToTag_;  // of the last response sent (an RFC 2543 ACK carries it)
  std::string topVia_;
  uint32_t cseq_ = 0;
};

}  // namespace evosip::transaction
