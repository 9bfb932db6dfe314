#include <future>
#include <stdexcept>
#include <string>

#include <boost/asio/post.hpp>

#include <evosip/transport/sip_transport.hpp>

#include "transport_impl.hpp"
#include "worker_state.hpp"

namespace evosip::transport {

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
    m.workers.push_back(std::make_shared<WorkerState>(m.handler, m.sendFailure, m.stats,
                                                      m.pool.at(i), m.settings, m.connectionsPerIp,
                                                      m.outboundPerIp));
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
      w->startUdp();
      for (auto& l : w->tcp) {
        w->armAccept(l);
      }
    });
  }
}

void SipTransport::onSendFailure(SendFailureHandler handler) {
  if (impl_->started.load() || impl_->stopped) {
    throw std::logic_error("SipTransport::onSendFailure() after start()");
  }
  impl_->sendFailure = std::move(handler);
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
  if (to.protocol == Protocol::kTcp && !to.connection.valid()) {
    return m.sendTcpTo(self, to.remote, data);
  }
  if (to.protocol != Protocol::kTcp || to.connection.worker >= m.workers.size()) {
    // No TLS/WS transport in this build.
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

bool SipTransport::Impl::sendTcpTo(WorkerState* self, const Endpoint& remote,
                                   std::string_view data) {
  if (self != nullptr) {
    return self->sendTcpTo(remote, data);
  }
  // Not on a worker: the worker of the remote address, so that such sends share a connection.
  auto w = workers[EndpointHash()(remote) % workers.size()];
  asio::post(w->worker.io(), [w, remote, bytes = std::string(data)] {
    if (!w->stopped) {
      w->sendTcpTo(remote, bytes);
    }
  });
  return true;
}

}  // namespace evosip::transport
