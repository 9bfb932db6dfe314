#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <evosip/controller/dns_source.hpp>
#include <evosip/log/log.hpp>

namespace evosip::controller {

namespace asio = boost::asio;

DnsSource::DnsSource(asio::io_context& io, std::array<std::string, kLayers> names,
                     DnsSettings settings, std::function<void()> onChange)
    : io_(io), names_(std::move(names)), settings_(settings), onChange_(std::move(onChange)) {}

void DnsSource::start() {
  asio::co_spawn(io_, run(), asio::detached);
}

std::optional<std::vector<Instance>> DnsSource::instances(Layer layer) const {
  return known_[static_cast<size_t>(layer)];
}

asio::awaitable<void> DnsSource::run() {
  asio::steady_timer timer(io_);
  for (;;) {
    bool changed = false;
    for (size_t i = 0; i < kLayers; ++i) {
      if (!names_[i].empty()) {
        changed = co_await resolve(i) || changed;
      }
    }
    if (changed) {
      onChange_();
    }
    timer.expires_after(settings_.interval);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<bool> DnsSource::resolve(size_t layer) {
  asio::ip::tcp::resolver resolver(io_);
  auto [ec, results] =
      co_await resolver.async_resolve(names_[layer], "", asio::ip::resolver_base::numeric_service,
                                      asio::as_tuple(asio::use_awaitable));
  std::vector<Instance> found;
  if (ec && ec != asio::error::host_not_found) {
    log::get("controller")->warn("dns {}: {}", names_[layer], ec.message());
    co_return false;  // keep what was known
  }
  for (const auto& entry : results) {
    Instance i;
    i.address = entry.endpoint().address().to_string();
    i.sip = settings_.sipPort;
    i.control = settings_.controlPort;
    i.ng = settings_.ngPort;
    found.push_back(std::move(i));
  }
  std::sort(found.begin(), found.end(),
            [](const Instance& a, const Instance& b) { return a.address < b.address; });
  found.erase(
      std::unique(found.begin(), found.end(),
                  [](const Instance& a, const Instance& b) { return a.address == b.address; }),
      found.end());
  auto same = [](const Instance& a, const Instance& b) { return a.address == b.address; };
  auto& known = known_[layer];
  const bool changed =
      !known || !std::equal(known->begin(), known->end(), found.begin(), found.end(), same);
  known = std::move(found);
  co_return changed;
}

}  // namespace evosip::controller
