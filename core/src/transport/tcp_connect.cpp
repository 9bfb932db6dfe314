// Outbound TCP (connect on send, as RFC 3261 18.1.1 asks of a client): a send without a
// connection id goes over the sending worker's connection to that address, or over one the
// worker opens now. The connect is non-blocking with a deadline; what is sent meanwhile waits in
// the connection's queue (bounded). Once up, the connection is read, timed out and kept alive as
// an accepted one. Bounds: connections per worker, per remote address over all workers, and the
// process-wide maxConnections, so that next hops named by strangers cannot open connections
// without limit.

#include <cstdio>
#include <exception>

#include "worker_state.hpp"

namespace evosip::transport {
namespace {

constexpr size_t kInitialReadBuffer = 4096;

}  // namespace

bool WorkerState::sendTcpTo(const Endpoint& remote, std::string_view data) {
  std::shared_ptr<TcpConnection> c;
  if (auto it = byRemote.find(remote); it != byRemote.end()) {
    if (auto found = connections.find(it->second); found != connections.end()) {
      c = found->second;
    }
  }
  if (c && (c->closing || c->lingering)) {
    stats.tcpSendNoConnection.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (!c) {
    c = openConnection(remote);
    if (!c) {
      return false;
    }
  }
  if (!queueWrite(c, data)) {
    return false;
  }
  stats.tcpSent.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::shared_ptr<TcpConnection> WorkerState::openConnection(const Endpoint& remote) {
  auto refuse = [this] {
    stats.tcpOutboundRejectedLimit.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  };
  if (outboundOpen >= settings.maxOutboundPerWorker || remote.port == 0 ||
      remote.ip.is_unspecified() || remote.ip.is_multicast()) {
    return refuse();
  }
  if (stats.tcpOpen.fetch_add(1, std::memory_order_relaxed) >=
      static_cast<int64_t>(settings.maxConnections)) {
    stats.tcpOpen.fetch_sub(1, std::memory_order_relaxed);
    return refuse();
  }
  if (!outboundPerIp.tryAdd(remote.ip, settings.maxOutboundPerRemote)) {
    stats.tcpOpen.fetch_sub(1, std::memory_order_relaxed);
    return refuse();
  }
  boost::system::error_code ec;
  tcp::socket socket(worker.io());
  socket.open(remote.ip.is_v6() ? tcp::v6() : tcp::v4(), ec);
  if (ec) {
    // Out of descriptors: as a failed connect, at once.
    outboundPerIp.remove(remote.ip);
    stats.tcpOpen.fetch_sub(1, std::memory_order_relaxed);
    stats.tcpConnectFailed.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  socket.set_option(tcp::no_delay(true), ec);
  ++outboundOpen;
  stats.tcpOutboundOpen.fetch_add(1, std::memory_order_relaxed);

  const uint32_t seq = newSeq();
  auto c = std::make_shared<TcpConnection>(*this, std::move(socket));
  c->outbound = true;
  c->connecting = true;
  c->source = Source{Protocol::kTcp, remote, Endpoint{},
                     ConnectionId{static_cast<uint32_t>(worker.index()), seq}};
  connections.emplace(seq, c);
  byRemote[remote] = seq;
  armTimer(c, steady_clock::now() + settings.tcpConnectTimeout);
  c->socket.async_connect(tcp::endpoint(remote.ip, remote.port),
                          [c](const boost::system::error_code& e) {
                            if (!c->closed) {
                              c->owner->onConnected(c, e);
                            }
                          });
  return c;
}

void WorkerState::onConnected(const std::shared_ptr<TcpConnection>& c,
                              const boost::system::error_code& ec) {
  if (ec) {
    failConnect(c);
    return;
  }
  c->connecting = false;
  stats.tcpConnected.fetch_add(1, std::memory_order_relaxed);
  boost::system::error_code e;
  if (auto local = c->socket.local_endpoint(e); !e) {
    c->source.local = Endpoint{local.address(), local.port()};
  }
  c->capacity = std::min(kInitialReadBuffer, settings.maxMessageSize + 1);
  c->buffer = std::make_unique_for_overwrite<char[]>(c->capacity);
  c->lastRead = steady_clock::now();
  armTimer(c, c->lastRead + settings.tcpIdleTimeout);
  armRead(c);
  if (!c->pending.empty() && !c->writeInFlight) {
    startWrite(c);
  }
}

void WorkerState::failConnect(const std::shared_ptr<TcpConnection>& c) {
  stats.tcpConnectFailed.fetch_add(1, std::memory_order_relaxed);
  const Destination to{Protocol::kTcp, c->source.remote, {}};
  closeConnection(c);
  if (!sendFailure || stopped) {
    return;
  }
  try {
    sendFailure(worker, to);
  } catch (const std::exception& e) {
    stats.handlerExceptions.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "transport: send failure handler threw for %s: %s\n",
                 to.remote.str().c_str(), e.what());
  }
}

}  // namespace evosip::transport
