#include <algorithm>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/control/client.hpp>
#include <evosip/controller/pusher.hpp>
#include <evosip/log/log.hpp>

namespace evosip::controller {

namespace json = boost::json;

namespace {

json::value setParams(const PeerSet& set) {
  json::object params{{"set", set.name}, {"targets", json::value_from(set.targets)}};
  if (!set.draining.empty()) {
    params["draining"] = json::value_from(set.draining);
  }
  return params;
}

std::string stringOf(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

}  // namespace

bool listMatches(const json::value& listResult, const PeerSet& want) {
  const json::object* result = listResult.if_object();
  const json::value* list = result != nullptr ? result->if_contains(want.name) : nullptr;
  if (list == nullptr || !list->is_array()) {
    return false;
  }
  std::vector<std::string> names;
  for (const json::value& item : list->get_array()) {
    const json::object* o = item.if_object();
    if (o == nullptr) {
      return false;
    }
    std::string name = o->contains("uri") ? stringOf(*o, "uri") : stringOf(*o, "address");
    const bool pushedDraining =
        std::find(want.draining.begin(), want.draining.end(), name) != want.draining.end();
    if (pushedDraining && stringOf(*o, "state") == "up") {
      return false;
    }
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names == want.targets;
}

Pusher::Pusher(boost::asio::io_context& io, PushSettings settings, PushCounters counters)
    : io_(io), settings_(std::move(settings)), counters_(counters) {}

void Pusher::update(const std::vector<Assignment>& desired) {
  std::map<Key, Entry> next;
  for (const Assignment& a : desired) {
    for (const PeerSet& set : a.sets) {
      Key key{a.control, set.name};
      auto old = entries_.find(key);
      Entry e = old != entries_.end() ? std::move(old->second) : Entry{a.control, set};
      if (e.want != set) {
        e.want = set;
        e.failures = 0;
        e.nextTry = {};
      }
      next.emplace(std::move(key), std::move(e));
    }
  }
  entries_ = std::move(next);
  tick();
}

void Pusher::setActive(bool active) {
  if (active && !active_) {
    for (auto& [key, e] : entries_) {
      e.acked.reset();
      e.nextTry = {};
    }
  }
  active_ = active;
  tick();
}

Pusher::Entry* Pusher::find(const Key& key) {
  auto it = entries_.find(key);
  return it != entries_.end() ? &it->second : nullptr;
}

void Pusher::tick() {
  if (!active_) {
    return;
  }
  const auto now = Clock::now();
  for (auto& [key, e] : entries_) {
    if (e.inFlight || now < e.nextTry) {
      continue;
    }
    if (!e.acked || *e.acked != e.want) {
      push(key, e);
    } else if (now >= e.nextCheck) {
      check(key, e);
    }
  }
}

void Pusher::push(const Key& key, Entry& e) {
  e.inFlight = true;
  counters_.pushes->Increment();
  const PeerSet sent = e.want;
  control::asyncHttpRequest(
      io_, e.control, "POST", "/rpc", settings_.token,
      control::rpcRequestBody("dispatcher.set", setParams(sent)), settings_.timeout,
      [this, key, sent](tl::expected<control::HttpResponse, std::string> r) {
        auto result = r ? control::rpcReplyResult(*r) : tl::unexpected(r.error());
        if (!result) {
          failed(key, sent, result.error());
          return;
        }
        Entry* e = find(key);
        if (e == nullptr) {
          return;
        }
        e->inFlight = false;
        e->acked = sent;
        e->failures = 0;
        e->lastError.clear();
        e->nextCheck = Clock::now() + settings_.check;
        log::get("controller")
            ->info("{} {}: {} targets, {} draining", key.first, key.second, sent.targets.size(),
                   sent.draining.size());
        tick();  // the set may have changed while this one was on its way
      });
}

void Pusher::failed(const Key& key, const PeerSet& sent, const std::string& why) {
  counters_.errors->Increment();
  Entry* e = find(key);
  if (e == nullptr) {
    return;
  }
  e->inFlight = false;
  const auto wait =
      std::min(settings_.backoffMax, settings_.backoffMin * (1 << std::min(e->failures, 10)));
  ++e->failures;
  e->nextTry = Clock::now() + wait;
  if (e->lastError != why) {
    log::get("controller")
        ->warn("{} {} ({} targets): {}", key.first, key.second, sent.targets.size(), why);
  }
  e->lastError = why;
}

void Pusher::check(const Key& key, Entry& e) {
  e.inFlight = true;
  e.nextCheck = Clock::now() + settings_.check;
  control::asyncHttpRequest(
      io_, e.control, "POST", "/rpc", settings_.token,
      control::rpcRequestBody("dispatcher.list", nullptr), settings_.timeout,
      [this, key](tl::expected<control::HttpResponse, std::string> r) {
        auto result = r ? control::rpcReplyResult(*r) : tl::unexpected(r.error());
        Entry* e = find(key);
        if (e == nullptr) {
          return;
        }
        e->inFlight = false;
        if (!result) {
          failed(key, e->want, "dispatcher.list: " + result.error());
          return;
        }
        if (e->acked && !listMatches(*result, *e->acked)) {
          counters_.drift->Increment();
          log::get("controller")
              ->warn("{} {}: differs from the pushed set, pushing again", key.first, key.second);
          e->acked.reset();
          tick();
        }
      });
}

size_t Pusher::instances() const {
  size_t n = 0;
  std::string last;
  for (const auto& [key, e] : entries_) {
    n += key.first != last ? 1 : 0;
    last = key.first;
  }
  return n;
}

size_t Pusher::pending() const {
  return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(), [](const auto& kv) {
    return !kv.second.acked || *kv.second.acked != kv.second.want;
  }));
}

json::array Pusher::status() const {
  json::array out;
  for (const auto& [key, e] : entries_) {
    out.push_back(json::object{{"control", key.first},
                               {"set", key.second},
                               {"targets", e.want.targets.size()},
                               {"draining", e.want.draining.size()},
                               {"acknowledged", e.acked && *e.acked == e.want},
                               {"error", e.lastError}});
  }
  return out;
}

}  // namespace evosip::controller
