#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <evosip/controller/slice_watch.hpp>
#include <evosip/log/log.hpp>

namespace evosip::controller {

namespace asio = boost::asio;
using namespace std::chrono_literals;

std::string queryEscape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

SliceWatch::SliceWatch(KubeClient& client, WatchSettings settings, WatchCounters counters,
                       std::function<void()> onChange)
    : client_(client),
      settings_(std::move(settings)),
      counters_(counters),
      onChange_(std::move(onChange)) {}

std::string SliceWatch::basePath() const {
  return fmt::format("/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices?labelSelector={}",
                     queryEscape(settings_.ns),
                     queryEscape("kubernetes.io/service-name=" + settings_.service));
}

void SliceWatch::fail(const std::string& what) {
  lastError_ = what;
  counters_.errors->Increment();
  log::get("controller")->warn("service {}: {}", settings_.service, what);
}

asio::awaitable<void> SliceWatch::run() {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  auto backoff = settings_.backoffMin;
  auto pause = [&]() -> asio::awaitable<void> {
    timer.expires_after(backoff);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    backoff = std::min(backoff * 2, settings_.backoffMax);
  };
  for (;;) {
    if (!co_await list()) {
      co_await pause();
      continue;
    }
    backoff = settings_.backoffMin;
    const auto resyncAt = std::chrono::steady_clock::now() + settings_.resync;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::seconds>(
          resyncAt - std::chrono::steady_clock::now());
      if (left < 1s) {
        break;  // periodic resync: a fresh list
      }
      const auto began = std::chrono::steady_clock::now();
      const WatchEnd end = co_await watch(left);
      if (end == WatchEnd::kGone) {
        break;
      }
      // An error, or a stream the server ended at once: wait before the next watch.
      if (end == WatchEnd::kError || std::chrono::steady_clock::now() - began < 1s) {
        co_await pause();
      } else {
        backoff = settings_.backoffMin;
      }
    }
  }
}

asio::awaitable<bool> SliceWatch::list() {
  Slices next;
  std::string version;
  std::string token;
  do {
    std::string path = basePath() + "&limit=500";
    if (!token.empty()) {
      path += "&continue=" + queryEscape(token);
    }
    auto r = co_await client_.request("GET", path, "", settings_.requestTimeout, kMaxListBytes);
    if (!r || r->status != 200) {
      fail("list: " + (r ? fmt::format("HTTP {}", r->status) : r.error().message));
      co_return false;
    }
    auto page = parseSliceList(r->body);
    if (!page) {
      fail("list: " + page.error().message);
      co_return false;
    }
    for (auto& slice : page->items) {
      next[slice.name] = std::move(slice);
    }
    version = page->resourceVersion;
    token = page->continueToken;
  } while (!token.empty());
  counters_.lists->Increment();
  slices_ = std::move(next);
  version_ = version;
  listed_ = true;
  lastError_.clear();
  onChange_();
  co_return true;
}

bool SliceWatch::apply(const WatchEvent& event) {
  counters_.events->Increment();
  if (!event.resourceVersion.empty()) {
    version_ = event.resourceVersion;
  }
  switch (event.type) {
    case WatchEventType::kAdded:
    case WatchEventType::kModified:
      slices_[event.slice.name] = event.slice;
      onChange_();
      return true;
    case WatchEventType::kDeleted:
      slices_.erase(event.slice.name);
      onChange_();
      return true;
    case WatchEventType::kBookmark:
      return true;
    case WatchEventType::kError:
      return false;
  }
  return false;
}

asio::awaitable<SliceWatch::WatchEnd> SliceWatch::watch(std::chrono::seconds timeout) {
  const std::string path =
      fmt::format("{}&watch=1&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={}",
                  basePath(), queryEscape(version_), timeout.count());
  WatchEnd end = WatchEnd::kExpired;
  const KubeClient::LineHandler onLine = [&](std::string_view line) {
    auto event = parseWatchEvent(line);
    if (!event) {
      fail("watch event: " + event.error().message);
      end = WatchEnd::kError;
      return false;
    }
    if (!apply(*event)) {
      end = event->errorCode == 410 ? WatchEnd::kGone : WatchEnd::kError;
      if (end == WatchEnd::kGone) {
        counters_.gone->Increment();
      } else {
        fail(fmt::format("watch ERROR {}: {}", event->errorCode, event->errorMessage));
      }
      return false;
    }
    return true;
  };
  auto r = co_await client_.watch(path, timeout + 30s, kMaxEventBytes, onLine);
  if (end != WatchEnd::kExpired) {
    co_return end;
  }
  if (!r) {
    fail("watch: " + r.error().message);
    co_return WatchEnd::kError;
  }
  if (r->status == 410) {
    counters_.gone->Increment();
    co_return WatchEnd::kGone;
  }
  if (r->status != 200) {
    auto status = parseStatus(r->body);
    fail(fmt::format("watch: HTTP {} {}", r->status, status ? status->message : ""));
    co_return WatchEnd::kError;
  }
  co_return WatchEnd::kExpired;
}

}  // namespace evosip::controller
