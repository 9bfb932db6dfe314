#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/api/invalidator.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/control/client.hpp>
#include <evosip/log/log.hpp>

namespace evosip::api {

namespace json = boost::json;

Invalidator::Invalidator(boost::asio::io_context& io, std::string token,
                         std::chrono::milliseconds timeout, metrics::Registry& metrics)
    : io_(io),
      token_(std::move(token)),
      timeout_(timeout),
      sent_(metrics
                .counterFamily("evosip_api_invalidations_sent_total",
                               "auth.invalidate calls sent to routers")
                .Add({})),
      failed_(metrics
                  .counterFamily("evosip_api_invalidations_failed_total",
                                 "auth.invalidate calls that failed (timeout, refused, HTTP or "
                                 "RPC error)")
                  .Add({})) {}

tl::expected<void, std::string> Invalidator::checkAddress(const std::string& address) {
  auto parsed = control::splitHostPort(address);
  if (!parsed) {
    return tl::unexpected("'" + address + "': " + parsed.error());
  }
  if (parsed->port == "0") {
    return tl::unexpected("'" + address + "': the port must be from 1 to 65535");
  }
  return {};
}

void Invalidator::setRouters(const std::vector<std::string>& addresses) {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<Target>> next;
  for (const auto& address : addresses) {
    std::shared_ptr<Target> target;
    for (const auto& old : targets_) {
      if (old->address == address) {
        target = old;
      }
    }
    if (!target) {
      target = std::make_shared<Target>();
      target->address = address;
    }
    bool duplicate = false;
    for (const auto& t : next) {
      duplicate = duplicate || t->address == address;
    }
    if (!duplicate) {
      next.push_back(std::move(target));
    }
  }
  targets_ = std::move(next);
}

std::vector<RouterStatus> Invalidator::routers() const {
  std::lock_guard lock(mutex_);
  std::vector<RouterStatus> out;
  for (const auto& t : targets_) {
    out.push_back(RouterStatus{t->address, t->sent.load(), t->failed.load()});
  }
  return out;
}

void Invalidator::invalidate(const std::string& domain, const std::string& user) {
  std::vector<std::shared_ptr<Target>> targets;
  {
    std::lock_guard lock(mutex_);
    targets = targets_;
  }
  if (targets.empty()) {
    return;
  }
  json::object request;
  request["jsonrpc"] = "2.0";
  request["method"] = "auth.invalidate";
  request["params"] = json::object{{"domain", domain}, {"user", user}};
  request["id"] = 1;
  const std::string body = json::serialize(request);
  for (const auto& target : targets) {
    target->sent.fetch_add(1);
    sent_.Increment();
    control::asyncHttpRequest(
        io_, target->address, "POST", "/rpc", token_, body, timeout_,
        [this, target, domain, user](tl::expected<control::HttpResponse, std::string> r) {
          std::string problem;
          if (!r) {
            problem = r.error();
          } else if (r->status != 200) {
            problem = fmt::format("HTTP {}", r->status);
          } else {
            boost::system::error_code ec;
            json::value reply = json::parse(r->body, ec);
            const json::object* object = reply.if_object();
            if (ec || object == nullptr || !object->contains("result")) {
              problem = "RPC error: " + std::string(trim(r->body.substr(0, 200)));
            }
          }
          if (problem.empty()) {
            log::get("api")->debug("auth.invalidate {}@{} acknowledged by {}", user, domain,
                                   target->address);
            return;
          }
          target->failed.fetch_add(1);
          failed_.Increment();
          log::get("api")->warn("auth.invalidate {}@{} on router {} failed: {}", user, domain,
                                target->address, problem);
        });
  }
}

}  // namespace evosip::api
