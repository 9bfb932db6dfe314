#pragma once
// The sockets and connections one worker owns, and the steps that run on them. Touched only on
// that worker's thread. UDP steps are in udp_transport.cpp, TCP steps in tcp_transport.cpp, the
// cutting of a TCP byte stream into messages in stream_framing.cpp.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <evosip/base/result.hpp>
#include <evosip/runtime/worker_epoll.hpp>
#include <evosip/transport/sip_transport.hpp>

#include "connections_per_ip.hpp"
#include "udp_ring.hpp"

namespace evosip::transport {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using std::chrono::steady_clock;

struct WorkerState;

struct UdpSocket {
  UdpSocket(WorkerState& o, asio::io_context& io, const Endpoint& l)
      : owner(&o), socket(io), local(l) {}
  WorkerState* owner;  // valid while !closed
  udp::socket socket;
  Endpoint local;
  bool closed = false;
  bool egress = false;    // other workers send from it too (SipTransport::Impl::egress)
  uint32_t ringSlot = 0;  // UdpRing: the socket's slot and the generation of its receive
  uint16_t ringGen = 0;
  uint64_t epollWatch = 0;  // its runtime::WorkerEpoll watch (0: none)
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

struct EndpointHash {
  size_t operator()(const Endpoint& e) const {
    return std::hash<asio::ip::address>()(e.ip) * 31 + e.port;
  }
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
  bool outbound = false;    // opened by this worker to send (counted in its outbound bound)
  bool connecting = false;  // outbound, not up yet: `pending` waits, the timer is the connect's
  bool partial = false;     // bytes of an incomplete message are buffered, since partialSince
  steady_clock::time_point lastRead;
  steady_clock::time_point partialSince;
  steady_clock::time_point timerAt;  // when the armed timer fires
  steady_clock::time_point lingerUntil;
};

// Everything one worker owns. Touched only on that worker's thread (or by start()/stop() while
// no thread runs the worker).
struct WorkerState {
  WorkerState(const SipTransport::Handler& h, const SipTransport::SendFailureHandler& f,
              TransportStats& st, runtime::Worker& w, const TransportSettings& s,
              ConnectionsPerIp& perIp, ConnectionsPerIp& outboundPerIp);

  const SipTransport::Handler& handler;  // these six are valid while !stopped
  const SipTransport::SendFailureHandler& sendFailure;
  TransportStats& stats;
  const TransportSettings& settings;
  ConnectionsPerIp& connectionsPerIp;  // accepted connections by source address
  ConnectionsPerIp& outboundPerIp;     // opened connections by remote address
  runtime::Worker& worker;
  bool stopped = false;

  std::vector<std::shared_ptr<UdpSocket>> udp;
  // Egress sockets after closeAll(): receiving stopped, the fd still open until closeEgress(),
  // once no worker can be in the middle of a send from it.
  std::vector<std::shared_ptr<UdpSocket>> retiredEgress;
  UdpSocket* udpByFamily[2] = {nullptr, nullptr};  // first socket of each family: v4, v6
  std::vector<std::shared_ptr<TcpListener>> tcp;
  std::unordered_map<uint32_t, std::shared_ptr<TcpConnection>> connections;
  // The connection a send without a connection id uses for a remote address: accepted from it
  // or opened to it by this worker.
  std::unordered_map<Endpoint, uint32_t, EndpointHash> byRemote;
  size_t outboundOpen = 0;  // connections this worker opened, connecting or up
  uint32_t nextSeq = 1;

  // recvmmsg batch: preallocated, reused for every socket of this worker.
  std::vector<mmsghdr> recvMsgs;
  std::vector<iovec> recvIov;
  std::vector<sockaddr_storage> recvAddrs;
  std::unique_ptr<char[]> recvBuffer;

  // The io_uring path when the worker waits in a ring (runtime::WorkerRing), else nullptr.
  std::unique_ptr<UdpRing> udpRing;
  // Else the epoll instance the worker waits in, where the UDP sockets are registered once
  // (runtime::WorkerEpoll); nullptr: each socket waits through the io_context's reactor.
  runtime::WorkerEpoll* udpEpoll = nullptr;

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

  // Hands one message to the role's handler; a handler that throws is counted, not fatal.
  void deliver(const Packet& packet);

  // UDP (udp_transport.cpp). startUdp picks the path (io_uring or epoll) and arms every socket.
  void startUdp();
  void allocateUdpBatches();
  void armUdp(const std::shared_ptr<UdpSocket>& s);
  void drainUdp(const std::shared_ptr<UdpSocket>& s);
  // Delivers the n datagrams of the last recvmmsg; false when s was closed meanwhile.
  bool deliverDatagrams(const std::shared_ptr<UdpSocket>& s, int n);
  // fd < 0: this worker's listen socket of the family.
  bool sendUdp(const Endpoint& to, std::string_view data, int fd = -1);
  void flushSends();
  void beginBatch() { ++batchDepth; }
  void endBatch() {
    if (--batchDepth == 0 && sendCount > 0) {
      flushSends();
    }
  }

  // TCP (tcp_transport.cpp); processStream, reject and notePartial in stream_framing.cpp.
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
  uint32_t newSeq();
  // Outbound TCP (tcp_connect.cpp): a send to a remote address over this worker's connection to
  // it, opened now when there is none and the bounds allow one.
  bool sendTcpTo(const Endpoint& remote, std::string_view data);
  std::shared_ptr<TcpConnection> openConnection(const Endpoint& remote);
  void onConnected(const std::shared_ptr<TcpConnection>& c, const boost::system::error_code& ec);
  // The connect failed or timed out: closed, and the sender told (SendFailureHandler).
  void failConnect(const std::shared_ptr<TcpConnection>& c);

  // Shutdown, in two phases (SipTransport::stop).
  void closeAll();
  void closeEgress();
};

}  // namespace evosip::transport
