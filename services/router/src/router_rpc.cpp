// The router's control methods: location.*, dialog.* (read from the store on worker 0),
// auth.invalidate (every worker's credential cache) and dispatcher.* (the app and media sets).
#include <future>

#include <boost/json.hpp>

#include <evosip/role/set_request.hpp>

#include "router_service_impl.hpp"

namespace evosip::router {

namespace json = boost::json;

namespace {

json::object bindingJson(const store::Binding& b) {
  json::object o;
  o["aor"] = b.aor;
  o["contact"] = b.contact;
  json::array path;
  for (const auto& p : b.path) {
    path.push_back(json::string(p));
  }
  o["path"] = std::move(path);
  const auto left =
      std::chrono::duration_cast<std::chrono::seconds>(b.expires - store::systemNow());
  o["expires"] = std::max<int64_t>(0, left.count());
  o["q"] = b.q;
  o["call_id"] = b.callId;
  o["cseq"] = b.cseq;
  o["received"] = b.received;
  o["user_agent"] = b.userAgent;
  o["router"] = b.router;
  return o;
}

json::object dialogJson(const store::DialogRecord& d) {
  json::object o;
  o["call_id"] = d.id.callId;
  o["from_tag"] = d.id.fromTag;
  o["to_tag"] = d.id.toTag;
  o["caller_contact"] = d.callerContact;
  o["callee_contact"] = d.calleeContact;
  o["owner"] = d.owner;
  o["media_relay"] = d.mediaRelay;
  o["age_s"] =
      std::chrono::duration_cast<std::chrono::seconds>(store::systemNow() - d.created).count();
  return o;
}

std::string stringParam(const json::value& params, const char* name) {
  const auto* o = params.if_object();
  const auto* v = o ? o->if_contains(name) : nullptr;
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

control::RpcResult storeError(const Error& e) {
  return tl::unexpected(control::RpcError{control::kInternalError, "store: " + e.message, nullptr});
}

template <typename Item, typename View>
json::array arrayOf(const std::vector<Item>& items, View view) {
  json::array list;
  for (const auto& item : items) {
    list.push_back(view(item));
  }
  return list;
}

// A store answer as {key: [view(item)...]}, or the store's error.
template <typename Item, typename View>
control::RpcResult listJson(const Result<std::vector<Item>>& res, const char* key, View view) {
  if (!res) {
    return storeError(res.error());
  }
  return json::value(json::object{{key, arrayOf(*res, view)}});
}

// The set of targets a dispatcher.list shows: address, state, counts.
json::array targetsJson(const role::TargetSet& set, int64_t now) {
  json::array out;
  for (size_t i = 0; i < set.size(); ++i) {
    const auto& t = set.at(i);
    json::object o{{"uri", t.uri},
                   {"address", t.endpoint.str()},
                   {"state", !t.upAt(now)        ? "down"
                             : t.drainingAt(now) ? "draining"
                                                 : "up"},
                   {"forwarded", t.forwarded.load()},
                   {"timeouts", t.timeouts.load()}};
    if (!t.name.empty()) {
      o["name"] = t.name;
    }
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace

control::RpcResult RouterService::Impl::onWorker(
    const std::function<void(Router&, std::function<void(control::RpcResult)>)>& fn) {
  auto promise = std::make_shared<std::promise<control::RpcResult>>();
  auto future = promise->get_future();
  pool.post(0, [this, fn, promise] {
    fn(*routers[0], [promise](control::RpcResult r) { promise->set_value(std::move(r)); });
  });
  if (future.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    return tl::unexpected(control::RpcError{control::kInternalError, "store timeout", nullptr});
  }
  return future.get();
}

void RouterService::Impl::registerRpc() {
  registerLocationRpc();
  registerDialogRpc();
  registerAuthRpc();
  registerDispatcherRpc();
}

void RouterService::Impl::registerLocationRpc() {
  rpc.add("location.lookup", [this](const json::value& params) -> control::RpcResult {
    std::string aor = stringParam(params, "aor");
    if (aor.empty()) {
      return control::invalidParams("aor: \"user@domain\" is required");
    }
    return onWorker([aor](Router& r, auto done) {
      r.store().getBindings(aor, [done](Result<std::vector<store::Binding>> res) {
        done(listJson(res, "bindings", bindingJson));
      });
    });
  });
  rpc.add("location.list", [this](const json::value& params) -> control::RpcResult {
    std::string cursor = stringParam(params, "cursor");
    size_t count = 100;
    if (const auto* o = params.if_object(); o && o->if_contains("count")) {
      const auto& c = o->at("count");
      if (!c.is_int64() || c.as_int64() < 1 || c.as_int64() > 1000) {
        return control::invalidParams("count: an integer 1..1000");
      }
      count = static_cast<size_t>(c.as_int64());
    }
    return onWorker([cursor, count](Router& r, auto done) {
      r.store().listAors(cursor, count, [done](Result<store::Page<std::string>> res) {
        if (!res) {
          done(storeError(res.error()));
          return;
        }
        json::array aors;
        for (const auto& a : res->items) {
          aors.push_back(json::string(a));
        }
        done(json::value(json::object{{"aors", std::move(aors)}, {"next", res->next}}));
      });
    });
  });
}

void RouterService::Impl::registerDialogRpc() {
  rpc.add("dialog.list", [this](const json::value& params) -> control::RpcResult {
    std::string cursor = stringParam(params, "cursor");
    return onWorker([cursor](Router& r, auto done) {
      r.store().listDialogs(cursor, 100, [done](Result<store::Page<store::DialogRecord>> res) {
        if (!res) {
          done(storeError(res.error()));
          return;
        }
        done(json::value(
            json::object{{"dialogs", arrayOf(res->items, dialogJson)}, {"next", res->next}}));
      });
    });
  });
  rpc.add("dialog.get", [this](const json::value& params) -> control::RpcResult {
    std::string callId = stringParam(params, "call_id");
    if (callId.empty()) {
      return control::invalidParams("call_id is required");
    }
    return onWorker([callId](Router& r, auto done) {
      r.store().getDialogs(callId, [done](Result<std::vector<store::DialogRecord>> res) {
        done(listJson(res, "dialogs", dialogJson));
      });
    });
  });
}

void RouterService::Impl::registerAuthRpc() {
  rpc.add("auth.invalidate", [this](const json::value& params) -> control::RpcResult {
    std::string domain = stringParam(params, "domain");
    std::string user = stringParam(params, "user");
    if (domain.empty() != user.empty()) {
      return control::invalidParams("give both domain and user, or neither (all)");
    }
    // The process-wide table first, at once: a fetch that completes after this is not stored.
    if (domain.empty()) {
      shared->credentialTable().invalidateAll();
    } else {
      shared->credentialTable().invalidate(domain, user);
    }
    invalidations.fetch_add(1, std::memory_order_relaxed);
    pool.postAll([this, domain, user](runtime::Worker& w) {
      if (domain.empty()) {
        routers[w.index()]->invalidateAll();
      } else {
        routers[w.index()]->invalidate(domain, user);
      }
    });
    return json::value(json::object{{"invalidated", domain.empty() ? "all" : user + "@" + domain}});
  });
}

void RouterService::Impl::registerDispatcherRpc() {
  rpc.add("dispatcher.list", [this](const json::value&) -> control::RpcResult {
    const int64_t now = clock.now().time_since_epoch().count();
    return json::value(json::object{
        {"apps", targetsJson(*shared->apps(), now)},
        {"media", targetsJson(*shared->media(), now)},
        {"names", json::object{{"apps", sets.names("apps")}, {"media", sets.names("media")}}}});
  });
  rpc.add("dispatcher.set", [this](const json::value& params) -> control::RpcResult {
    auto request = role::parseSetRequest(params);
    if (!request) {
      return control::invalidParams(request.error());
    }
    const std::string& set = request->set;
    if (set != "apps" && set != "media") {
      return control::invalidParams("set: \"apps\" (sip: URIs) or \"media\" (ng addresses)");
    }
    const std::vector<std::string>& uris = request->targets;
    if (auto assigned = assignSet(*request); !assigned) {
      return control::invalidParams("targets: " + assigned.error().message);
    }
    return json::value(json::object{{"set", set}, {"targets", uris.size()}});
  });
}

}  // namespace evosip::router
