#pragma once
// One call of the app, owned by the worker its Call-ID hashes to (AppCore): the SIP dialog and
// our INVITE's response, the media session, what is being played, the application that runs
// (CallAction) and the call's deadlines.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/app/call_request.hpp>
#include <evosip/app/media_session.hpp>
#include <evosip/app/prompts.hpp>
#include <evosip/app/uas_dialog.hpp>
#include <evosip/rtp/telephone_event.hpp>
#include <evosip/runtime/clock.hpp>
#include <evosip/transaction/transaction.hpp>

namespace evosip::app {

class CallAction;

// Why a call ends: its log line, and whether a recording is stored at once (shutdown).
enum class EndReason : uint8_t {
  kBye,             // the caller's BYE
  kCancel,          // the caller's CANCEL
  kHangup,          // the application's end (final response or BYE)
  kPlayed,          // a noanswer Playback ended with its final status
  kRedirected,      // a Menu's 302
  kSoundNotFound,   // 404 before any media
  kMailboxFull,     // 486 before any media
  kNoAck,           // our 2xx was never acknowledged: BYE
  kTransportError,  // the INVITE's response could not be sent
  kTransactionGone,
  kShutdown,      // AppCore::closeAll(): no signalling, and the blocking pool may be gone
  kTakenOver,     // a peer app holds the call now (app.state): no signalling, its record kept
  kResumeFailed,  // taken over, and the caller refused or never answered our re-INVITE
};
std::string_view endReasonName(EndReason why);

// Where the call is for the core: loading what its application needs, running it, or hanging
// up (our BYE waits for the ACK of our 2xx).
enum class CallState : uint8_t { kLoading, kRunning, kEnding };

// What the playout sends the call: the prompt being played, what follows it, and the call's
// place in the pacing schedule.
struct PlayoutState {
  PromptPtr playing;
  size_t position = 0;
  std::vector<PromptPtr> queue;
  bool sending = false;  // has a slot in the grid
  uint32_t slot = 0;
  size_t slotPos = 0;
  uint64_t nextCycle = 0;
};

struct Call : std::enable_shared_from_this<Call> {
  using TimePoint = runtime::Clock::time_point;

  explicit Call(boost::asio::io_context& io);
  ~Call();

  CallRequest request;
  CallState state = CallState::kLoading;
  bool closed = false;  // ended: nothing may touch its socket or dialog any more

  // SIP
  UasDialog dialog;
  transaction::TransactionId inviteTx;  // the INVITE transaction, until its final response
  bool finalSent = false;
  bool earlyMedia = false;   // 183 and no answer (noanswer Playback, Menu)
  bool byeAfterAck = false;  // hung up while our 2xx waits for its ACK
  OkRetransmission ok;
  uint64_t sdpVersion = 1;
  uint64_t sessionId = 0;
  std::string remoteSdp;  // the caller's last offer or answer (app.state)

  // app.state: the call is in the store; taken over from a stored record (our re-INVITE to the
  // caller, its CSeq, and the ACK of its 2xx for the 2xx's retransmissions); when the
  // application started (Unix ms: where its prompt is).
  bool stored = false;
  bool resumed = false;
  transaction::TransactionId reInviteTx;
  uint32_t reInviteCseq = 0;
  std::string reInviteAck;
  transport::Endpoint reInviteAckTo;
  int64_t startedMs = 0;

  // Media
  MediaSession media;
  PlayoutState playout;
  rtp::DtmfReceiver dtmf;

  // The application, and what it waits for before it starts.
  std::unique_ptr<CallAction> app;
  int loading = 0;
  std::string loadError;

  // Time
  TimePoint created{}, lastRtp{}, deadline = TimePoint::max();
  TimePoint peerSince = TimePoint::max();  // answered (or moved): the peer must send from here
  size_t rosterPos = 0;
};
using CallPtr = std::shared_ptr<Call>;

}  // namespace evosip::app
