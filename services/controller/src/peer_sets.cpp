#include <algorithm>

#include <evosip/controller/peer_sets.hpp>

namespace evosip::controller {

const char* layerName(Layer layer) {
  static const char* const kNames[kLayers] = {"edge", "router", "app", "media", "api"};
  return kNames[static_cast<size_t>(layer)];
}

std::string hostPort(const std::string& address, uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

namespace {

uint16_t portNamed(const EndpointSlice& slice, const std::string& name) {
  auto it = slice.ports.find(name);
  return it != slice.ports.end() ? it->second : 0;
}

// A peer as the receiving role writes it.
enum class Form { kSip, kUdp, kControl };

std::optional<std::string> targetOf(const Instance& i, Form form) {
  switch (form) {
    case Form::kSip:
      return i.sip != 0 ? std::optional("sip:" + hostPort(i.address, i.sip)) : std::nullopt;
    case Form::kUdp:
      return i.ng != 0 ? std::optional("udp:" + hostPort(i.address, i.ng)) : std::nullopt;
    case Form::kControl:
      return i.control != 0 ? std::optional(hostPort(i.address, i.control)) : std::nullopt;
  }
  return std::nullopt;
}

// The set named `name` from the instances of `source`; nullopt when none serves.
std::optional<PeerSet> setOf(const Platform& platform, Layer source, const std::string& name,
                             Form form, bool markDraining) {
  const auto& instances = platform[static_cast<size_t>(source)];
  if (!instances) {
    return std::nullopt;
  }
  PeerSet set{name, {}, {}};
  for (const Instance& i : *instances) {
    const bool active = i.ready && !i.terminating;
    const bool draining = i.terminating && i.serving;
    auto target = targetOf(i, form);
    if (!target || (!active && !draining)) {
      continue;
    }
    if (draining && markDraining) {
      set.draining.push_back(*target);
    }
    set.targets.push_back(std::move(*target));
  }
  if (set.targets.size() == set.draining.size() && markDraining) {
    return std::nullopt;  // nothing takes new work: keep the last set that had such a target
  }
  if (set.targets.empty()) {
    return std::nullopt;
  }
  std::sort(set.targets.begin(), set.targets.end());
  std::sort(set.draining.begin(), set.draining.end());
  return set;
}

}  // namespace

std::vector<Instance> instancesOf(const std::map<std::string, EndpointSlice>& slices,
                                  const PortNames& names) {
  std::vector<Instance> out;
  for (const auto& [name, slice] : slices) {
    for (const SliceEndpoint& e : slice.endpoints) {
      if (e.addresses.empty()) {
        continue;
      }
      out.push_back(Instance{e.addresses.front(), portNamed(slice, names.control),
                             portNamed(slice, names.sip), portNamed(slice, names.ng), e.ready,
                             e.serving, e.terminating});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Instance& a, const Instance& b) { return a.address < b.address; });
  out.erase(
      std::unique(out.begin(), out.end(),
                  [](const Instance& a, const Instance& b) { return a.address == b.address; }),
      out.end());
  return out;
}

std::vector<Assignment> assignments(const Platform& platform) {
  struct Rule {
    Layer receiver;
    Layer source;
    const char* set;
    Form form;
    bool markDraining;
  };
  static const Rule kRules[] = {
      {Layer::kEdge, Layer::kRouter, "routers", Form::kSip, true},
      {Layer::kRouter, Layer::kApp, "apps", Form::kSip, true},
      {Layer::kRouter, Layer::kMedia, "media", Form::kUdp, true},
      {Layer::kApi, Layer::kRouter, "routers", Form::kControl, false},
  };
  std::vector<Assignment> out;
  for (Layer receiver : {Layer::kEdge, Layer::kRouter, Layer::kApi}) {
    std::vector<PeerSet> sets;
    for (const Rule& r : kRules) {
      if (r.receiver != receiver) {
        continue;
      }
      if (auto set = setOf(platform, r.source, r.set, r.form, r.markDraining)) {
        sets.push_back(std::move(*set));
      }
    }
    const auto& instances = platform[static_cast<size_t>(receiver)];
    if (sets.empty() || !instances) {
      continue;
    }
    for (const Instance& i : *instances) {
      if (i.control != 0) {
        out.push_back(Assignment{hostPort(i.address, i.control), receiver, sets});
      }
    }
  }
  return out;
}

}  // namespace evosip::controller
