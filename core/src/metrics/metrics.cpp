#include <prometheus/text_serializer.h>

#include <evosip/metrics/metrics.hpp>

namespace evosip::metrics {

Registry::Registry() : registry_(std::make_shared<prometheus::Registry>()) {}

prometheus::Registry& Registry::prom() {
  return *registry_;
}

std::shared_ptr<prometheus::Registry> Registry::shared() {
  return registry_;
}

std::string Registry::render() const {
  {
    // Holding the lock while hooks run also keeps two concurrent scrapes from interleaving
    // their copies into the same gauges.
    std::lock_guard lock(hooksMutex_);
    for (const auto& hook : hooks_) {
      hook();
    }
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

void Registry::addCollectHook(std::function<void()> hook) {
  std::lock_guard lock(hooksMutex_);
  hooks_.push_back(std::move(hook));
}

prometheus::Family<prometheus::Counter>& Registry::counterFamily(const std::string& name,
                                                                 const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
}

prometheus::Family<prometheus::Gauge>& Registry::gaugeFamily(const std::string& name,
                                                             const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
}

prometheus::Family<prometheus::Histogram>& Registry::histogramFamily(const std::string& name,
                                                                     const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
}

prometheus::Family<prometheus::Counter>& counterFamily(Registry& registry, const std::string& name,
                                                       const std::string& help) {
  return registry.counterFamily(name, help);
}

prometheus::Family<prometheus::Gauge>& gaugeFamily(Registry& registry, const std::string& name,
                                                   const std::string& help) {
  return registry.gaugeFamily(name, help);
}

prometheus::Family<prometheus::Histogram>& histogramFamily(Registry& registry,
                                                           const std::string& name,
                                                           const std::string& help) {
  return registry.histogramFamily(name, help);
}

}  // namespace evosip::metrics
