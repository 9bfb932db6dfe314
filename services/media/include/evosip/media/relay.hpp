#pragma once
// One worker's share of the media relay (docs/architecture.md "media"): the calls whose Call-ID
// hashes to this worker, their RTP/RTCP sockets (bound from this worker's own port sub-range),
// the packet path and the ng commands that create, change, report and delete them.
//
// Everything here runs on the worker's thread (its io_context): no locks. The only state shared
// with other threads is RelayShared (atomics: drain flag, session count) and RelayCounters
// (relaxed atomics read by the metrics scrape).
//
// Model (rtpengine's words): a Call has legs ("monologues"), one per SIP tag. Each leg has one
// MediaSlot per m= line; each slot has an RTP and an RTCP Stream. A Stream is a local socket that
// faces that leg's endpoint: packets the leg sends arrive on it (and latch its address), packets
// for the leg leave from it. A packet arriving on leg A's stream leaves from the peer leg B's
// stream of the same m= line towards B's destination.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <evosip/bencode/bencode.hpp>
#include <evosip/media/endpoint.hpp>
#include <evosip/media/latch.hpp>
#include <evosip/media/ng_options.hpp>
#include <evosip/media/session_record.hpp>
#include <evosip/metrics/stats.hpp>
#include <evosip/rtp/port_allocator.hpp>
#include <evosip/runtime/clock.hpp>

namespace evosip::media {

using rtp::PortAllocator;
using rtp::PortRange;
using rtp::splitPortRange;

// Why a packet was not relayed (label reason of evosip_media_drops_total).
enum class DropReason : uint8_t {
  kStrictSource,   // strict-source: the source is not the latched address
  kNoDestination,  // the peer's address is not known yet (no answer, c=0.0.0.0, no packet)
  kSendError,      // the kernel refused the send (buffer full, unreachable)
  kOversize,       // larger than the receive buffer
  kFenced,         // media.state.fence: the relay is fenced (a peer may serve the call now)
  kCount
};
const char* dropReasonName(DropReason r);

struct RelaySettings {
  std::string advertise;     // media.address: written into SDP
  std::string bind;          // media.bind: where sockets are bound ("" = advertise)
  uint32_t timeoutS = 60;    // media.timeout_s: calls without packets or signalling are deleted
  uint64_t maxSessions = 0;  // media.max_sessions: 0 = unlimited
  // media.max_streams: m= lines an offer or answer may have; a call also holds at most
  // 2 x maxStreams port pairs (its two legs), however many legs its tags make.
  uint32_t maxStreams = 4;
  bool ioUring = true;  // media.io_uring: relay with io_uring when the kernel allows it
  // media.free_bind: bind RTP sockets even while media.bind is not on an interface (an address an
  // announcer adds and withdraws, IP_FREEBIND).
  bool freeBind = false;
  // io_uring path only: the worker thread waits for packets inside io_uring_enter (one system
  // call per wakeup) instead of in the Asio reactor, and returns to its io_context when wake()
  // is called (work was posted to it) or at least once a second (its timers). Only for a worker
  // that runs nothing but this relay and whose posters call wake() (MediaService); false: the ring
  // signals an eventfd that the io_context waits on (tests that drive the io_context by poll()).
  bool waitInRing = false;
  // waitInRing: the longest the worker waits inside io_uring without a packet or a wake() before
  // it returns to its io_context (its timers run then).
  std::chrono::nanoseconds ringIdleWait = std::chrono::seconds(1);
};

// Shared by every worker and the ng thread.
struct RelayShared {
  std::atomic<bool> draining{false};
  // media.state: the relay's own address is still served by the peer that took it over (this
  // process started while it did): new calls are refused as while draining.
  std::atomic<bool> standby{false};
  // media.state.fence: the store has not confirmed the relay's heartbeat in time; nothing is
  // relayed, offers and answers are refused as while draining, /readyz answers 503.
  std::atomic<bool> fenced{false};
  std::atomic<int64_t> sessions{0};  // calls alive, all workers
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
};

// Every statistic of a relay worker that /metrics shows, declared once: the fields below and
// their exposition (metrics/stats.hpp).
#define EVOSIP_RELAY_STATS(COUNTER, GAUGE, COUNTER_ARRAY)                                       \
  GAUGE(sessions, "evosip_media_sessions", "Calls with media relayed now", "")                  \
  GAUGE(streams, "evosip_media_streams", "Open RTP and RTCP sockets (two per leg and m= line)", \
        "")                                                                                     \
  COUNTER(packetsRelayed, "evosip_media_packets_relayed_total",                                 \
          "RTP/RTCP packets sent on to the other party", "")                                    \
  COUNTER(bytesRelayed, "evosip_media_bytes_relayed_total",                                     \
          "UDP payload bytes sent on to the other party", "")                                   \
  COUNTER_ARRAY(drops, static_cast<size_t>(DropReason::kCount), "evosip_media_drops_total",     \
                "Packets not relayed, by reason", "reason", dropLabel)                          \
  COUNTER(timeoutSessions, "evosip_media_timeouts_total",                                       \
          "Calls deleted after media.timeout_s without packets", "")                            \
  COUNTER(rejectedSessions, "evosip_media_rejected_sessions_total",                             \
          "New calls refused (media.max_sessions reached or draining)", "")

// Per-worker totals; written by the worker only (relaxed), read at scrape.
struct RelayCounters {
  EVOSIP_STAT_FIELDS(EVOSIP_RELAY_STATS)
  std::atomic<uint64_t> managedSessions{0};  // calls created
  std::atomic<uint64_t> deletedSessions{0};  // by a delete command
  std::atomic<uint64_t> packetErrors{0};
};

struct Stream;
struct MediaSlot;
struct Leg;
struct Call;
struct Negotiation;
class IoUringRing;

class Relay {
 public:
  // `clock` times idle calls (media.timeout_s) and the streams' last packets; tests pass a
  // ManualClock.
  Relay(boost::asio::io_context& io, const RelaySettings& settings, PortRange ports,
        RelayShared& shared, const runtime::Clock& clock = runtime::SteadyClock::instance());
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // ng commands for calls owned by this worker. `body` is the request dictionary; the reply
  // dictionary (result ok/error, sdp, warning, statistics) is returned. Never throws.
  bencode::Value offer(const bencode::Value& body);
  bencode::Value answer(const bencode::Value& body);
  bencode::Value remove(const bencode::Value& body);  // "delete"
  bencode::Value query(const bencode::Value& body);
  // Call-IDs of this worker's calls (at most limit).
  std::vector<std::string> callIds(size_t limit) const;

  // media.state: called on the worker with a call's stored form after every offer, answer and
  // latch change (record non-empty), and when the call is deleted (record empty). `owner` is the
  // relay instance whose address the call lives on ("" = this one). Not called at closeAll():
  // the records of a relay that stops with calls up stay for the relay that takes them over.
  using SessionSink =
      std::function<void(const std::string& callId, const std::string& owner, std::string record)>;
  void setSessionSink(SessionSink sink) { sessionSink_ = std::move(sink); }
  // The stored form of a call (relay_state.cpp).
  SessionRecord snapshot(const std::string& callId) const;
  // Serves a call from its stored form (another relay's, `owner`): its sockets are bound to the
  // record's address and ports (IP_FREEBIND), its legs latched as recorded. Refused when the
  // Call-ID is already here or a socket cannot be bound; refused with kNotFound, and its record
  // removed, when a delete for it came before it was restored (a router's delete that reached
  // the address while the restore was under way).
  Result<void> restore(const SessionRecord& record, const std::string& owner);

  // media.state.fence: while fenced, received packets are dropped (counted as "fenced") before
  // they latch (they still keep the call from idling out); the calls stay, to be relayed again
  // when the fence lifts.
  void setFenced(bool on) { fenced_ = on; }
  // media.state.fence: every call socket is closed while the relay is fenced, so that the peer
  // that may take the address over can bind its ports, on this host too; the calls stay, with
  // their ports, latches and counters.
  void releaseSockets();
  // After the fence: the released sockets are bound again on the same ports. A call whose port
  // cannot be bound (held by another process) is deleted, its record removed. Returns how many.
  size_t rebindSockets();
  // Deletes the calls living on `owner`'s address ("" = this relay's own) without removing
  // their records: another relay holds that address and serves them now.
  size_t dropCalls(const std::string& owner);

  // Periodic work (every second): deletes calls without a packet or an offer/answer for longer
  // than timeout_s on the clock.
  void onTick();
  // Closes every socket (at shutdown, on the worker thread).
  void closeAll();

  const RelayCounters& counters() const { return counters_; }
  size_t calls() const { return calls_.size(); }
  const PortAllocator& ports() const { return ports_; }
  // "io_uring" or "epoll": the packet path in use (io_uring is chosen at the first stream, on
  // the worker thread, when settings.ioUring allows and the kernel accepts it).
  const char* packetPath() const;

  // Makes a worker that waits inside io_uring (settings.waitInRing) return to its io_context
  // soon, to run what was just posted to it. Any thread; cheap (one eventfd write).
  void wake();
  // True when the worker thread is waiting inside io_uring (settings.waitInRing and the ring
  // is running).
  bool waitsInRing() const { return ringLoopRunning_; }

 private:
  // Offer and answer, one step each (relay_offer_answer.cpp).
  bencode::Value offerOrAnswer(const bencode::Value& body, bool isAnswer);
  Result<void> readOfferAnswer(const bencode::Value& body, Negotiation& n) const;
  Result<void> findOrCreateCall(Negotiation& n, int64_t wall);
  Result<bencode::Value> negotiate(Negotiation& n, int64_t wall);
  // The leg whose SDP this is and the leg that receives the rewritten SDP (created as needed).
  Result<std::pair<Leg*, Leg*>> pickLegs(Call& call, const NgOptions& opts, bool isAnswer,
                                         int64_t wall);
  Result<void> setUpMedia(Negotiation& n);
  Result<void> allocateSlots(Negotiation& n, size_t index);

  // Stream sockets and their port pairs (relay_streams.cpp).
  Result<std::shared_ptr<Stream>> openStream(const Endpoint& bindAddress, uint16_t port, bool rtcp,
                                             bool freeBind);
  Result<void> bindStream(Stream& s, const Endpoint& bindAddress, bool freeBind);
  Result<void> ensureSlot(Call& call, Leg& leg, size_t index);
  void closeStream(Stream& s);
  void releaseSocket(Stream& s);  // closes the socket, keeps the stream (releaseSockets)

  // The epoll packet path (relay_epoll.cpp).
  void armEpoll();
  void pollStreams();
  void onReadable(Stream& s);
  int receiveBatch(Stream& s);
  size_t queueForPeer(Stream& s, size_t received);  // returns the packets queued
  void sendBatch(Stream& out, size_t queued);

  // The io_uring packet path (relay_io_uring.cpp).
  struct RingStats {
    uint64_t received = 0, relayed = 0, bytes = 0, failed = 0, failedBytes = 0;
    std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> drops{};
  };
  void startRing();
  void armRing();
  void pollRing();
  bool drainRing(RingStats& stats);  // true: work left after the round limit
  // Relays the completions now in the completion queue; *woken when wake() was called.
  unsigned reapRing(RingStats& stats, int64_t now, bool* woken);
  void addRingStats(RingStats& stats);
  void ringLoop();  // settings.waitInRing: the worker's packet loop, blocking in io_uring_enter
  // ringLoop also returns to the io_context after this much relaying (CLOCK_MONOTONIC: a budget
  // of the thread's real time, whatever clock the relay's timers use).
  static constexpr int64_t kRingBusyNs = 100'000'000;
  void relayRingPacket(Stream& s, char* buf, unsigned len, int64_t now, RingStats& st);

  // The store's copy of the calls (relay_state.cpp).
  void publish(Call& call);
  void unpublish(const Call& call);
  void publishLatchChanges();
  Result<void> restoreLeg(Call& call, const SessionRecord& r, size_t index);
  Result<void> rebindCall(Call& call);

  // Calls: deletion and report (relay.cpp).
  void deleteCall(const std::string& callId);
  bencode::Value callStats(const Call& call) const;
  int64_t nowNs() const;      // the injected clock, in nanoseconds
  static int64_t steadyNs();  // CLOCK_MONOTONIC, never the injected clock
  static int64_t wallS();     // the system clock in seconds (rtpengine's "created" times)

  boost::asio::io_context& io_;
  RelaySettings settings_;
  Endpoint bindAddress_;
  RelayShared& shared_;
  PortAllocator ports_;
  const runtime::Clock& clock_;
  RelayCounters counters_;
  std::unordered_map<std::string, std::unique_ptr<Call>> calls_;
  SessionSink sessionSink_;
  // Call-IDs of deletes that found no call, kept kDeletedKeepNs (at most kDeletedKept, the oldest
  // going first): a restore that comes after its call's delete does not bring the call back.
  std::unordered_map<std::string, int64_t> deletedUnknown_;  // Call-ID -> when (nowNs)
  std::deque<std::pair<int64_t, std::string>> deletedOrder_;
  static constexpr size_t kDeletedKept = 1024;
  static constexpr int64_t kDeletedKeepNs = int64_t{30} * 1000 * 1000 * 1000;
  void noteDeletedUnknown(const std::string& callId);
  void expireDeletedUnknown(int64_t now);

  // Packet buffers, reused for every batch (no allocation on the packet path).
  static constexpr size_t kBatch = 32;
  static constexpr size_t kBufferSize = 2048;
  struct Batch {
    std::array<mmsghdr, kBatch> rx{};
    std::array<mmsghdr, kBatch> tx{};
    std::array<iovec, kBatch> rxIov{};
    std::array<iovec, kBatch> txIov{};
    std::array<sockaddr_storage, kBatch> src{};
    alignas(64) std::array<std::array<char, kBufferSize>, kBatch> data{};
  };
  std::unique_ptr<Batch> batch_;
  bool fenced_ = false;  // setFenced(): read on the packet path
  // Every stream socket of this worker is in one epoll set (level-triggered, data.ptr = the
  // Stream); the Asio reactor waits on that set's descriptor only, so a readable socket costs one
  // epoll entry, not one Asio operation.
  int epoll_ = -1;
  boost::asio::posix::stream_descriptor epollDescriptor_;
  // With io_uring (io_uring_ring.hpp) the reactor waits on the ring's eventfd instead, and the
  // epoll set stays empty.
  bool ringTried_ = false;
  bool ringLoopRunning_ = false;
  int wakeFd_ = -1;  // eventfd read by the ring (settings.waitInRing), written by wake()
  std::unique_ptr<IoUringRing> ring_;
  boost::asio::posix::stream_descriptor ringEvent_;
};

}  // namespace evosip::media
