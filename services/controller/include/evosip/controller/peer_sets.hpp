#pragma once
// What each instance of the platform must be told: from the endpoints of every role's Service,
// the peer sets to push with dispatcher.set (edges get the routers, routers get the apps and the
// media relays, the api gets the routers' control addresses). Pure functions of the observed
// state: no I/O, no clock.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <evosip/controller/kube_objects.hpp>

namespace evosip::controller {

enum class Layer { kEdge, kRouter, kApp, kMedia, kApi };
inline constexpr size_t kLayers = 5;
const char* layerName(Layer layer);

struct PortNames {
  std::string control = "control";
  std::string sip = "sip";
  std::string ng = "ng";
};

// One instance (pod) of a layer: its first address and named ports (0 = the slice names none).
struct Instance {
  std::string address;
  uint16_t control = 0;
  uint16_t sip = 0;
  uint16_t ng = 0;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
};

// The observed platform: per layer, its instances; nullopt until the layer was listed once (a
// layer not known yet is never pushed as an empty set).
using Platform = std::array<std::optional<std::vector<Instance>>, kLayers>;

// The instances of one Service from its EndpointSlices (any number), sorted by address.
std::vector<Instance> instancesOf(const std::map<std::string, EndpointSlice>& slices,
                                  const PortNames& names);

// One dispatcher.set call: the set's name, its targets (sorted) and the targets among them that
// drain (terminating but still serving): chosen only when every other target drains too.
struct PeerSet {
  std::string name;
  std::vector<std::string> targets;
  std::vector<std::string> draining;
  bool operator==(const PeerSet&) const = default;
};

// The sets one instance must hold, addressed to its control server "HOST:PORT".
struct Assignment {
  std::string control;
  Layer layer = Layer::kEdge;
  std::vector<PeerSet> sets;
};

// Every assignment of the platform. A set whose source layer is unknown or has no serving
// instance is left out (the instance keeps what it has).
std::vector<Assignment> assignments(const Platform& platform);

// "sip:10.0.0.5:5060", "sip:[fd00::5]:5060"; "udp:..." for ng addresses; "HOST:PORT" for control.
std::string hostPort(const std::string& address, uint16_t port);

}  // namespace evosip::controller
