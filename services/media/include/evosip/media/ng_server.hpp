#pragma once
// The ng control socket (rtpengine's "ng" protocol over UDP): one thread with its own io_context
// reads datagrams "<cookie> <bencoded dict>" from the peers media.ng_allow names (others get no
// reply at all: the socket must not answer, or amplify for, a forged source), answers
// retransmissions from a reply cache keyed by cookie and source address and port (a datagram
// with another peer's cookie gets nothing back), and hands each command to a handler, which may
// answer from any thread: the reply is posted back to the ng thread, cached and sent to the
// datagram's source.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <evosip/bencode/ng_frame.hpp>
#include <evosip/metrics/stats.hpp>
#include <evosip/runtime/clock.hpp>
#include <evosip/transport/address_acl.hpp>

namespace evosip::media {

// Commands and results counted in evosip_media_ng_commands_total.
enum class NgCommand : uint8_t {
  kPing,
  kOffer,
  kAnswer,
  kDelete,
  kQuery,
  kList,
  kStatistics,
  kOther,
  kCount
};
enum class NgResult : uint8_t { kOk, kError, kPong, kCount };
const char* ngCommandName(NgCommand c);
const char* ngResultName(NgResult r);
NgCommand ngCommandFromName(std::string_view name);

// The ng server's statistics that /metrics shows as plain counters (metrics/stats.hpp); the
// commands by command and result are exposed apart.
#define EVOSIP_NG_STATS(COUNTER, GAUGE, COUNTER_ARRAY)                                            \
  COUNTER(refused, "evosip_media_ng_refused_total",                                               \
          "ng datagrams from sources media.ng_allow does not name (dropped, never answered)", "") \
  COUNTER(retransmissions, "evosip_media_ng_retransmissions_total",                               \
          "ng commands answered from the reply cache (same cookie from the same source)", "")

struct NgCounters {
  std::array<std::array<std::atomic<uint64_t>, size_t(NgResult::kCount)>, size_t(NgCommand::kCount)>
      commands{};
  std::atomic<uint64_t> malformed{0};  // datagrams without a cookie: not answered
  // retransmissions: answered from the reply cache; refused: from a source media.ng_allow does
  // not name.
  EVOSIP_STAT_FIELDS(EVOSIP_NG_STATS)
};

class NgServer {
 public:
  using Reply = std::function<void(bencode::Value)>;
  // Called on the ng thread with the parsed command name (as sent) and body; must call reply
  // exactly once (from any thread).
  using Handler = std::function<void(std::string_view command, bencode::Value body, Reply reply)>;

  // `clock` ages the reply cache (a retransmission is answered from it for 30 s); tests pass a
  // manual clock.
  NgServer(std::string listen, transport::AddressAcl allow, Handler handler,
           const runtime::Clock& clock = runtime::SteadyClock::instance());
  ~NgServer();
  NgServer(const NgServer&) = delete;
  NgServer& operator=(const NgServer&) = delete;

  // Bind even while the address is not on an interface (IP_FREEBIND): another relay's ng address
  // taken over (media.takeover), which reaches this host once it is announced here.
  void setFreeBind(bool on);
  // Binds (throws std::runtime_error naming media.ng_listen) and starts the thread. After a
  // stop() (the socket released, media.state.fence) or a failed start(), it may be called again.
  void start();
  void stop();
  bool running() const;
  uint16_t port() const;
  const NgCounters& counters() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace evosip::media
