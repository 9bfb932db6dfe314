#include "worker_state.hpp"

#include <cstdio>
#include <exception>

namespace evosip::transport {

WorkerState::WorkerState(const SipTransport::Handler& h, const SipTransport::SendFailureHandler& f,
                         TransportStats& st, runtime::Worker& w, const TransportSettings& s,
                         ConnectionsPerIp& perIp, ConnectionsPerIp& outboundPerIp)
    : handler(h),
      sendFailure(f),
      stats(st),
      settings(s),
      connectionsPerIp(perIp),
      outboundPerIp(outboundPerIp),
      worker(w) {
  allocateUdpBatches();
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

void WorkerState::closeAll() {
  stopped = true;
  if (udpRing) {
    udpRing->close();  // receives cancelled before the sockets close
  }
  // The epoll instance is gone when the pool stopped first (its registrations with it).
  const bool onEpoll = udpEpoll != nullptr && runtime::WorkerEpoll::current() == udpEpoll;
  boost::system::error_code ec;
  for (auto& s : udp) {
    if (s->epollWatch != 0 && onEpoll) {
      udpEpoll->unwatch(s->epollWatch);
    }
    s->epollWatch = 0;
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

}  // namespace evosip::transport
