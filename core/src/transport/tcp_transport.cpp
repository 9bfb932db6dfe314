// SIP over TCP: one SO_REUSEPORT acceptor per worker; a connection is owned by the worker that
// accepted it (or opened it: tcp_connect.cpp) and lives through reads, a write queue, idle and
// message timers and a linger after a final error reply.

#include <algorithm>
#include <cstring>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/write.hpp>

#include "native_socket.hpp"
#include "transport_impl.hpp"
#include "worker_state.hpp"

namespace evosip::transport {
namespace {

constexpr size_t kInitialTcpReadBuffer = 4096;
// After a 400/413 reply: how long to keep draining the peer's bytes so that closing does not
// reset the connection before the peer has read the reply.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(50);

}  // namespace

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

  const uint32_t seq = newSeq();
  auto c = std::make_shared<TcpConnection>(*this, std::move(socket));
  c->source = Source{Protocol::kTcp, Endpoint{remote.address(), remote.port()}, l.local,
                     ConnectionId{static_cast<uint32_t>(worker.index()), seq}};
  c->capacity = std::min(kInitialTcpReadBuffer, settings.maxMessageSize + 1);
  c->buffer = std::make_unique_for_overwrite<char[]>(c->capacity);
  c->lastRead = steady_clock::now();
  connections.emplace(seq, c);
  byRemote[c->source.remote] = seq;
  armTimer(c, c->lastRead + settings.tcpIdleTimeout);
  armRead(c);
}

uint32_t WorkerState::newSeq() {
  uint32_t seq = nextSeq;
  while (seq == 0 || connections.count(seq) != 0) {
    ++seq;
  }
  nextSeq = seq + 1;
  return seq;
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
  if (c->connecting) {
    failConnect(c);  // the only deadline armed while connecting: the connect's
    return;
  }
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
  if (c->connecting) {
    // Held until the connection is up; a sender that outruns the connect is refused, not the
    // messages already queued.
    if (c->pending.size() + data.size() > settings.tcpConnectQueue) {
      stats.tcpConnectQueueFull.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    c->pending.append(data);
    return true;
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
  const uint32_t seq = c->source.connection.seq;
  connections.erase(seq);
  if (auto it = byRemote.find(c->source.remote); it != byRemote.end() && it->second == seq) {
    byRemote.erase(it);
  }
  if (c->outbound) {
    --outboundOpen;
    outboundPerIp.remove(c->source.remote.ip);
    stats.tcpOutboundOpen.fetch_sub(1, std::memory_order_relaxed);
  } else {
    connectionsPerIp.remove(c->source.remote.ip);
  }
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
    if (settings.freeBind) {
      setFreeBind(l->acceptor.native_handle(), spec);
    }
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

}  // namespace evosip::transport
