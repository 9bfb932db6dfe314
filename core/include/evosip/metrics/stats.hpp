#pragma once
// Statistics declared once (Envoy's stats X-macros): a component lists its statistics in one
// macro, and that one list yields both the plain atomic fields its workers bump and their
// Prometheus exposition (name, help, type, labels).
//
//   #define EVOSIP_WIDGET_STATS(COUNTER, GAUGE, COUNTER_ARRAY)
//     COUNTER(sent, "evosip_widget_total", "Widgets, by result", "result=sent")
//     COUNTER(lost, "evosip_widget_total", "", "result=lost")
//     GAUGE(open, "evosip_widget_open", "Widgets open now", "")
//     COUNTER_ARRAY(drops, kDropCount, "evosip_widget_drops_total", "Drops", "reason", dropName)
//
//   struct WidgetCounters {
//     EVOSIP_STAT_FIELDS(EVOSIP_WIDGET_STATS)
//   };
//   metrics::exposeStats<WidgetCounters>(registry,
//                                        EVOSIP_STAT_TABLE(WidgetCounters, EVOSIP_WIDGET_STATS),
//                                        [&](const auto& visit) { for (w...) visit(w); });
//
// A row's help may be "" when an earlier row of the same name gave it (one family, several
// label values). Labels are written "key=value,key=value" ("" for none). An array's label value
// for index i is labelOf(i). Every scrape sums each row over the sources (one counter struct per
// worker).

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/metrics/metrics.hpp>

namespace evosip::metrics {

// Keeps a Prometheus counter equal to a running total read at scrape time.
class CounterMirror {
 public:
  explicit CounterMirror(prometheus::Counter& counter) : counter_(&counter) {}
  void set(double total) {
    if (total > last_) {
      counter_->Increment(total - last_);
      last_ = total;
    }
  }

 private:
  prometheus::Counter* counter_;
  double last_ = 0;
};

enum class StatKind { kCounter, kGauge };

using Labels = std::map<std::string, std::string>;

// "key=value,key=value" as labels.
inline Labels parseLabels(std::string_view text) {
  Labels labels;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const auto pair = text.substr(0, comma);
    const auto eq = pair.find('=');
    labels[std::string(pair.substr(0, eq))] =
        eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return labels;
}

// One exposed series: a family name, its help, its labels and how to read the value from one
// source.
template <typename Counters>
struct StatRow {
  StatKind kind;
  std::string name;
  std::string help;
  Labels labels;
  std::function<double(const Counters&)> read;
};

template <typename Counters>
class StatTable {
 public:
  using Read = std::function<double(const Counters&)>;

  void add(StatKind kind, const char* name, const char* help, Labels labels, Read read) {
    rows_.push_back(StatRow<Counters>{kind, name, help, std::move(labels), std::move(read)});
  }
  template <typename LabelOf>
  void addArray(const char* name, const char* help, const char* key, size_t size, LabelOf labelOf,
                std::function<double(const Counters&, size_t)> read) {
    for (size_t i = 0; i < size; ++i) {
      add(StatKind::kCounter, name, help, Labels{{key, std::string(labelOf(i))}},
          [read, i](const Counters& c) { return read(c, i); });
    }
  }
  const std::vector<StatRow<Counters>>& rows() const { return rows_; }

 private:
  std::vector<StatRow<Counters>> rows_;
};

// Reads an atomic counter or gauge as a double.
template <typename T>
double statValue(const std::atomic<T>& v) {
  return static_cast<double>(v.load(std::memory_order_relaxed));
}

// Registers every row of table in registry and refreshes them at every scrape with the sum over
// the sources: forEach(visit) calls visit(const Counters&) once per source.
template <typename Counters>
void exposeStats(Registry& registry, const StatTable<Counters>& table,
                 std::function<void(const std::function<void(const Counters&)>&)> forEach) {
  struct Series {
    StatRow<Counters> row;
    std::unique_ptr<CounterMirror> counter;
    prometheus::Gauge* gauge = nullptr;
  };
  auto series = std::make_shared<std::vector<Series>>();
  for (const auto& row : table.rows()) {
    Series s{row, nullptr, nullptr};
    if (row.kind == StatKind::kCounter) {
      s.counter = std::make_unique<CounterMirror>(
          registry.counterFamily(row.name, row.help).Add(row.labels));
    } else {
      s.gauge = &registry.gaugeFamily(row.name, row.help).Add(row.labels);
    }
    series->push_back(std::move(s));
  }
  registry.addCollectHook([series, forEach = std::move(forEach)] {
    std::vector<double> totals(series->size(), 0);
    forEach([&](const Counters& c) {
      for (size_t i = 0; i < series->size(); ++i) {
        totals[i] += (*series)[i].row.read(c);
      }
    });
    for (size_t i = 0; i < series->size(); ++i) {
      auto& s = (*series)[i];
      if (s.counter) {
        s.counter->set(totals[i]);
      } else {
        s.gauge->Set(totals[i]);
      }
    }
  });
}

}  // namespace evosip::metrics

// Field generators: a counter is an atomic uint64, a gauge an atomic int64, an array one counter
// per label value.
#define EVOSIP_STAT_FIELD(field, name, help, labels) std::atomic<uint64_t> field{0};
#define EVOSIP_STAT_GAUGE_FIELD(field, name, help, labels) std::atomic<int64_t> field{0};
#define EVOSIP_STAT_ARRAY_FIELD(field, size, name, help, key, labelOf) \
  std::array<std::atomic<uint64_t>, size> field{};

// Row generators, used inside a function that declares `t`, a StatTable of the counter struct.
#define EVOSIP_STAT_ROW(field, name, help, labels)                                                 \
  t.add(::evosip::metrics::StatKind::kCounter, name, help, ::evosip::metrics::parseLabels(labels), \
        [](const auto& c) { return ::evosip::metrics::statValue(c.field); });
#define EVOSIP_STAT_GAUGE_ROW(field, name, help, labels)                                         \
  t.add(::evosip::metrics::StatKind::kGauge, name, help, ::evosip::metrics::parseLabels(labels), \
        [](const auto& c) { return ::evosip::metrics::statValue(c.field); });
#define EVOSIP_STAT_ARRAY_ROW(field, size, name, help, key, labelOf) \
  t.addArray(name, help, key, size, labelOf,                         \
             [](const auto& c, size_t i) { return ::evosip::metrics::statValue(c.field[i]); });

// The fields of a list, inside its counter struct.
#define EVOSIP_STAT_FIELDS(LIST) \
  LIST(EVOSIP_STAT_FIELD, EVOSIP_STAT_GAUGE_FIELD, EVOSIP_STAT_ARRAY_FIELD)
// The StatTable of a list (an expression).
#define EVOSIP_STAT_TABLE(Counters, LIST)                               \
  ([] {                                                                 \
    ::evosip::metrics::StatTable<Counters> t;                           \
    LIST(EVOSIP_STAT_ROW, EVOSIP_STAT_GAUGE_ROW, EVOSIP_STAT_ARRAY_ROW) \
    return t;                                                           \
  }())
