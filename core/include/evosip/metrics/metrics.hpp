#pragma once
// Metrics: one prometheus-cpp registry per process, rendered as Prometheus text on GET /metrics.
// Hot paths keep plain per-worker counters; a collect hook copies them into prometheus gauges
// or counters just before each render, so scraping never touches the packet path.

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace evosip::metrics {

class Registry {
 public:
  Registry();

  prometheus::Registry& prom();
  std::shared_ptr<prometheus::Registry> shared();

  // Runs the collect hooks, then serializes every family in the Prometheus text format 0.0.4.
  // Thread-safe; hooks run on the calling thread (the control thread).
  std::string render() const;

  // hook runs at the start of every render(), in the order added.
  void addCollectHook(std::function<void()> hook);

  // A family registered under name, or the existing one of the same name and type. Throws
  // std::invalid_argument for an invalid name or a name taken by another metric type.
  prometheus::Family<prometheus::Counter>& counterFamily(const std::string& name,
                                                         const std::string& help);
  prometheus::Family<prometheus::Gauge>& gaugeFamily(const std::string& name,
                                                     const std::string& help);
  prometheus::Family<prometheus::Histogram>& histogramFamily(const std::string& name,
                                                             const std::string& help);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex hooksMutex_;
  std::vector<std::function<void()>> hooks_;
};

// The same as the members, for call sites that prefer free functions.
prometheus::Family<prometheus::Counter>& counterFamily(Registry& registry, const std::string& name,
                                                       const std::string& help);
prometheus::Family<prometheus::Gauge>& gaugeFamily(Registry& registry, const std::string& name,
                                                   const std::string& help);
prometheus::Family<prometheus::Histogram>& histogramFamily(Registry& registry,
                                                           const std::string& name,
                                                           const std::string& help);

}  // namespace evosip::metrics
