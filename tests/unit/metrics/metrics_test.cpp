#include <stdexcept>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/metrics/metrics.hpp>

namespace evosip::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, RendersCountersGaugesAndHistogramsAsPrometheusText) {
  Registry registry;
  registry.counterFamily("evosip_requests_total", "SIP requests received")
      .Add({{"method", "INVITE"}})
      .Increment(3);
  registry.gaugeFamily("evosip_router_up", "1 when the router is up")
      .Add({{"router", "sip:10.0.0.5:5060"}})
      .Set(1);
  registry.histogramFamily("evosip_forward_seconds", "Time to forward")
      .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.01})
      .Observe(0.005);

  const std::string text = registry.render();
  EXPECT_THAT(text, HasSubstr("# HELP evosip_requests_total SIP requests received\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE evosip_requests_total counter\n"));
  EXPECT_THAT(text, HasSubstr("evosip_requests_total{method=\"INVITE\"} 3"));
  EXPECT_THAT(text, HasSubstr("evosip_router_up{router=\"sip:10.0.0.5:5060\"} 1"));
  EXPECT_THAT(text, HasSubstr("evosip_forward_seconds_bucket{le=\"0.01\"} 1"));
  EXPECT_THAT(text, HasSubstr("evosip_forward_seconds_count 1"));
}

TEST(MetricsTest, CollectHooksRunBeforeEachRender) {
  Registry registry;
  auto& gauge = registry.gaugeFamily("evosip_calls", "Calls in progress").Add({});
  int perWorker = 0;
  int hookRuns = 0;
  registry.addCollectHook([&] {
    ++hookRuns;
    gauge.Set(perWorker);
  });
  perWorker = 7;
  EXPECT_THAT(registry.render(), HasSubstr("evosip_calls 7"));
  perWorker = 9;
  EXPECT_THAT(registry.render(), HasSubstr("evosip_calls 9"));
  EXPECT_EQ(hookRuns, 2);
}

TEST(MetricsTest, SameNameAndTypeGivesTheSameFamily) {
  Registry registry;
  auto& first = registry.counterFamily("evosip_drops_total", "Drops");
  auto& second = counterFamily(registry, "evosip_drops_total", "Drops");
  EXPECT_EQ(&first, &second);
  EXPECT_THROW(registry.gaugeFamily("evosip_drops_total", "Drops"), std::invalid_argument);
}

TEST(MetricsTest, SharedAndPromAreTheSameRegistry) {
  Registry registry;
  EXPECT_EQ(registry.shared().get(), &registry.prom());
  prometheus::BuildCounter()
      .Name("evosip_direct_total")
      .Help("x")
      .Register(registry.prom())
      .Add({});
  EXPECT_THAT(registry.render(), HasSubstr("# TYPE evosip_direct_total counter"));
}

TEST(MetricsTest, InvalidNameIsRejected) {
  Registry registry;
  EXPECT_THROW(registry.counterFamily("bad name", "x"), std::invalid_argument);
}

}  // namespace
}  // namespace evosip::metrics
