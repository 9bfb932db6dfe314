#pragma once
// The SIP transport's counters as evosip_sip_* metrics, the same in every role that speaks SIP.

#include <evosip/metrics/metrics.hpp>
#include <evosip/transport/sip_transport.hpp>

namespace evosip::role {

// Exposes the transport counters as evosip_sip_* metrics (refreshed at every scrape).
void exportTransportMetrics(metrics::Registry& registry, const transport::SipTransport& transport);

}  // namespace evosip::role
