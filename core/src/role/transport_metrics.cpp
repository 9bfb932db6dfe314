#include <memory>

#include <evosip/metrics/stats.hpp>
#include <evosip/role/transport_metrics.hpp>

namespace evosip::role {

void exportTransportMetrics(metrics::Registry& registry, const transport::SipTransport& transport) {
  auto& received =
      registry.counterFamily("evosip_sip_received_total", "SIP messages received, by transport");
  auto& sent = registry.counterFamily("evosip_sip_sent_total", "SIP messages sent, by transport");
  auto& errors =
      registry.counterFamily("evosip_sip_transport_errors_total",
                             "Transport-level drops and errors, by transport and reason");
  auto& open = registry.gaugeFamily("evosip_sip_tcp_connections", "Open TCP connections");
  struct Mirrors {
    metrics::CounterMirror udpIn, udpOut, tcpIn, tcpOut, udpSendErr, udpOversize, tcpLimit, tcpIdle,
        tcpMisframed, tcpOversize, tcpNoConn, tcpAccepted, tcpKeepAlive, tcpPerIp, tcpSlow,
        tcpConnected, tcpConnectFailed, tcpOutboundLimit, tcpConnectQueueFull;
  };
  auto m = std::make_shared<Mirrors>(Mirrors{
      metrics::CounterMirror(received.Add({{"transport", "udp"}})),
      metrics::CounterMirror(sent.Add({{"transport", "udp"}})),
      metrics::CounterMirror(received.Add({{"transport", "tcp"}})),
      metrics::CounterMirror(sent.Add({{"transport", "tcp"}})),
      metrics::CounterMirror(errors.Add({{"transport", "udp"}, {"reason", "send_error"}})),
      metrics::CounterMirror(errors.Add({{"transport", "udp"}, {"reason", "oversize"}})),
      metrics::CounterMirror(errors.Add({{"transport", "tcp"}, {"reason", "connection_limit"}})),
      metrics::CounterMirror(errors.Add({{"transport", "tcp"}, {"reason", "idle_timeout"}})),
      metrics::CounterMirror(errors.Add({{"transport", "tcp"}, {"reason", "misframed"}})),
      metrics::CounterMirror(errors.Add({{"transport", "tcp"}, {"reason", "oversize"}})),
      metrics::CounterMirror(errors.Add({{"transport", "tcp"}, {"reason", "no_connection"}})),
      metrics::CounterMirror(
          registry.counterFamily("evosip_sip_tcp_accepted_total", "TCP connections accepted")
              .Add({})),
      metrics::CounterMirror(registry
                                 .counterFamily("evosip_sip_tcp_keepalives_total",
                                                "RFC 5626 CRLF keep-alives answered")
                                 .Add({})),
      metrics::CounterMirror(errors.Add({{"transport", "tcp"}, {"reason", "per_ip_limit"}})),
      metrics::CounterMirror(errors.Add({{"transport", "tcp"}, {"reason", "message_timeout"}})),
      metrics::CounterMirror(registry
                                 .counterFamily("evosip_sip_tcp_connected_total",
                                                "TCP connections opened to send (connects that "
                                                "succeeded)")
                                 .Add({})),
      metrics::CounterMirror(errors.Add({{"transport", "tcp"}, {"reason", "connect_failed"}})),
      metrics::CounterMirror(errors.Add({{"transport", "tcp"}, {"reason", "outbound_limit"}})),
      metrics::CounterMirror(errors.Add({{"transport", "tcp"}, {"reason", "connect_queue_full"}})),
  });
  auto& openGauge = open.Add({});
  auto& outboundGauge =
      registry
          .gaugeFamily("evosip_sip_tcp_outbound_connections",
                       "TCP connections this process opened to send, connecting or up")
          .Add({});
  registry.addCollectHook([m, &transport, &openGauge, &outboundGauge] {
    const auto& s = transport.stats();
    m->udpIn.set(static_cast<double>(s.udpReceived.load()));
    m->udpOut.set(static_cast<double>(s.udpSent.load()));
    m->tcpIn.set(static_cast<double>(s.tcpReceived.load()));
    m->tcpOut.set(static_cast<double>(s.tcpSent.load()));
    m->udpSendErr.set(static_cast<double>(s.udpSendErrors.load()));
    m->udpOversize.set(static_cast<double>(s.udpDroppedOversize.load()));
    m->tcpLimit.set(static_cast<double>(s.tcpRejectedLimit.load()));
    m->tcpIdle.set(static_cast<double>(s.tcpClosedIdle.load()));
    m->tcpMisframed.set(static_cast<double>(s.tcpMisframed.load()));
    m->tcpOversize.set(static_cast<double>(s.tcpOversize.load()));
    m->tcpNoConn.set(static_cast<double>(s.tcpSendNoConnection.load()));
    m->tcpAccepted.set(static_cast<double>(s.tcpAccepted.load()));
    m->tcpKeepAlive.set(static_cast<double>(s.tcpKeepAlives.load()));
    m->tcpPerIp.set(static_cast<double>(s.tcpRejectedPerIp.load()));
    m->tcpSlow.set(static_cast<double>(s.tcpClosedMessageTimeout.load()));
    m->tcpConnected.set(static_cast<double>(s.tcpConnected.load()));
    m->tcpConnectFailed.set(static_cast<double>(s.tcpConnectFailed.load()));
    m->tcpOutboundLimit.set(static_cast<double>(s.tcpOutboundRejectedLimit.load()));
    m->tcpConnectQueueFull.set(static_cast<double>(s.tcpConnectQueueFull.load()));
    openGauge.Set(static_cast<double>(s.tcpOpen.load()));
    outboundGauge.Set(static_cast<double>(s.tcpOutboundOpen.load()));
  });
}

}  // namespace evosip::role
