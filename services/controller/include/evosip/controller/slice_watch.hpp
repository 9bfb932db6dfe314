#pragma once
// Keeps one Service's EndpointSlices current: a list (paged, with its resourceVersion), then a
// watch from that version with bookmarks; a fresh list when the version is gone (410, as a
// Status answer or an ERROR event) and every resync period; exponential back-off after errors
// and dropped connections. What is known stays known while the API server cannot be reached:
// the state changes only on a complete list or an event.

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <prometheus/counter.h>

#include <evosip/controller/kube_client.hpp>
#include <evosip/controller/kube_objects.hpp>

namespace evosip::controller {

struct WatchSettings {
  std::string ns;
  std::string service;
  std::chrono::seconds resync{300};
  std::chrono::milliseconds backoffMin{100};
  std::chrono::milliseconds backoffMax{5000};
  std::chrono::milliseconds requestTimeout{10000};
};

struct WatchCounters {
  prometheus::Counter* lists = nullptr;
  prometheus::Counter* events = nullptr;
  prometheus::Counter* gone = nullptr;
  prometheus::Counter* errors = nullptr;
};

class SliceWatch {
 public:
  using Slices = std::map<std::string, EndpointSlice>;  // by metadata.name
  // onChange runs on the io_context's thread after every change of the slices.
  SliceWatch(KubeClient& client, WatchSettings settings, WatchCounters counters,
             std::function<void()> onChange);

  // Runs until the io_context stops.
  boost::asio::awaitable<void> run();

  bool listed() const { return listed_; }
  const Slices& slices() const { return slices_; }
  const std::string& resourceVersion() const { return version_; }
  const std::string& lastError() const { return lastError_; }

 private:
  enum class WatchEnd { kExpired, kGone, kError };
  boost::asio::awaitable<bool> list();
  boost::asio::awaitable<WatchEnd> watch(std::chrono::seconds timeout);
  bool apply(const WatchEvent& event);
  void fail(const std::string& what);
  std::string basePath() const;

  KubeClient& client_;
  WatchSettings settings_;
  WatchCounters counters_;
  std::function<void()> onChange_;
  Slices slices_;
  std::string version_;
  bool listed_ = false;
  std::string lastError_;
};

// Percent-encodes a query parameter value.
std::string queryEscape(std::string_view text);

}  // namespace evosip::controller
