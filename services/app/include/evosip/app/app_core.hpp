#pragma once
// The app's user agent for ONE worker (docs/architecture.md "app"): the UA core on top of the
// RFC 3261 transaction layer (a TransactionUser) for the calls whose Call-ID hashes to this
// worker. A request goes through a chain of steps read top to bottom (newInvite); each call has
// its dialog (uas_dialog.hpp), its media session on a port of this worker's own range
// (media_session.hpp), its application (call_action.hpp: Playback, Voicemail, Echo, Menu) and
// its place in the worker's playout (playout.hpp). Everything runs on the worker's thread,
// except the paced sends themselves (the worker's PacingThread). Counters are relaxed atomics
// read by the metrics scrape.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <evosip/app/call.hpp>
#include <evosip/app/call_action.hpp>
#include <evosip/app/call_record.hpp>
#include <evosip/app/call_request.hpp>
#include <evosip/app/playout.hpp>
#include <evosip/app/prompts.hpp>
#include <evosip/app/sweep.hpp>
#include <evosip/app/voicemail.hpp>
#include <evosip/metrics/stats.hpp>
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
  // SCHED_FIFO priority of the pacing threads (PacingThread); 0: normal scheduling.
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
// Every statistic of an app worker, declared once: the fields below and their /metrics
// exposition (metrics/stats.hpp). Packets sent and send errors are exposed with the pacing
// threads' own (AppService). mailboxFull: Voicemail INVITEs refused before recording (486);
// rejected: INVITEs answered with an error before any media; pacedPackets / skippedTicks: packets
// prepared for the sender and ticks dropped (the lateness of the sends is in the PacedSender's
// stats).
#define EVOSIP_APP_STATS(COUNTER, GAUGE, COUNTER_ARRAY)                                     \
  COUNTER_ARRAY(calls, kActionCount, "evosip_app_calls_total",                              \
                "INVITEs that started an application, by action", "action", actionLabel)    \
  GAUGE(active, "evosip_app_calls_active", "Calls in progress", "")                         \
  COUNTER(rtpReceived, "evosip_app_rtp_packets_total",                                      \
          "RTP packets sent and received (RTCP counted apart)", "direction=received")       \
  COUNTER(rtcpReceived, "evosip_app_rtp_packets_total", "", "direction=received_rtcp")      \
  COUNTER(recordingsWritten, "evosip_app_recordings_total",                                 \
          "Voicemail recordings stored (or failed)", "result=written")                      \
  COUNTER(recordingsFailed, "evosip_app_recordings_total", "", "result=failed")             \
  COUNTER(recordingsOverQuota, "evosip_app_recordings_total", "", "result=over_quota")      \
  COUNTER(rejected, "evosip_app_events_total",                                              \
          "Call events: rejected INVITEs, BYEs, CANCELs, DTMF digits, redirects, timeouts", \
          "event=rejected")                                                                 \
  COUNTER(byesSent, "evosip_app_events_total", "", "event=bye_sent")                        \
  COUNTER(byesReceived, "evosip_app_events_total", "", "event=bye_received")                \
  COUNTER(cancelled, "evosip_app_events_total", "", "event=cancelled")                      \
  COUNTER(dtmfDigits, "evosip_app_events_total", "", "event=dtmf_digit")                    \
  COUNTER(redirects, "evosip_app_events_total", "", "event=redirect")                       \
  COUNTER(rtpTimeouts, "evosip_app_events_total", "", "event=rtp_timeout")                  \
  COUNTER(maxDurationEnds, "evosip_app_events_total", "", "event=max_duration")             \
  COUNTER(mailboxFull, "evosip_app_events_total", "", "event=mailbox_full")                 \
  COUNTER(resumed, "evosip_app_events_total", "", "event=resumed")                          \
  COUNTER(resumeFailed, "evosip_app_events_total", "", "event=resume_failed")               \
  COUNTER(pacedPackets, "evosip_app_paced_packets_total",                                   \
          "RTP packets prepared for the pacing threads", "")                                \
  COUNTER(skippedTicks, "evosip_app_pacing_skipped_ticks_total",                            \
          "Pacing ticks dropped after a stall of more than two frame periods", "")          \
  GAUGE(serverTransactions, "evosip_app_transactions", "RFC 3261 transactions alive",       \
        "kind=server")                                                                      \
  GAUGE(clientTransactions, "evosip_app_transactions", "", "kind=client")

struct AppCounters {
  EVOSIP_STAT_FIELDS(EVOSIP_APP_STATS)
  std::atomic<uint64_t> rtpSent{0}, rtpSendErrors{0};

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
  // app.state: takes an established call's record (call_record.hpp), "" when the call ended;
  // empty without app.state.
  std::function<void(const std::string& callId, std::string record)> storeCall;
};

class AppCore final : public transaction::TransactionUser, private CallControl {
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
  // app.state (call_takeover.cpp): a stored call of a dead peer (or of this app's previous
  // process) goes on here: its dialog from the record, a media session on a port of this worker,
  // a re-INVITE to the caller with our Contact and address, and its application from where it
  // was. A call this worker has already is left alone.
  void resume(const CallRecord& record);
  // A peer app holds this app's calls now: every call ends here without signalling.
  void dropAll();

  const AppCounters& counters() const { return counters_; }
  size_t calls() const { return calls_.size(); }
  // True when paced sends go through io_uring.
  bool batchedSends() const { return playout_.batched(); }
  // The pacing thread's figures: packets sent and failed, lateness behind the schedule.
  const PacingThread::Stats& pacingStats() const { return playout_.stats(); }

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

 private:
  using TimePoint = runtime::Clock::time_point;
  using TransactionId = transaction::TransactionId;

  // ---- an initial INVITE, step by step (app_core.cpp) ----
  void newInvite(TransactionId id, const sip::Message& req, const transport::Source& src);
  // The INVITE of a call we have: our 2xx again (13.3.1.4), else 482.
  bool answerKnownCall(TransactionId id, const sip::Message& req);
  // Drain (503) and required extensions (420).
  bool refuseBeforeReading(TransactionId id, const sip::Message& req);
  // Missing (400) or unknown (501) actions, and Hangup: answered without a call.
  bool answerWithoutCall(TransactionId id, const CallRequest& request);
  // The offer: PCMU/PCMA in the address family of app.rtp_address, else 488.
  std::optional<Negotiated> negotiateOffer(TransactionId id, const sip::Message& req);
  // The call: its application (refused 400/500 by its parameters) and its RTP port (503).
  CallPtr createCall(TransactionId id, const sip::Message& req, const transport::Source& src,
                     CallRequest request, const Negotiated& offer);
  // The call is ours: counted, in the calls and the deadline sweep.
  void enroll(const CallPtr& call);
  // The call is ours: 100 Trying, its RTP read, its application loading.
  void admit(const CallPtr& call, TransactionId id);

  // ---- in-dialog requests ----
  void reInvite(Call& call, TransactionId id, const sip::Message& req);
  void onBye(TransactionId id, const sip::Message& req);
  Call* findDialog(const sip::Message& req);
  void reject(TransactionId id, int code, std::string_view reason);

  // ---- our responses and requests ----
  // Sends a response with our SDP (183 / 200) to the call's INVITE; returns the bytes.
  std::string respondWithSdp(Call& call, TransactionId id, const sip::Message& req, int code,
                             std::string_view reason, bool withRecordRoute = true);
  void answer(Call& call);
  void sendFinal(Call& call, int code, std::string_view reason, std::string_view extra = {});
  void sendBye(Call& call);
  // The 2xx until its ACK; without one after 64*T1 the dialog is confirmed and torn down.
  void retransmitOks(TimePoint now);
  void endCall(Call& call, EndReason why);

  // ---- the application ----
  void loaded(Call& call);
  void start(Call& call);
  void onPromptDone(Call& call);
  void onDigit(Call& call, char digit);
  // Maximum duration, the application's limits, the peer and RTP timeouts, its timers.
  void checkDeadline(Call& call, TimePoint now);
  // Every minute (worker 0): counts what app.voicemail_dir holds, on the blocking pool.
  void countVoicemail();

  // ---- app.state (call_takeover.cpp) ----
  // The call's record into the store (an established call), or its removal (ended).
  void storeCall(Call& call);
  void forgetCall(Call& call, EndReason why);
  CallPtr restoreCall(const CallRecord& record);
  void sendReInvite(Call& call);
  // The caller's final response to our re-INVITE: the 2xx is ACKed and its SDP moves the
  // media; anything else ends the call.
  void onReInviteFinal(Call& call, const sip::Message& response);
  // The application goes on from the position its record gave (its first prompt skipped by the
  // time it has been playing).
  void resumeStart(Call& call);

  // ---- media ----
  void armRead(const CallPtr& call);
  void onReadable(Call& call);
  void onRtp(Call& call, std::span<const uint8_t> datagram);

  // CallControl
  TimePoint now() const override { return clock_.now(); }
  const AppSettings& settings() const override { return settings_; }
  AppCounters& callCounters() override { return counters_; }
  AppShared* shared() override { return &shared_; }
  void loadPrompt(Call& call, std::string sound, PromptPtr* into, bool required) override;
  void loadBlocking(Call& call, std::function<std::function<void()>()> work) override;
  void blocking(std::function<std::function<void()>()> work, bool now) override;
  void play(Call& call, PromptPtr prompt) override { playout_.play(call, std::move(prompt)); }
  void sendNow(Call& call, std::span<const uint8_t> payload) override;
  void hangup(Call& call, int earlyCode, std::string_view earlyReason) override;
  void finish(Call& call, int code, std::string_view reason, std::string_view headers,
              EndReason why) override;

  AppShared& shared_;
  const AppSettings& settings_;
  boost::asio::io_context& io_;
  size_t worker_;
  SendFn send_;
  const runtime::Clock& clock_;
  transaction::TransactionLayer layer_;
  AppCounters counters_;
  rtp::PortAllocator ports_;  // RTP ports; RTCP (+1) is never bound
  Playout playout_;
  std::unordered_map<std::string, CallPtr> calls_;  // by Call-ID
  std::unordered_map<uint64_t, Call*> byInvite_;    // INVITE server transaction -> call
  std::unordered_set<Call*> awaitingAck_;           // 2xx being retransmitted
  std::unordered_map<uint64_t, Call*> byReInvite_;  // our re-INVITE client transaction -> call
  // Every call once more, for the deadline sweep: a tenth of them each 10 ms tick.
  std::vector<CallPtr> roster_;
  RoundRobinSweep sweep_{10};
  std::vector<CallPtr> sweepShare_;  // this tick's share (kept: no allocation per tick)
  std::string contact_;              // "Contact: <sip:app@host:port>\r\n"
  bool ipv6_ = false;
  uint64_t ticks_ = 0;
  std::array<uint8_t, 2048> packet_{};
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

}  // namespace evosip::app
