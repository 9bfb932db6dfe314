#pragma once
// SipTransport's state: the settings, the shared counters and one WorkerState per worker.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <evosip/transport/sip_transport.hpp>

#include "connections_per_ip.hpp"
#include "worker_state.hpp"

namespace evosip::transport {

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
  SendFailureHandler sendFailure;
  TransportStats stats;
  ConnectionsPerIp connectionsPerIp;
  ConnectionsPerIp outboundPerIp;
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
  // A TCP send without a connection id (WorkerState::sendTcpTo), from any thread.
  bool sendTcpTo(WorkerState* self, const Endpoint& remote, std::string_view data);
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

}  // namespace evosip::transport
