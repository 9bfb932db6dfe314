#pragma once
// The platform without the Kubernetes API: each role's instances come from DNS records of its
// headless Service name (or any DNS name). For every port an instance needs, the SRV records
// `_PORTNAME._udp.NAME` (sip, ng) or `_PORTNAME._tcp.NAME` (control) give each pod's address and
// port, as Kubernetes DNS publishes them for a headless Service's named ports; a name without
// them gives its A/AAAA records (or hosts-file entries) with the ports of DnsSettings. Each name is
// looked up again when its TTL runs out (transport::Resolver, on its own thread); a failed lookup
// keeps what was known; a name that does not exist (no instance) gives an empty layer.

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <evosip/controller/controller_service.hpp>
#include <evosip/controller/peer_sets.hpp>
#include <evosip/transport/resolver.hpp>

namespace evosip::controller {

class DnsSource {
 public:
  // onChange runs on io after an answer changed.
  DnsSource(boost::asio::io_context& io, std::array<std::string, kLayers> names,
            DnsSettings settings, PortNames ports, std::function<void()> onChange);

  // Starts the lookups.
  void start();
  // nullopt until every lookup of the layer was answered once (or when the layer has no name).
  std::optional<std::vector<Instance>> instances(Layer layer) const;

 private:
  // The lookups of a layer: which port each gives.
  struct Lookup {
    transport::DnsQuery query;
    uint16_t Instance::*port;
  };
  std::vector<Lookup> lookupsOf(size_t layer) const;

  boost::asio::io_context& io_;
  std::array<std::string, kLayers> names_;
  DnsSettings settings_;
  PortNames ports_;
  std::function<void()> onChange_;
  std::unique_ptr<transport::Resolver> resolver_;
};

}  // namespace evosip::controller
