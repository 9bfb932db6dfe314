#pragma once
// SIP over UDP and TCP for one role: one UDP socket per worker and listen address
// (SO_REUSEPORT, batched recvmmsg/sendmmsg), one TCP acceptor per worker (SO_REUSEPORT);
// a TCP connection is owned by the worker that accepted it, or by the worker that opened it to
// send (connect on send, bounded per worker and per remote address).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include <evosip/runtime/worker_pool.hpp>
#include <evosip/transport/address.hpp>

namespace evosip::transport {

// Identifies a TCP connection across workers: the owning worker and a per-worker sequence.
struct ConnectionId {
  uint32_t worker = 0;
  uint32_t seq = 0;  // 0 = none (UDP)
  bool valid() const { return seq != 0; }
  bool operator==(const ConnectionId&) const = default;
};

// Where a message came from.
struct Source {
  Protocol protocol = Protocol::kUdp;
  Endpoint remote;
  Endpoint local;           // the listen address it arrived on
  ConnectionId connection;  // valid for stream transports
};

// One received, framed message. `data` is valid only during the handler call.
struct Packet {
  std::string_view data;
  Source source;
};

// Where to send. For a stream protocol with a valid connection, the connection is used (from any
// worker: the bytes are posted to its owner). TCP without one: the sending worker's connection
// to `remote` (one the peer opened or one it opened itself), else a new one it opens (the bytes
// wait until it is up). TLS and WebSocket are not supported by this build: such a send fails.
struct Destination {
  Protocol protocol = Protocol::kUdp;
  Endpoint remote;
  ConnectionId connection;
  // UDP only: the egress socket to send from (SipTransport::egressCount), so that the answers
  // to a request come back to that socket's worker; -1 sends from the listen socket.
  int32_t egress = -1;
};

struct TransportSettings {
  std::vector<ListenSpec> listen;
  size_t maxMessageSize = 65535;
  size_t maxConnections = 10000;  // TCP, over all workers
  // TCP connections of one source address, over all workers (0 = no cap): one address cannot
  // take every slot of maxConnections.
  size_t maxConnectionsPerIp = 32;
  std::chrono::seconds tcpIdleTimeout{300};
  // A connection that has held an incomplete message this long is closed (a peer that trickles
  // a message byte by byte to hold the connection and its buffer: slowloris).
  std::chrono::seconds tcpMessageTimeout{10};
  size_t udpBatch = 32;  // datagrams per recvmmsg
  // Workers waiting in io_uring (sip.io): provided receive buffers per worker (rounded up to a
  // power of two). A burst beyond them waits in the socket's buffer until they are handed back.
  size_t udpRingBuffers = 128;
  size_t tcpMaxWriteQueue = 1 << 20;  // bytes waiting for a slow reader before it is closed
  // Egress sockets per worker and UDP address family: sockets on ephemeral ports of the first
  // UDP listen address of the family, received on by their worker. A request sent from one
  // (with that port in its Via) has its responses delivered to that worker, whatever the
  // SO_REUSEPORT hash of the peer's address would pick. 0: none.
  size_t egressPerWorker = 0;
  // Where the egress sockets of a family are bound instead of the first listen address of that
  // family: a unicast address of this host when the listen address is shared (anycast), so that
  // the answers to what leaves from them come back to this host, not to another announcer.
  std::vector<boost::asio::ip::address> egressAddresses;
  // Listen sockets bind even while their address is not on an interface (IP_FREEBIND): an
  // anycast address that is put on the host only while the instance is ready.
  bool freeBind = false;
  // Outbound TCP (connect on send): how long a connect may take before the send fails.
  std::chrono::milliseconds tcpConnectTimeout{3000};
  // Connections one worker opens itself, connecting or up (0 = none: TCP only over the
  // connections peers opened), and the connections all workers open to one remote address
  // (0 = no cap). Past either, a send that needs a new connection fails at once.
  size_t maxOutboundPerWorker = 256;
  size_t maxOutboundPerRemote = 64;
  // Bytes a connection being opened holds for sending once it is up; a send beyond fails.
  size_t tcpConnectQueue = 64 * 1024;
};

// Counters an operator watches (exposed as metrics by the role).
struct TransportStats {
  std::atomic<uint64_t> udpReceived{0}, udpSent{0}, udpSendErrors{0}, udpDroppedOversize{0};
  std::atomic<uint64_t> tcpAccepted{0}, tcpRejectedLimit{0}, tcpClosedIdle{0}, tcpMisframed{0},
      tcpOversize{0}, tcpKeepAlives{0}, tcpReceived{0}, tcpSent{0}, tcpSendNoConnection{0},
      tcpClosedWriteOverflow{0}, tcpRejectedPerIp{0}, tcpClosedMessageTimeout{0};
  // Outbound TCP: connects that succeeded, connects that failed or timed out, sends refused
  // because a bound (per worker, per remote, maxConnections) was reached, and sends refused
  // because the queue of a connection being opened was full.
  std::atomic<uint64_t> tcpConnected{0}, tcpConnectFailed{0}, tcpOutboundRejectedLimit{0},
      tcpConnectQueueFull{0};
  std::atomic<uint64_t> handlerExceptions{0};  // a Handler threw (a bug); the message is dropped
  std::atomic<int64_t> tcpOpen{0};             // every TCP connection, accepted or opened
  std::atomic<int64_t> tcpOutboundOpen{0};     // those this process opened (connecting or up)
};

class SipTransport {
 public:
  // Called on the worker thread that received the message.
  using Handler = std::function<void(runtime::Worker&, const Packet&)>;
  // Called on the worker that opened a TCP connection to send when the connection could not be
  // opened (refused, unreachable, sip.tcp.connect_timeout_ms passed): what was sent to `to`
  // through it did not leave. `to` is {kTcp, the remote address, no connection}. Never called
  // from inside send().
  using SendFailureHandler = std::function<void(runtime::Worker&, const Destination&)>;

  SipTransport(runtime::WorkerPool& pool, TransportSettings settings, Handler handler);
  ~SipTransport();

  // Binds every listen spec on every worker. Throws std::runtime_error naming the address on
  // failure (start-up error). Port 0 binds an ephemeral port (tests); the same port is then
  // used by all workers.
  void start();
  // Before start(): who hears of the sends that failed after send() returned true.
  void onSendFailure(SendFailureHandler handler);
  // Closes sockets and connections; call before WorkerPool::stop().
  void stop();

  // The addresses actually bound (resolves port 0).
  const std::vector<ListenSpec>& bound() const;

  // Sends from the calling worker thread (or any thread for TCP: posted to the owner, or for a
  // TCP send without a connection to a worker chosen by the remote address). UDP sends are
  // batched and flushed at the end of the current receive batch or at once when not inside one.
  // Returns false when it could not be queued (no socket for the address family, no such
  // connection, an outbound bound reached, an unsupported transport). A new connection that
  // then fails is reported to the SendFailureHandler.
  bool send(const Destination& to, std::string_view data);

  const TransportStats& stats() const;

  // Egress sockets (after start()): egressPerWorker per worker, index = worker *
  // egressPerWorker + k. The port of one for a family (nullopt: no UDP listen address of that
  // family, or no such socket) and the worker that receives on it.
  size_t egressCount() const;
  std::optional<uint16_t> egressPort(size_t index, bool v6) const;
  size_t egressWorker(size_t index) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace evosip::transport
