#include <algorithm>

#include <boost/asio/post.hpp>

#include <evosip/controller/dns_source.hpp>

namespace evosip::controller {

namespace asio = boost::asio;

DnsSource::DnsSource(asio::io_context& io, std::array<std::string, kLayers> names,
                     DnsSettings settings, PortNames ports, std::function<void()> onChange)
    : io_(io),
      names_(std::move(names)),
      settings_(std::move(settings)),
      ports_(std::move(ports)),
      onChange_(std::move(onChange)) {}

std::vector<DnsSource::Lookup> DnsSource::lookupsOf(size_t layer) const {
  const std::string& name = names_[layer];
  if (name.empty()) {
    return {};
  }
  auto query = [&name](uint16_t port, const std::string& portName, const char* proto) {
    return transport::DnsQuery{name, port, "_" + portName + "." + proto};
  };
  // The control port of every instance (the controller pushes to it, the api reaches routers
  // there); the SIP port of routers and apps (next hops); the ng port of relays.
  std::vector<Lookup> out{
      {query(settings_.controlPort, ports_.control, "_tcp"), &Instance::control}};
  switch (Layer(layer)) {
    case Layer::kRouter:
    case Layer::kApp:
      out.push_back({query(settings_.sipPort, ports_.sip, "_udp"), &Instance::sip});
      break;
    case Layer::kMedia:
      out.push_back({query(settings_.ngPort, ports_.ng, "_udp"), &Instance::ng});
      break;
    default:
      break;
  }
  return out;
}

void DnsSource::start() {
  resolver_ = std::make_unique<transport::Resolver>(
      settings_.resolver, [this](const transport::DnsQuery&) { asio::post(io_, onChange_); });
  std::vector<transport::DnsQuery> wanted;
  for (size_t i = 0; i < kLayers; ++i) {
    for (const auto& lookup : lookupsOf(i)) {
      wanted.push_back(lookup.query);
    }
  }
  resolver_->setWanted(wanted);
}

std::optional<std::vector<Instance>> DnsSource::instances(Layer layer) const {
  const auto lookups = lookupsOf(static_cast<size_t>(layer));
  if (lookups.empty() || !resolver_) {
    return std::nullopt;
  }
  std::vector<Instance> found;
  for (const auto& lookup : lookups) {
    auto known = resolver_->get(lookup.query);
    if (!known || !known->succeeded) {
      return std::nullopt;
    }
    for (const auto& hop : known->hops) {
      const std::string address = hop.endpoint.ip.to_string();
      auto it = std::find_if(found.begin(), found.end(),
                             [&](const Instance& i) { return i.address == address; });
      if (it == found.end()) {
        Instance fresh;
        fresh.address = address;
        fresh.control = settings_.controlPort;
        fresh.sip = settings_.sipPort;
        fresh.ng = settings_.ngPort;
        found.push_back(std::move(fresh));
        it = found.end() - 1;
      }
      (*it).*lookup.port = hop.endpoint.port;
    }
  }
  std::sort(found.begin(), found.end(),
            [](const Instance& a, const Instance& b) { return a.address < b.address; });
  return found;
}

}  // namespace evosip::controller
