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

size_t TargetSet::pick(std::string_view key, int64_t nowNs, size_t exclude,
                       std::optional<bool> v6) const {
  const uint64_t keyHash = hash64(key);
  size_t best = SIZE_MAX;  // takes new work
  uint64_t bestWeight = 0;
  size_t bestDraining = SIZE_MAX;
  uint64_t bestDrainingWeight = 0;
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (i == exclude || !targets_[i]->upAt(nowNs) ||
        (v6 && targets_[i]->endpoint.ip.is_v6() != *v6)) {
      continue;
    }
    const uint64_t w = rendezvousWeight(keyHash, targets_[i]->nameHash);
    if (targets_[i]->drainingAt(nowNs)) {
      if (bestDraining == SIZE_MAX || w > bestDrainingWeight) {
        bestDraining = i;
        bestDrainingWeight = w;
      }
    } else if (best == SIZE_MAX || w > bestWeight) {
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
    const size_t i = findUri(uri);
    if (i == SIZE_MAX) {
      return makeError(Errc::kInvalid, "draining target '" + uri + "' is not among the targets");
    }
    targets_[i]->drainingBySet = true;
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
