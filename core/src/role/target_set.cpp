#include <bit>
#include <cmath>

#include <fmt/format.h>

#include <evosip/base/hash.hpp>
#include <evosip/role/target_set.hpp>
#include <evosip/sip/uri.hpp>

namespace evosip::role {

// Parses every entry to an address with `parse` and builds the set.
template <typename Parse>
Result<std::shared_ptr<TargetSet>> TargetSet::buildWith(const std::vector<std::string>& texts,
                                                        Parse parse) {
  auto set = std::make_shared<TargetSet>();
  for (const auto& text : texts) {
    Result<transport::Endpoint> ep = parse(text);
    if (!ep) {
      return tl::unexpected(ep.error());
    }
    if (set->find(*ep) != SIZE_MAX) {
      return makeError(Errc::kInvalid, fmt::format("target '{}' is listed twice", text));
    }
    auto target = std::make_unique<Target>();
    target->uri = text;
    target->endpoint = *ep;
    // The weight depends on the address only, so every instance ranks the same target the same
    // way whatever spelling it was given.
    target->nameHash = hash64(ep->str(), 0x65766f736970ULL);
    set->targets_.push_back(std::move(target));
  }
  return set;
}

Result<std::shared_ptr<TargetSet>> TargetSet::build(const std::vector<std::string>& uris) {
  return buildWith(uris, [](const std::string& text) -> Result<transport::Endpoint> {
    auto uri = sip::parseUri(text);
    if (!uri || !uri->isSip() || uri->hostType == sip::HostType::kDomain ||
        uri->hostType == sip::HostType::kNone) {
      return makeError(Errc::kInvalid,
                       fmt::format("target '{}' is not a sip: URI with a numeric host", text));
    }
    auto ep = transport::parseEndpoint(uri->hostText, uri->portOrDefault());
    if (!ep) {
      return makeError(Errc::kInvalid, fmt::format("target '{}': {}", text, ep.error().message));
    }
    ep->port = uri->portOrDefault();
    return ep;
  });
}

Result<std::shared_ptr<TargetSet>> TargetSet::buildAddresses(const std::vector<std::string>& addrs,
                                                             uint16_t defaultPort) {
  return buildWith(addrs, [defaultPort](const std::string& text) -> Result<transport::Endpoint> {
    std::string_view rest = text;
    if (rest.starts_with("udp:")) {
      rest.remove_prefix(4);
    }
    auto ep = transport::parseEndpoint(rest, defaultPort);
    if (!ep) {
      return makeError(Errc::kInvalid, fmt::format("target '{}': {}", text, ep.error().message));
    }
    return ep;
  });
}

std::shared_ptr<TargetSet> TargetSet::fromAddresses(const std::vector<TargetAddress>& addresses) {
  auto set = std::make_shared<TargetSet>();
  for (const auto& a : addresses) {
    if (set->find(a.endpoint) != SIZE_MAX) {
      continue;
    }
    auto target = std::make_unique<Target>();
    target->uri = a.uri;
    target->endpoint = a.endpoint;
    target->nameHash = hash64(a.endpoint.str(), 0x65766f736970ULL);
    target->name = a.name;
    target->rank = a.rank;
    target->weight = a.weight;
    target->drainingBySet = a.draining;
    set->weighted_ = set->weighted_ || a.weight != addresses.front().weight;
    set->targets_.push_back(std::move(target));
  }
  return set;
}

// The rendezvous weight of target i for a key. With SRV weights that differ, the weighted
// rendezvous score weight / -ln(u) (u: the hash as a number in (0, 1)), so a target wins in
// proportion to its weight; a positive double orders like its bits read as an integer. A weight
// of 0 gets a small chance only (RFC 2782).
uint64_t TargetSet::score(size_t i, uint64_t keyHash) const {
  const uint64_t w = rendezvousWeight(keyHash, targets_[i]->nameHash);
  if (!weighted_) {
    return w;
  }
  const double u = (static_cast<double>(w >> 11) + 0.5) * 0x1p-53;
  const double weight = targets_[i]->weight == 0 ? 0.01 : targets_[i]->weight;
  return std::bit_cast<uint64_t>(weight / -std::log(u));
}

size_t TargetSet::pick(std::string_view key, int64_t nowNs, size_t exclude,
                       std::optional<bool> v6) const {
  const uint64_t keyHash = hash64(key);
  size_t best = SIZE_MAX;  // takes new work
  uint64_t bestWeight = 0;
  size_t bestDraining = SIZE_MAX;
  uint64_t bestDrainingWeight = 0;
  // Lower rank first, then the higher weight.
  auto better = [this](size_t i, uint64_t w, size_t than, uint64_t thanWeight) {
    if (than == SIZE_MAX) {
      return true;
    }
    const uint16_t r = targets_[i]->rank;
    const uint16_t thanRank = targets_[than]->rank;
    return r < thanRank || (r == thanRank && w > thanWeight);
  };
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (i == exclude || !targets_[i]->upAt(nowNs) ||
        (v6 && targets_[i]->endpoint.ip.is_v6() != *v6)) {
      continue;
    }
    const uint64_t w = score(i, keyHash);
    if (targets_[i]->drainingAt(nowNs)) {
      if (better(i, w, bestDraining, bestDrainingWeight)) {
        bestDraining = i;
        bestDrainingWeight = w;
      }
    } else if (better(i, w, best, bestWeight)) {
      best = i;
      bestWeight = w;
    }
  }
  return best != SIZE_MAX ? best : bestDraining;
}

size_t TargetSet::find(const transport::Endpoint& ep) const {
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (targets_[i]->endpoint == ep) {
      return i;
    }
  }
  return SIZE_MAX;
}

Result<void> TargetSet::markDrainingBySet(const std::vector<std::string>& uris) {
  for (const auto& uri : uris) {
    bool found = false;
    for (auto& t : targets_) {
      if (t->uri == uri || (!t->name.empty() && t->name == uri)) {
        t->drainingBySet = true;
        found = true;
      }
    }
    if (!found) {
      return makeError(Errc::kInvalid, "draining target '" + uri + "' is not among the targets");
    }
  }
  return {};
}

size_t TargetSet::findUri(std::string_view uri) const {
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (targets_[i]->uri == uri) {
      return i;
    }
  }
  return SIZE_MAX;
}

void TargetSet::inheritFrom(const TargetSet& old) {
  for (auto& t : targets_) {
    size_t i = old.find(t->endpoint);
    if (i == SIZE_MAX) {
      continue;
    }
    const Target& o = old.at(i);
    t->downUntilNs.store(o.downUntilNs.load());
    t->drainingUntilNs.store(o.drainingUntilNs.load());
    t->forwarded.store(o.forwarded.load());
    t->timeouts.store(o.timeouts.load());
    t->responses.store(o.responses.load());
  }
}

}  // namespace evosip::role
