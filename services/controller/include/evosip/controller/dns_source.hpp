#pragma once
// The platform without the Kubernetes API: each role's instances are the A/AAAA records of its
// headless Service name (or any DNS name), re-resolved every interval; the ports are the same
// for every instance (DnsSettings). A failed resolution keeps what was known; a name that does
// not exist (no instance) gives an empty layer.

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <evosip/controller/controller_service.hpp>
#include <evosip/controller/peer_sets.hpp>

namespace evosip::controller {

class DnsSource {
 public:
  DnsSource(boost::asio::io_context& io, std::array<std::string, kLayers> names,
            DnsSettings settings, std::function<void()> onChange);

  // Starts resolving on the io_context until it stops.
  void start();
  // nullopt until the name was resolved once (or when the layer has no name).
  std::optional<std::vector<Instance>> instances(Layer layer) const;

 private:
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<bool> resolve(size_t layer);

  boost::asio::io_context& io_;
  std::array<std::string, kLayers> names_;
  DnsSettings settings_;
  std::function<void()> onChange_;
  std::array<std::optional<std::vector<Instance>>, kLayers> known_;
};

}  // namespace evosip::controller
