#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <future>
#include <mutex>
#include <netinet/in.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <evosip/base/strings.hpp>
#include <evosip/sip/framing.hpp>
#include <evosip/sip/message.hpp>
#include <evosip/sip/response.hpp>
#include <evosip/transport/sip_transport.hpp>

namespace evosip::transport {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using std::chrono::steady_clock;

namespace {

constexpr int kSocketBufferBytes = 4 * 1024 * 1024;
// recvmmsg batches served per readiness event before yielding to the worker's other sockets.
constexpr int kMaxUdpRoundsPerWakeup = 8;
constexpr size_t kInitialTcpReadBuffer = 4096;
// After a 400/413 reply: how long to keep draining the peer's bytes so that closing does not
// reset the connection before the peer has read the reply.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(50);

Endpoint fromSockaddr(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET6) {
    sockaddr_in6 s6;
    std::memcpy(&s6, &ss, sizeof(s6));
    asio::ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), &s6.sin6_addr, bytes.size());
    return Endpoint{asio::ip::address_v6(bytes, s6.sin6_scope_id), ntohs(s6.sin6_port)};
  }
  sockaddr_in s4;
  std::memcpy(&s4, &ss, sizeof(s4));
  return Endpoint{asio::ip::address_v4(ntohl(s4.sin_addr.s_addr)), ntohs(s4.sin_port)};
}

socklen_t toSockaddr(const Endpoint& ep, sockaddr_storage& ss) {
  if (ep.ip.is_v6()) {
    sockaddr_in6 s6{};
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons(ep.port);
    auto v6 = ep.ip.to_v6();
    auto bytes = v6.to_bytes();
    std::memcpy(&s6.sin6_addr, bytes.data(), bytes.size());
    s6.sin6_scope_id = v6.scope_id();
    std::memcpy(&ss, &s6, sizeof(s6));
    return sizeof(s6);
  }
  sockaddr_in s4{};
  s4.sin_family = AF_INET;
  s4.sin_port = htons(ep.port);
  s4.sin_addr.s_addr = htonl(ep.ip.to_v4().to_uint());
  std::memcpy(&ss, &s4, sizeof(s4));
  return sizeof(s4);
}

[[noreturn]] void throwBindError(const ListenSpec& spec, const boost::system::error_code& ec) {
  throw std::runtime_error("cannot listen on " + spec.str() + ": " + ec.message());
}

void setReusePort(int fd, const ListenSpec& spec) {
  int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    throwBindError(spec, boost::system::error_code(errno, boost::system::system_category()));
  }
}

// Large buffers absorb bursts; the kernel caps them at net.core.[rw]mem_max without CAP_NET_ADMIN.
void setBigBuffers(int fd) {
  int size = kSocketBufferBytes;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
}

}  // namespace

// Open TCP connections per source address, over all workers. Touched at accept and close only,
// never per message: a mutex is fine here.
class ConnectionsPerIp {
 public:
  // Counts one more connection of ip unless it already has `cap` (0 = no cap).
  bool tryAdd(const asio::ip::address& ip, size_t cap) {
    std::lock_guard lock(mutex_);
    uint32_t& n = counts_[ip];
    if (cap != 0 && n >= cap) {
      if (n == 0) {
        counts_.erase(ip);
      }
      return false;
    }
    ++n;
    return true;
  }
  void remove(const asio::ip::address& ip) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(ip);
    if (it != counts_.end() && --it->second == 0) {
      counts_.erase(it);
    }
  }

 private:
  std::mutex mutex_;
  std::unordered_map<asio::ip::address, uint32_t> counts_;
};

struct WorkerState;

struct UdpSocket {
  UdpSocket(WorkerState& o, asio::io_context& io, const Endpoint& l)
      : owner(&o), socket(io), local(l) {}
  WorkerState* owner;  // valid while !closed
  udp::socket socket;
  Endpoint local;
  bool closed = false;
  bool egress = false;  // other workers send from it too (SipTransport::Impl::egress)
};

struct TcpListener {
  TcpListener(WorkerState& o, asio::io_context& io, const Endpoint& l)
      : owner(&o), acceptor(io), retry(io), local(l) {}
  WorkerState* owner;  // valid while !closed
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  Endpoint local;
  bool closed = false;
};

struct TcpConnection {
  TcpConnection(WorkerState& o, tcp::socket s)
      : owner(&o), socket(std::move(s)), timer(socket.get_executor()) {}
  WorkerState* owner;  // valid while !closed
  tcp::socket socket;
  asio::steady_timer timer;
  Source source;
  std::unique_ptr<char[]> buffer;
  size_t capacity = 0;
  size_t used = 0;
  std::string pending;  // queued while a write is in flight
  std::string writing;  // the bytes of the write in flight
  bool writeInFlight = false;
  bool closing = false;    // a final reply is queued; read nothing more
  bool lingering = false;  // the reply is out; draining the peer until EOF or lingerUntil
  bool closed = false;
  bool partial = false;  // bytes of an incomplete message are buffered, since partialSince
  steady_clock::time_point lastRead;
  steady_clock::time_point partialSince;
  steady_clock::time_point timerAt;  // when the armed timer fires
  steady_clock::time_point lingerUntil;
};

// Everything one worker owns. Touched only on that worker's thread (or by start()/stop() while
// no thread runs the worker).
struct WorkerState {
  WorkerState(const SipTransport::Handler& h, TransportStats& st, runtime::Worker& w,
              const TransportSettings& s, ConnectionsPerIp& perIp);

  const SipTransport::Handler& handler;  // these four are valid while !stopped
  TransportStats& stats;
  const TransportSettings& settings;
  ConnectionsPerIp& connectionsPerIp;
  runtime::Worker& worker;
  bool stopped = false;

  std::vector<std::shared_ptr<UdpSocket>> udp;
  // Egress sockets after closeAll(): receiving stopped, the fd still open until closeEgress(),
  // once no worker can be in the middle of a send from it.
  std::vector<std::shared_ptr<UdpSocket>> retiredEgress;
  UdpSocket* udpByFamily[2] = {nullptr, nullptr};  // first socket of each family: v4, v6
  std::vector<std::shared_ptr<TcpListener>> tcp;
  std::unordered_map<uint32_t, std::shared_ptr<TcpConnection>> connections;
  uint32_t nextSeq = 1;

  // recvmmsg batch: preallocated, reused for every socket of this worker.
  std::vector<mmsghdr> recvMsgs;
  std::vector<iovec> recvIov;
  std::vector<sockaddr_storage> recvAddrs;
  std::unique_ptr<char[]> recvBuffer;

  // sendmmsg batch, filled while a receive batch runs (batchDepth > 0).
  int batchDepth = 0;
  std::vector<mmsghdr> sendMsgs;
  std::vector<iovec> sendIov;
  std::vector<sockaddr_storage> sendAddrs;
  std::vector<int> sendFds;
  std::unique_ptr<char[]> sendBuffer;
  size_t sendCapacity = 0;
  size_t sendUsed = 0;
  size_t sendCount = 0;

  void deliver(const Packet& packet);

  void armUdp(const std::shared_ptr<UdpSocket>& s);
  void drainUdp(const std::shared_ptr<UdpSocket>& s);
  // fd < 0: this worker's listen socket of the family.
  bool sendUdp(const Endpoint& to, std::string_view data, int fd = -1);
  void flushSends();
  void beginBatch() { ++batchDepth; }
  void endBatch() {
    if (--batchDepth == 0 && sendCount > 0) {
      flushSends();
    }
  }

  void armAccept(const std::shared_ptr<TcpListener>& l);
  void onAccepted(TcpListener& l, tcp::socket socket);
  void armRead(const std::shared_ptr<TcpConnection>& c);
  void processStream(const std::shared_ptr<TcpConnection>& c);
  void reject(const std::shared_ptr<TcpConnection>& c, size_t offset, Errc code);
  void armTimer(const std::shared_ptr<TcpConnection>& c, steady_clock::time_point at);
  void onTimer(const std::shared_ptr<TcpConnection>& c);
  // The earlier of the idle deadline and, with an incomplete message buffered, its deadline.
  steady_clock::time_point nextDeadline(const TcpConnection& c) const;
  void notePartial(const std::shared_ptr<TcpConnection>& c, bool newMessage);
  bool queueWrite(const std::shared_ptr<TcpConnection>& c, std::string_view data);
  void startWrite(const std::shared_ptr<TcpConnection>& c);
  void startLinger(const std::shared_ptr<TcpConnection>& c);
  void armLingerRead(const std::shared_ptr<TcpConnection>& c);
  void closeConnection(std::shared_ptr<TcpConnection> c);
  bool sendTcp(uint32_t seq, std::string_view data);

  void closeAll();
  void closeEgress();
};

struct SipTransport::Impl {
  Impl(runtime::WorkerPool& p, TransportSettings s, Handler h)
      : pool(p), settings(std::move(s)), handler(std::move(h)) {
    if (settings.udpBatch == 0) {
      settings.udpBatch = 1;
    }
    if (settings.maxMessageSize == 0) {
      settings.maxMessageSize = 1;
    }
  }

  runtime::WorkerPool& pool;
  TransportSettings settings;
  Handler handler;
  TransportStats stats;
  ConnectionsPerIp connectionsPerIp;
  std::vector<ListenSpec> bound;
  std::vector<std::shared_ptr<WorkerState>> workers;  // never shrinks after start()
  // Egress sockets by index (worker * egressPerWorker + k) and family (v4, v6); fixed after
  // start(). The sockets are owned (and closed) by their worker's WorkerState::udp.
  struct Egress {
    int fd[2] = {-1, -1};
    uint16_t port[2] = {0, 0};
  };
  std::vector<Egress> egress;
  bool hasUdpFamily[2] = {false, false};
  std::atomic<bool> started{false};
  bool stopped = false;

  WorkerState* current() {
    runtime::Worker* w = runtime::Worker::current();
    if (w == nullptr || w->index() >= workers.size() || &pool.at(w->index()) != w) {
      return nullptr;
    }
    return workers[w->index()].get();
  }

  // A UDP socket of worker w bound to spec's address and port (0: any): a listen socket
  // (SO_REUSEPORT, shared by the workers) or an egress socket.
  std::shared_ptr<UdpSocket> openUdp(WorkerState& w, const ListenSpec& spec, uint16_t port,
                                     bool listen);
  void bindUdp(const ListenSpec& spec);
  void bindEgress(const ListenSpec& spec);
  void bindTcp(const ListenSpec& spec);
  // The fd a UDP send uses: -1 for the listen socket, else the egress socket's (-2: none).
  int egressFd(const Destination& to) const {
    if (to.egress < 0) {
      return -1;
    }
    const size_t i = static_cast<size_t>(to.egress);
    const int fd = i < egress.size() ? egress[i].fd[to.remote.ip.is_v6() ? 1 : 0] : -1;
    return fd < 0 ? -2 : fd;
  }
};

WorkerState::WorkerState(const SipTransport::Handler& h, TransportStats& st, runtime::Worker& w,
                         const TransportSettings& s, ConnectionsPerIp& perIp)
    : handler(h), stats(st), settings(s), connectionsPerIp(perIp), worker(w) {
  const size_t batch = s.udpBatch;
  const size_t size = s.maxMessageSize;
  recvMsgs.resize(batch);
  recvIov.resize(batch);
  recvAddrs.resize(batch);
  // Not zero-filled: pages are touched only by the datagrams that actually arrive.
  recvBuffer = std::make_unique_for_overwrite<char[]>(batch * size);
  for (size_t k = 0; k < batch; ++k) {
    recvIov[k] = iovec{recvBuffer.get() + k * size, size};
    recvMsgs[k] = mmsghdr{};
    recvMsgs[k].msg_hdr.msg_name = &recvAddrs[k];
    recvMsgs[k].msg_hdr.msg_iov = &recvIov[k];
    recvMsgs[k].msg_hdr.msg_iovlen = 1;
  }
  sendMsgs.resize(batch);
  sendIov.resize(batch);
  sendAddrs.resize(batch);
  sendFds.resize(batch);
  sendCapacity = batch * size;
  sendBuffer = std::make_unique_for_overwrite<char[]>(sendCapacity);
  for (size_t k = 0; k < batch; ++k) {
    sendMsgs[k] = mmsghdr{};
    sendMsgs[k].msg_hdr.msg_name = &sendAddrs[k];
    sendMsgs[k].msg_hdr.msg_iov = &sendIov[k];
    sendMsgs[k].msg_hdr.msg_iovlen = 1;
  }
}

void WorkerState::deliver(const Packet& packet) {
  try {
    handler(worker, packet);
  } catch (const std::exception& e) {
    stats.handlerExceptions.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "transport: handler threw on a message from %s: %s\n",
                 packet.source.remote.str().c_str(), e.what());
  }
}

// ---- UDP ----------------------------------------------------------------------------------

void WorkerState::armUdp(const std::shared_ptr<UdpSocket>& s) {
  s->socket.async_wait(udp::socket::wait_read, [s](const boost::system::error_code& ec) {
    if (s->closed || ec == asio::error::operation_aborted) {
      return;
    }
    s->owner->drainUdp(s);
  });
}

void WorkerState::drainUdp(const std::shared_ptr<UdpSocket>& s) {
  const int fd = s->socket.native_handle();
  const unsigned batch = static_cast<unsigned>(recvMsgs.size());
  for (int round = 0; round < kMaxUdpRoundsPerWakeup; ++round) {
    for (unsigned k = 0; k < batch; ++k) {
      recvMsgs[k].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      recvMsgs[k].msg_hdr.msg_flags = 0;
    }
    int n = ::recvmmsg(fd, recvMsgs.data(), batch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;  // EAGAIN: drained (other errors: wait for the next readiness)
    }
    uint64_t received = 0;
    uint64_t dropped = 0;
    beginBatch();
    for (int k = 0; k < n && !s->closed; ++k) {
      const mmsghdr& m = recvMsgs[k];
      if (m.msg_hdr.msg_flags & MSG_TRUNC) {
        ++dropped;
        continue;
      }
      ++received;
      Packet packet{std::string_view(static_cast<const char*>(recvIov[k].iov_base), m.msg_len),
                    Source{Protocol::kUdp, fromSockaddr(recvAddrs[k]), s->local, {}}};
      deliver(packet);
    }
    if (received) {
      stats.udpReceived.fetch_add(received, std::memory_order_relaxed);
    }
    if (dropped) {
      stats.udpDroppedOversize.fetch_add(dropped, std::memory_order_relaxed);
    }
    if (s->closed) {
      batchDepth = 0;
      sendCount = 0;
      sendUsed = 0;
      return;
    }
    endBatch();
    if (static_cast<unsigned>(n) < batch) {
      break;  // the queue was empty: a new datagram raises a new readiness event
    }
    if (round + 1 == kMaxUdpRoundsPerWakeup) {
      // Still busy: let the worker's other sockets run, then continue without waiting.
      asio::post(worker.io(), [s] {
        if (!s->closed) {
          s->owner->drainUdp(s);
        }
      });
      return;
    }
  }
  armUdp(s);
}

bool WorkerState::sendUdp(const Endpoint& to, std::string_view data, int fd) {
  if (fd < 0) {
    UdpSocket* s = udpByFamily[to.ip.is_v6() ? 1 : 0];
    if (s == nullptr || s->closed) {
      return false;
    }
    fd = s->socket.native_handle();
  }
  if (batchDepth > 0 && data.size() <= sendCapacity) {
    if (sendCount == sendMsgs.size() || sendUsed + data.size() > sendCapacity) {
      flushSends();
    }
    size_t k = sendCount++;
    char* dst = sendBuffer.get() + sendUsed;
    std::memcpy(dst, data.data(), data.size());
    sendUsed += data.size();
    sendIov[k] = iovec{dst, data.size()};
    sendMsgs[k].msg_hdr.msg_namelen = toSockaddr(to, sendAddrs[k]);
    sendFds[k] = fd;
    return true;
  }
  sockaddr_storage ss;
  socklen_t len = toSockaddr(to, ss);
  ssize_t rc;
  do {
    rc = ::sendto(fd, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                  reinterpret_cast<const sockaddr*>(&ss), len);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    stats.udpSendErrors.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  stats.udpSent.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void WorkerState::flushSends() {
  uint64_t sent = 0;
  uint64_t errors = 0;
  size_t i = 0;
  while (i < sendCount) {
    const int fd = sendFds[i];
    size_t end = i + 1;
    while (end < sendCount && sendFds[end] == fd) {
      ++end;
    }
    while (i < end) {
      int rc =
          ::sendmmsg(fd, &sendMsgs[i], static_cast<unsigned>(end - i), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (rc < 0 && errno == EINTR) {
        continue;
      }
      if (rc <= 0) {
        ++errors;  // the error belongs to the first datagram: skip it, send the rest
        ++i;
        continue;
      }
      sent += static_cast<uint64_t>(rc);
      i += static_cast<size_t>(rc);
    }
  }
  sendCount = 0;
  sendUsed = 0;
  if (sent) {
    stats.udpSent.fetch_add(sent, std::memory_order_relaxed);
  }
  if (errors) {
    stats.udpSendErrors.fetch_add(errors, std::memory_order_relaxed);
  }
}

// ---- TCP ----------------------------------------------------------------------------------

void WorkerState::armAccept(const std::shared_ptr<TcpListener>& l) {
  l->acceptor.async_accept([l](const boost::system::error_code& ec, tcp::socket socket) {
    if (l->closed || ec == asio::error::operation_aborted) {
      return;
    }
    if (ec) {
      // Out of descriptors or a transient error: retry shortly instead of spinning.
      l->retry.expires_after(kAcceptRetryDelay);
      l->retry.async_wait([l](const boost::system::error_code& e) {
        if (!l->closed && !e) {
          l->owner->armAccept(l);
        }
      });
      return;
    }
    l->owner->onAccepted(*l, std::move(socket));
    l->owner->armAccept(l);
  });
}

void WorkerState::onAccepted(TcpListener& l, tcp::socket socket) {
  boost::system::error_code ec;
  if (stats.tcpOpen.fetch_add(1, std::memory_order_relaxed) >=
      static_cast<int64_t>(settings.maxConnections)) {
    stats.tcpOpen.fetch_sub(1, std::memory_order_relaxed);
    stats.tcpRejectedLimit.fetch_add(1, std::memory_order_relaxed);
    socket.close(ec);
    return;
  }
  auto remote = socket.remote_endpoint(ec);
  if (ec) {
    stats.tcpOpen.fetch_sub(1, std::memory_order_relaxed);
    socket.close(ec);
    return;
  }
  if (!connectionsPerIp.tryAdd(remote.address(), settings.maxConnectionsPerIp)) {
    stats.tcpOpen.fetch_sub(1, std::memory_order_relaxed);
    stats.tcpRejectedPerIp.fetch_add(1, std::memory_order_relaxed);
    socket.close(ec);
    return;
  }
  stats.tcpAccepted.fetch_add(1, std::memory_order_relaxed);
  socket.set_option(tcp::no_delay(true), ec);

  uint32_t seq = nextSeq;
  while (seq == 0 || connections.count(seq) != 0) {
    ++seq;
  }
  nextSeq = seq + 1;

  auto c = std::make_shared<TcpConnection>(*this, std::move(socket));
  c->source = Source{Protocol::kTcp, Endpoint{remote.address(), remote.port()}, l.local,
                     ConnectionId{static_cast<uint32_t>(worker.index()), seq}};
  c->capacity = std::min(kInitialTcpReadBuffer, settings.maxMessageSize + 1);
  c->buffer = std::make_unique_for_overwrite<char[]>(c->capacity);
  c->lastRead = steady_clock::now();
  connections.emplace(seq, c);
  armTimer(c, c->lastRead + settings.tcpIdleTimeout);
  armRead(c);
}

void WorkerState::armRead(const std::shared_ptr<TcpConnection>& c) {
  if (c->used == c->capacity) {
    // Framing says a message is incomplete and it may still fit: grow up to the limit + 1 (so
    // that a header block over the limit is seen as such).
    size_t limit = settings.maxMessageSize + 1;
    size_t grown = std::min(limit, c->capacity * 2);
    auto bigger = std::make_unique_for_overwrite<char[]>(grown);
    std::memcpy(bigger.get(), c->buffer.get(), c->used);
    c->buffer = std::move(bigger);
    c->capacity = grown;
  }
  c->socket.async_read_some(asio::buffer(c->buffer.get() + c->used, c->capacity - c->used),
                            [c](const boost::system::error_code& ec, size_t n) {
                              if (c->closed) {
                                return;
                              }
                              if (ec) {
                                c->owner->closeConnection(c);
                                return;
                              }
                              c->lastRead = steady_clock::now();
                              c->used += n;
                              c->owner->processStream(c);
                            });
}

void WorkerState::processStream(const std::shared_ptr<TcpConnection>& c) {
  size_t offset = 0;
  uint64_t messages = 0;
  beginBatch();
  while (!c->closed && !c->closing) {
    std::string_view data(c->buffer.get() + offset, c->used - offset);
    auto framed = sip::frameStream(data, settings.maxMessageSize);
    if (!framed) {
      reject(c, offset, framed.error().code);
      break;
    }
    const sip::Frame& f = framed->frame;
    if (f.kind == sip::Frame::Kind::kNeedMore) {
      break;
    }
    if (f.kind == sip::Frame::Kind::kKeepAlive) {
      if (framed->pong) {
        stats.tcpKeepAlives.fetch_add(1, std::memory_order_relaxed);
        queueWrite(c, "\r\n");
      }
      offset += f.length;
      continue;
    }
    ++messages;
    deliver(Packet{data.substr(0, f.length), c->source});
    offset += f.length;
  }
  if (messages) {
    stats.tcpReceived.fetch_add(messages, std::memory_order_relaxed);
  }
  endBatch();
  if (c->closed || c->closing) {
    return;
  }
  if (offset > 0) {
    std::memmove(c->buffer.get(), c->buffer.get() + offset, c->used - offset);
    c->used -= offset;
  }
  notePartial(c, offset > 0);
  if (c->used == c->capacity && c->capacity > settings.maxMessageSize) {
    reject(c, 0, Errc::kTooLarge);  // cannot happen with frameStream's limits; never spin
    return;
  }
  armRead(c);
}

void WorkerState::reject(const std::shared_ptr<TcpConnection>& c, size_t offset, Errc code) {
  const bool tooLarge = code == Errc::kTooLarge;
  (tooLarge ? stats.tcpOversize : stats.tcpMisframed).fetch_add(1, std::memory_order_relaxed);
  std::string reply = sip::buildUnframedResponse(
      std::string_view(c->buffer.get() + offset, c->used - offset), tooLarge ? 413 : 400);
  if (reply.empty()) {
    closeConnection(c);
    return;
  }
  c->closing = true;
  queueWrite(c, reply);
}

void WorkerState::notePartial(const std::shared_ptr<TcpConnection>& c, bool newMessage) {
  if (c->used == 0) {
    c->partial = false;
    return;
  }
  if (c->partial && !newMessage) {
    return;  // the same message goes on: its deadline stands
  }
  c->partial = true;
  c->partialSince = steady_clock::now();
  const auto deadline = c->partialSince + settings.tcpMessageTimeout;
  if (deadline < c->timerAt) {
    armTimer(c, deadline);
  }
}

steady_clock::time_point WorkerState::nextDeadline(const TcpConnection& c) const {
  const auto idle = c.lastRead + settings.tcpIdleTimeout;
  return c.partial ? std::min(idle, c.partialSince + settings.tcpMessageTimeout) : idle;
}

void WorkerState::armTimer(const std::shared_ptr<TcpConnection>& c, steady_clock::time_point at) {
  c->timerAt = at;
  c->timer.expires_at(at);
  c->timer.async_wait([c](const boost::system::error_code& ec) {
    if (c->closed || ec == asio::error::operation_aborted) {
      return;
    }
    c->owner->onTimer(c);
  });
}

void WorkerState::onTimer(const std::shared_ptr<TcpConnection>& c) {
  auto now = steady_clock::now();
  if (c->lingering) {
    if (now >= c->lingerUntil) {
      closeConnection(c);
    } else {
      armTimer(c, c->lingerUntil);
    }
    return;
  }
  if (c->partial && now >= c->partialSince + settings.tcpMessageTimeout) {
    stats.tcpClosedMessageTimeout.fetch_add(1, std::memory_order_relaxed);
    closeConnection(c);
    return;
  }
  if (now >= c->lastRead + settings.tcpIdleTimeout) {
    stats.tcpClosedIdle.fetch_add(1, std::memory_order_relaxed);
    closeConnection(c);
    return;
  }
  armTimer(c, nextDeadline(*c));  // reads moved the deadline since the timer was set
}

bool WorkerState::queueWrite(const std::shared_ptr<TcpConnection>& c, std::string_view data) {
  if (c->closed || c->lingering) {
    return false;
  }
  if (c->pending.size() + data.size() > settings.tcpMaxWriteQueue) {
    stats.tcpClosedWriteOverflow.fetch_add(1, std::memory_order_relaxed);
    closeConnection(c);
    return false;
  }
  c->pending.append(data);
  if (!c->writeInFlight) {
    startWrite(c);
  }
  return true;
}

void WorkerState::startWrite(const std::shared_ptr<TcpConnection>& c) {
  c->writing.swap(c->pending);  // both keep their capacity: no allocation in steady state
  c->pending.clear();
  c->writeInFlight = true;
  asio::async_write(c->socket, asio::buffer(c->writing),
                    [c](const boost::system::error_code& ec, size_t) {
                      if (c->closed) {
                        return;
                      }
                      c->writeInFlight = false;
                      c->writing.clear();
                      if (ec) {
                        c->owner->closeConnection(c);
                        return;
                      }
                      if (!c->pending.empty()) {
                        c->owner->startWrite(c);
                      } else if (c->closing) {
                        c->owner->startLinger(c);
                      }
                    });
}

void WorkerState::startLinger(const std::shared_ptr<TcpConnection>& c) {
  boost::system::error_code ec;
  c->socket.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    closeConnection(c);
    return;
  }
  c->lingering = true;
  c->lingerUntil = steady_clock::now() + kLingerTime;
  armTimer(c, c->lingerUntil);
  c->used = 0;
  armLingerRead(c);
}

void WorkerState::armLingerRead(const std::shared_ptr<TcpConnection>& c) {
  c->socket.async_read_some(asio::buffer(c->buffer.get(), c->capacity),
                            [c](const boost::system::error_code& ec, size_t) {
                              if (c->closed) {
                                return;
                              }
                              if (ec) {
                                c->owner->closeConnection(c);  // EOF: the peer has our reply
                                return;
                              }
                              c->owner->armLingerRead(c);
                            });
}

void WorkerState::closeConnection(std::shared_ptr<TcpConnection> c) {
  if (c->closed) {
    return;
  }
  c->closed = true;
  boost::system::error_code ec;
  c->socket.close(ec);
  c->timer.cancel();
  connections.erase(c->source.connection.seq);
  connectionsPerIp.remove(c->source.remote.ip);
  stats.tcpOpen.fetch_sub(1, std::memory_order_relaxed);
}

bool WorkerState::sendTcp(uint32_t seq, std::string_view data) {
  auto it = connections.find(seq);
  if (it == connections.end() || it->second->closing) {
    stats.tcpSendNoConnection.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (!queueWrite(it->second, data)) {
    return false;
  }
  stats.tcpSent.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void WorkerState::closeAll() {
  stopped = true;
  boost::system::error_code ec;
  for (auto& s : udp) {
    s->closed = true;
    if (s->egress) {
      // Another worker may have this fd in a send batch it has not flushed yet; closing it now
      // could let a new socket or file take the number before that flush.
      s->socket.cancel(ec);
      retiredEgress.push_back(s);
    } else {
      s->socket.close(ec);
    }
  }
  for (auto& l : tcp) {
    l->closed = true;
    l->acceptor.close(ec);
    l->retry.cancel();
  }
  std::vector<std::shared_ptr<TcpConnection>> open;
  open.reserve(connections.size());
  for (auto& [seq, c] : connections) {
    open.push_back(c);
  }
  for (auto& c : open) {
    closeConnection(c);
  }
  udp.clear();
  tcp.clear();
  udpByFamily[0] = udpByFamily[1] = nullptr;
  sendCount = 0;
  sendUsed = 0;
}

void WorkerState::closeEgress() {
  boost::system::error_code ec;
  for (auto& s : retiredEgress) {
    s->socket.close(ec);
  }
  retiredEgress.clear();
}

// ---- SipTransport -------------------------------------------------------------------------

std::shared_ptr<UdpSocket> SipTransport::Impl::openUdp(WorkerState& w, const ListenSpec& spec,
                                                       uint16_t port, bool listen) {
  auto s = std::make_shared<UdpSocket>(w, w.worker.io(), Endpoint{spec.endpoint.ip, port});
  s->egress = !listen;
  boost::system::error_code ec;
  udp::endpoint ep(spec.endpoint.ip, port);
  s->socket.open(ep.protocol(), ec);
  if (ec) {
    throwBindError(spec, ec);
  }
  w.udp.push_back(s);  // owned from here on, so that stop() closes it on failure too
  if (listen) {        // every worker binds the listen port (SO_REUSEPORT spreads the flows)
    s->socket.set_option(udp::socket::reuse_address(true), ec);
    setReusePort(s->socket.native_handle(), spec);
  }
  if (spec.endpoint.ip.is_v6()) {
    s->socket.set_option(asio::ip::v6_only(true), ec);
  }
  setBigBuffers(s->socket.native_handle());
  s->socket.non_blocking(true, ec);
  s->socket.bind(ep, ec);
  if (ec) {
    throwBindError(spec, ec);
  }
  if (port == 0) {
    s->local.port = s->socket.local_endpoint(ec).port();
  }
  return s;
}

void SipTransport::Impl::bindUdp(const ListenSpec& spec) {
  uint16_t port = spec.endpoint.port;
  const int family = spec.endpoint.ip.is_v6() ? 1 : 0;
  for (auto& w : workers) {
    auto s = openUdp(*w, spec, port, true);
    port = s->local.port;  // the first worker's, when the spec asked for any port
    if (w->udpByFamily[family] == nullptr) {
      w->udpByFamily[family] = s.get();
    }
    hasUdpFamily[family] = true;
  }
  bound.push_back(ListenSpec{Protocol::kUdp, Endpoint{spec.endpoint.ip, port}});
}

void SipTransport::Impl::bindEgress(const ListenSpec& spec) {
  const int family = spec.endpoint.ip.is_v6() ? 1 : 0;
  const size_t per = settings.egressPerWorker;
  egress.resize(workers.size() * per);
  for (size_t wi = 0; wi < workers.size(); ++wi) {
    for (size_t k = 0; k < per; ++k) {
      auto s = openUdp(*workers[wi], spec, 0, false);
      Egress& e = egress[wi * per + k];
      e.fd[family] = s->socket.native_handle();
      e.port[family] = s->local.port;
    }
  }
}

void SipTransport::Impl::bindTcp(const ListenSpec& spec) {
  uint16_t port = spec.endpoint.port;
  for (auto& w : workers) {
    auto l = std::make_shared<TcpListener>(*w, w->worker.io(), Endpoint{spec.endpoint.ip, port});
    boost::system::error_code ec;
    tcp::endpoint ep(spec.endpoint.ip, port);
    l->acceptor.open(ep.protocol(), ec);
    if (ec) {
      throwBindError(spec, ec);
    }
    w->tcp.push_back(l);
    l->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    setReusePort(l->acceptor.native_handle(), spec);
    if (spec.endpoint.ip.is_v6()) {
      l->acceptor.set_option(asio::ip::v6_only(true), ec);
    }
    l->acceptor.bind(ep, ec);
    if (ec) {
      throwBindError(spec, ec);
    }
    l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      throwBindError(spec, ec);
    }
    if (port == 0) {
      port = l->acceptor.local_endpoint(ec).port();
      l->local.port = port;
    }
  }
  bound.push_back(ListenSpec{Protocol::kTcp, Endpoint{spec.endpoint.ip, port}});
}

SipTransport::SipTransport(runtime::WorkerPool& pool, TransportSettings settings, Handler handler)
    : impl_(std::make_unique<Impl>(pool, std::move(settings), std::move(handler))) {}

SipTransport::~SipTransport() {
  stop();
}

void SipTransport::start() {
  Impl& m = *impl_;
  if (m.started.load() || m.stopped) {
    throw std::logic_error("SipTransport::start() called twice");
  }
  m.workers.reserve(m.pool.size());
  for (size_t i = 0; i < m.pool.size(); ++i) {
    m.workers.push_back(std::make_shared<WorkerState>(m.handler, m.stats, m.pool.at(i), m.settings,
                                                      m.connectionsPerIp));
  }
  bool egressFamily[2] = {false, false};
  for (const ListenSpec& spec : m.settings.listen) {
    switch (spec.protocol) {
      case Protocol::kUdp:
        m.bindUdp(spec);
        if (m.settings.egressPerWorker > 0 && !egressFamily[spec.endpoint.ip.is_v6() ? 1 : 0]) {
          egressFamily[spec.endpoint.ip.is_v6() ? 1 : 0] = true;
          m.bindEgress(spec);
        }
        break;
      case Protocol::kTcp:
        m.bindTcp(spec);
        break;
      default:
        throw std::runtime_error("cannot listen on " + spec.str() + ": transport " +
                                 std::string(protocolName(spec.protocol)) +
                                 " is not supported by this build");
    }
  }
  m.started.store(true, std::memory_order_release);
  for (auto& w : m.workers) {
    asio::post(w->worker.io(), [w] {
      if (w->stopped) {
        return;
      }
      for (auto& s : w->udp) {
        w->armUdp(s);
      }
      for (auto& l : w->tcp) {
        w->armAccept(l);
      }
    });
  }
}

void SipTransport::stop() {
  Impl& m = *impl_;
  if (m.stopped) {
    return;
  }
  m.stopped = true;
  m.started.store(false, std::memory_order_release);
  if (m.workers.empty()) {
    return;
  }
  if (!m.pool.running()) {
    for (auto& w : m.workers) {
      w->closeAll();
    }
    for (auto& w : m.workers) {
      w->closeEgress();
    }
    return;
  }
  // Each worker closes what it owns on its own thread; the egress sockets, which every worker
  // may send from, only once all workers are past that point (send() refuses from now on).
  WorkerState* self = m.current();
  for (void (WorkerState::*phase)() : {&WorkerState::closeAll, &WorkerState::closeEgress}) {
    std::vector<std::future<void>> done;
    for (auto& w : m.workers) {
      if (w.get() == self) {
        continue;
      }
      auto promise = std::make_shared<std::promise<void>>();
      done.push_back(promise->get_future());
      asio::post(w->worker.io(), [w, promise, phase] {
        ((*w).*phase)();
        promise->set_value();
      });
    }
    if (self != nullptr) {
      ((*self).*phase)();
    }
    for (auto& f : done) {
      f.wait();
    }
  }
}

const std::vector<ListenSpec>& SipTransport::bound() const {
  return impl_->bound;
}

const TransportStats& SipTransport::stats() const {
  return impl_->stats;
}

size_t SipTransport::egressCount() const {
  return impl_->egress.size();
}

std::optional<uint16_t> SipTransport::egressPort(size_t index, bool v6) const {
  if (index >= impl_->egress.size() || impl_->egress[index].port[v6 ? 1 : 0] == 0) {
    return std::nullopt;
  }
  return impl_->egress[index].port[v6 ? 1 : 0];
}

size_t SipTransport::egressWorker(size_t index) const {
  const size_t per = impl_->settings.egressPerWorker;
  return per == 0 ? 0 : index / per;
}

bool SipTransport::send(const Destination& to, std::string_view data) {
  Impl& m = *impl_;
  if (!m.started.load(std::memory_order_acquire)) {
    return false;
  }
  WorkerState* self = m.current();
  if (to.protocol == Protocol::kUdp) {
    const int fd = m.egressFd(to);
    if (fd == -2) {
      m.stats.udpSendErrors.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (self != nullptr) {
      return self->sendUdp(to.remote, data, fd);
    }
    if (!m.hasUdpFamily[to.remote.ip.is_v6() ? 1 : 0]) {
      return false;
    }
    auto w = m.workers[0];
    asio::post(w->worker.io(), [w, fd, remote = to.remote, bytes = std::string(data)] {
      if (!w->stopped) {
        w->sendUdp(remote, bytes, fd);
      }
    });
    return true;
  }
  if (to.protocol != Protocol::kTcp || !to.connection.valid() ||
      to.connection.worker >= m.workers.size()) {
    // No outbound connections yet, and no TLS/WS transport in this build.
    m.stats.tcpSendNoConnection.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  auto& owner = m.workers[to.connection.worker];
  if (owner.get() == self) {
    return self->sendTcp(to.connection.seq, data);
  }
  asio::post(owner->worker.io(), [w = owner, seq = to.connection.seq, bytes = std::string(data)] {
    if (!w->stopped) {
      w->sendTcp(seq, bytes);
    }
  });
  return true;
}

}  // namespace evosip::transport
