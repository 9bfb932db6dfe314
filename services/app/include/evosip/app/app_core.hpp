#pragma once
// The app's user agent for ONE worker (docs/architecture.md "app"): the UA core on top of the
// RFC 3261 transaction layer (a TransactionUser), the calls whose Call-ID hashes to this
// worker, their RTP sockets (from this worker's own port sub-range), the pacing of all of them
// on one schedule (PacingGrid) and the applications (Playback, Voicemail, Echo, Menu, Hangup).
// Everything runs on the worker's thread, except the paced sends themselves: the worker
// prepares each tick's packets 6-10 ms ahead and its PacedSender thread sends them when due.
// Counters are relaxed atomics read by the metrics scrape.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <evosip/app/call_request.hpp>
#include <evosip/app/paced_sender.hpp>
#include <evosip/app/pacing.hpp>
#include <evosip/app/prompts.hpp>
#include <evosip/app/sweep.hpp>
#include <evosip/app/voicemail.hpp>
#include <evosip/rtp/pacer.hpp>
#include <evosip/rtp/port_allocator.hpp>
#include <evosip/runtime/clock.hpp>
#include <evosip/transaction/transaction_layer.hpp>

namespace evosip::app {

struct AppSettings {
  std::string soundsDir = "sounds";
  std::string voicemailDir = "voicemail";
  std::string rtpAddress = "127.0.0.1";  // bound and advertised in SDP
  std::chrono::seconds rtpTimeout{30};   // no RTP while the app needs input: hang up
  // An answered call whose peer has sent nothing at all (no RTP, no RTCP) this long after the
  // answer (or after a re-INVITE moved its address) is hung up: the app does not stream to an
  // address that never answers (a victim named in someone else's SDP). Early media (183) is not
  // counted: phones send no RTP before they are answered. 0: never.
  std::chrono::seconds rtpPeerTimeout{5};
  std::chrono::seconds maxCall{3600};  // any call, answered or not
  std::chrono::seconds voicemailMax{120};
  std::chrono::seconds voicemailSilence{5};  // 0: no silence detection
  VoicemailQuota voicemailQuota;
  std::chrono::milliseconds interDigit{2000};
  // Our SIP address: Via sent-by of the BYEs we send, and the Contact of our dialogs.
  std::string viaHost = "127.0.0.1";
  uint16_t viaPort = 5080;
  // Paced sends of a tick in one io_uring submission (when liburing and the kernel allow it).
  bool ioUring = true;
  // SCHED_FIFO priority of the pacing threads (PacedSender); 0: normal scheduling.
  int realtimePriority = 0;
  // true: each worker's paced ticks are sent by its pacing thread, on the steady clock. false:
  // onTick() prepares and sends the ticks that are due on the core's clock (no thread, no
  // timer: a manual clock drives every packet).
  bool pacingThread = true;
  transaction::LayerSettings layer;
};

inline constexpr size_t kActionCount = 7;  // Action values

// Per-worker totals; written by the worker (or a blocking thread for recordings), read at
// scrape time.
struct AppCounters {
  std::array<std::atomic<uint64_t>, kActionCount> calls{};  // INVITEs that started a call
  std::atomic<int64_t> active{0};
  std::atomic<uint64_t> rtpSent{0}, rtpReceived{0}, rtpSendErrors{0}, rtcpReceived{0};
  std::atomic<uint64_t> dtmfDigits{0}, redirects{0}, rtpTimeouts{0}, maxDurationEnds{0};
  std::atomic<uint64_t> recordingsWritten{0}, recordingsFailed{0}, recordingsOverQuota{0};
  std::atomic<uint64_t> mailboxFull{0};  // Voicemail INVITEs refused before recording (486)
  std::atomic<uint64_t> rejected{0};     // INVITEs answered with an error before any media
  std::atomic<uint64_t> byesSent{0}, byesReceived{0}, cancelled{0};
  // Pacing: packets prepared for the sender, ticks dropped (the lateness of the sends is in the
  // PacedSender's stats).
  std::atomic<uint64_t> pacedPackets{0}, skippedTicks{0};
  std::atomic<uint64_t> serverTransactions{0}, clientTransactions{0};

  static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// Shared by every worker.
struct AppShared {
  AppSettings settings;
  PromptCache* prompts = nullptr;
  std::function<void(std::function<void()>)> runBlocking;
  std::atomic<bool> draining{false};
  std::atomic<int64_t> calls{0};  // all workers
  // What app.voicemail_dir holds (every mailbox): counted at start and every minute on the
  // blocking pool, and added to by every message stored in between.
  std::atomic<uint64_t> voicemailMessages{0}, voicemailBytes{0};
  std::atomic<bool> voicemailCounting{false};
};

class AppCore final : public transaction::TransactionUser {
 public:
  using SendFn = transaction::TransactionLayer::SendFn;

  // `ports`: this worker's share of app.rtp_port_min..max (rtp::splitPortRange); every time
  // the core reads (timers, deadlines, pacing) comes from `clock`.
  AppCore(AppShared& shared, boost::asio::io_context& io, size_t worker, rtp::PortRange ports,
          SendFn send, const runtime::Clock& clock);
  ~AppCore() override;
  AppCore(const AppCore&) = delete;
  AppCore& operator=(const AppCore&) = delete;

  void onMessage(const sip::Message& msg, const transport::Source& source) {
    layer_.onMessage(msg, source);
  }
  // Every 10 ms: transaction timers, 2xx retransmissions and a tenth of the calls' deadlines
  // (each call's every 100 ms); every second the pacing figures. Without the pacing thread
  // (AppSettings::pacingThread) also the paced sends that are due.
  void onTick();
  // Ends every call without signalling and closes the sockets (shutdown, on the worker).
  void closeAll();

  const AppCounters& counters() const { return counters_; }
  size_t calls() const { return calls_.size(); }
  // True when paced sends go through io_uring.
  bool batchedSends() const { return sender_->batched(); }
  // The pacing thread's figures: packets sent and failed, lateness behind the schedule.
  const PacedSender::Stats& pacingStats() const { return sender_->stats(); }

  // transaction::TransactionUser
  void onRequest(transaction::TransactionId server, const sip::Message& request,
                 const transport::Source& source) override;
  void onCancel(transaction::TransactionId invite, const sip::Message& cancel) override;
  void onAck(const sip::Message& ack, const transport::Source& source) override;
  void onResponse(transaction::TransactionId client, const sip::Message& response) override;
  void onStrayResponse(const sip::Message& response, const transport::Source& source) override;
  void onClientError(transaction::TransactionId client,
                     transaction::TransactionError error) override;
  void onServerError(transaction::TransactionId server,
                     transaction::TransactionError error) override;

  struct Call;

 private:
  using CallPtr = std::shared_ptr<Call>;
  using TimePoint = runtime::Clock::time_point;
  // Why a call ends (its log line; a shutdown also stores a recording inline).
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
    kShutdown,  // closeAll(): no signalling, the blocking pool may be gone
  };
  static std::string_view endReasonName(EndReason why);

  // SIP
  void newInvite(transaction::TransactionId id, const sip::Message& req,
                 const transport::Source& src);
  void reInvite(Call& call, transaction::TransactionId id, const sip::Message& req);
  void onBye(transaction::TransactionId id, const sip::Message& req);
  Call* findDialog(const sip::Message& req);
  void reject(transaction::TransactionId id, int code, std::string_view reason);
  // Sends a response with our SDP (183 / 200) to the call's INVITE; returns the bytes.
  std::string respondWithSdp(Call& call, transaction::TransactionId id, const sip::Message& req,
                             int code, std::string_view reason);
  void answer(Call& call);
  void sendFinal(Call& call, int code, std::string_view reason, std::string_view extra = {});
  void sendBye(Call& call);
  // Hangs up by whatever the call's state allows: a final response before the answer, a BYE
  // after it (once the ACK came), then ends the call.
  void hangup(Call& call, int earlyCode, std::string_view earlyReason);
  void endCall(Call& call, EndReason why);

  // Applications
  void loadPrompts(const CallPtr& call);
  void start(Call& call);
  void onPromptsDone(Call& call);
  void onPromptDone(Call& call);
  void resend2xx(Call& call);
  void onDigit(Call& call, char digit);
  void menuInvalid(Call& call, bool timeout);
  void menuRedirect(Call& call, const std::string& target);
  void checkDeadline(Call& call, TimePoint now);
  // Voicemail: how long a message the mailbox still has room for (blocking pool), then
  // onPromptsDone. A full mailbox is refused before any media.
  void checkMailbox(const CallPtr& call);
  void storeMessage(Call& call, bool now);
  // Every minute (worker 0): counts what app.voicemail_dir holds, on the blocking pool.
  void countVoicemail();

  // Media
  Result<void> openMedia(Call& call);
  void armRead(const CallPtr& call);
  void onReadable(Call& call);
  void onRtp(Call& call, std::span<const uint8_t> datagram);
  void setDestination(Call& call);
  void startSending(Call& call);
  void stopSending(Call& call);
  void play(Call& call, PromptPtr prompt);
  void armPacing();
  void onPacing();
  void paceSlot(const PacingGrid::Tick& tick);
  // What waited for the sender to pass a tick: prompts that ended (reported once their last
  // packet is out), sockets of ended calls (closed once nothing queued can use them).
  void reapSent();
  // paced: into that prepared tick (sent by the pacing thread when due); else sent now.
  void sendFrame(Call& call, std::span<const uint8_t> payload, uint32_t samples,
                 PacedSender::Tick* paced = nullptr);

  AppShared& shared_;
  const AppSettings& settings_;
  boost::asio::io_context& io_;
  size_t worker_;
  SendFn send_;
  const runtime::Clock& clock_;
  transaction::TransactionLayer layer_;
  AppCounters counters_;
  std::unordered_map<std::string, CallPtr> calls_;  // by Call-ID
  std::unordered_map<uint64_t, Call*> byInvite_;    // INVITE server transaction -> call
  std::unordered_set<Call*> awaitingAck_;           // 2xx being retransmitted
  // Every call once more, for the deadline sweep: a tenth of them each 10 ms tick.
  std::vector<CallPtr> roster_;
  RoundRobinSweep sweep_{10};
  std::vector<CallPtr> sweepShare_;  // this tick's share (kept: no allocation per tick)
  std::string contact_;              // "Contact: <sip:app@host:port>\r\n"
  bool ipv6_ = false;

  rtp::PortAllocator ports_;  // RTP ports; RTCP (+1) is never bound

  // Pacing
  PacingGrid grid_;
  std::vector<std::vector<Call*>> slots_;
  boost::asio::steady_timer paceTimer_;
  bool paceArmed_ = false;
  std::unique_ptr<PacedSender> sender_;
  struct PendingDone {
    CallPtr call;
    uint64_t sentBelow;  // reported once the sender has sent every tick below this
  };
  std::vector<PendingDone> pendingDone_;
  struct Closing {
    int fd;
    uint16_t port;
    uint64_t sentBelow;
  };
  std::vector<Closing> closing_;

  uint64_t ticks_ = 0;
  std::array<uint8_t, 2048> packet_{};
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

}  // namespace evosip::app
