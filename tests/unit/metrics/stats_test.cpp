#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/metrics/stats.hpp>

namespace evosip::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string colorLabel(size_t i) {
  return i == 0 ? "red" : "blue";
}

#define EVOSIP_WIDGET_STATS(COUNTER, GAUGE, COUNTER_ARRAY)                   \
  COUNTER(sent, "evosip_widgets_total", "Widgets, by result", "result=sent") \
  COUNTER(lost, "evosip_widgets_total", "", "result=lost,why=gone")          \
  GAUGE(open, "evosip_widgets_open", "Widgets open now", "")                 \
  COUNTER_ARRAY(colors, 2, "evosip_widget_colors_total", "By color", "color", colorLabel)

struct WidgetCounters {
  EVOSIP_STAT_FIELDS(EVOSIP_WIDGET_STATS)
};

StatTable<WidgetCounters> widgetStats() {
  return EVOSIP_STAT_TABLE(WidgetCounters, EVOSIP_WIDGET_STATS);
}

TEST(StatsTest, OneListYieldsTheFieldsAndTheirExpositionSummedOverTheSources) {
  WidgetCounters a;
  WidgetCounters b;
  Registry registry;
  exposeStats<WidgetCounters>(registry, widgetStats(), [&](const auto& visit) {
    visit(a);
    visit(b);
  });
  a.sent = 2;
  b.sent = 3;
  b.lost = 1;
  a.open = 4;
  b.open = -1;
  a.colors[1] = 7;
  const std::string text = registry.render();
  EXPECT_THAT(text, HasSubstr("# HELP evosip_widgets_total Widgets, by result\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE evosip_widgets_total counter\n"));
  EXPECT_THAT(text, HasSubstr("evosip_widgets_total{result=\"sent\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("evosip_widgets_total{result=\"lost\",why=\"gone\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE evosip_widgets_open gauge\n"));
  EXPECT_THAT(text, HasSubstr("evosip_widgets_open 3\n"));
  EXPECT_THAT(text, HasSubstr("evosip_widget_colors_total{color=\"red\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("evosip_widget_colors_total{color=\"blue\"} 7\n"));
  a.sent = 4;
  EXPECT_THAT(registry.render(), HasSubstr("evosip_widgets_total{result=\"sent\"} 7\n"));
}

TEST(StatsTest, ACounterNeverGoesBack) {
  WidgetCounters a;
  Registry registry;
  exposeStats<WidgetCounters>(registry, widgetStats(), [&](const auto& visit) { visit(a); });
  a.sent = 5;
  registry.render();
  a.sent = 2;  // a worker's counters were replaced
  EXPECT_THAT(registry.render(), HasSubstr("evosip_widgets_total{result=\"sent\"} 5\n"));
}

TEST(StatsTest, ParseLabels) {
  EXPECT_TRUE(parseLabels("").empty());
  EXPECT_EQ(parseLabels("a=b"), (Labels{{"a", "b"}}));
  EXPECT_EQ(parseLabels("a=b,c=d"), (Labels{{"a", "b"}, {"c", "d"}}));
  EXPECT_EQ(parseLabels("a="), (Labels{{"a", ""}}));
}

}  // namespace
}  // namespace evosip::metrics
