#include <algorithm>
#include <cctype>
#include <set>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <evosip/base/strings.hpp>
#include <evosip/log/log.hpp>
#include <evosip/role/set_resolver.hpp>
#include <evosip/sip/uri.hpp>

namespace evosip::role {

namespace json = boost::json;

namespace {

// A DNS host name (RFC 1123 labels; '_' tolerated): 1..253 characters, labels of 1..63 letters,
// digits, '-' and '_', not starting or ending with '-', and not all digits (an IPv4 address).
bool isHostName(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  bool allDigits = true;
  size_t label = 0;
  for (size_t i = 0; i < host.size(); ++i) {
    const auto c = static_cast<unsigned char>(host[i]);
    if (c == '.') {
      if (label == 0 || host[i - 1] == '-') {
        return false;
      }
      label = 0;
      continue;
    }
    if (!std::isalnum(c) && c != '-' && c != '_') {
      return false;
    }
    if ((c == '-' && label == 0) || ++label > 63) {
      return false;
    }
    allDigits = allDigits && std::isdigit(c);
  }
  return !allDigits && host.back() != '-';
}

Result<TargetEntry> parseSipEntry(std::string_view text) {
  auto uri = sip::parseUri(text);
  if (!uri || !uri->isSip() || uri->hostType == sip::HostType::kNone) {
    return makeError(Errc::kInvalid, fmt::format("target '{}' is not a sip: URI", text));
  }
  TargetEntry entry;
  entry.text = std::string(text);
  if (uri->hostType != sip::HostType::kDomain) {
    auto ep = transport::parseEndpoint(uri->hostText, uri->portOrDefault());
    if (!ep) {
      return makeError(Errc::kInvalid, fmt::format("target '{}': {}", text, ep.error().message));
    }
    ep->port = uri->portOrDefault();
    entry.numeric = *ep;
    return entry;
  }
  if (!isHostName(uri->host)) {
    return makeError(Errc::kInvalid,
                     fmt::format("target '{}': '{}' is not a host name", text, uri->host));
  }
  // RFC 3263 4.2: SRV records only for a name without a port.
  entry.query = transport::DnsQuery{transport::canonicalName(uri->host), uri->portOrDefault(),
                                    uri->port == 0 ? "_sip._udp" : ""};
  return entry;
}

Result<TargetEntry> parseAddressEntry(std::string_view text, uint16_t defaultPort) {
  std::string_view rest = text;
  if (rest.starts_with("udp:")) {
    rest.remove_prefix(4);
  }
  TargetEntry entry;
  entry.text = std::string(text);
  if (auto ep = transport::parseEndpoint(rest, defaultPort)) {
    entry.numeric = *ep;
    return entry;
  }
  std::string_view host = rest;
  uint16_t port = defaultPort;
  if (const size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    auto parsed = parseDecimal(rest.substr(colon + 1), 65535);
    if (!parsed || *parsed == 0) {
      return makeError(Errc::kInvalid, fmt::format("target '{}': bad port", text));
    }
    port = static_cast<uint16_t>(*parsed);
  }
  if (!isHostName(host)) {
    return makeError(Errc::kInvalid,
                     fmt::format("target '{}' is neither an address nor a host name", text));
  }
  entry.query = transport::DnsQuery{transport::canonicalName(host), port, ""};
  return entry;
}

// RFC 3263 order inside one name: the rank of each distinct priority, lowest first.
std::vector<uint16_t> ranksOf(const std::vector<transport::ResolvedHop>& hops) {
  std::set<uint16_t> priorities;
  for (const auto& h : hops) {
    priorities.insert(h.priority);
  }
  std::vector<uint16_t> out;
  for (const auto& h : hops) {
    out.push_back(
        static_cast<uint16_t>(std::distance(priorities.begin(), priorities.find(h.priority))));
  }
  return out;
}

std::string addressUri(const transport::Endpoint& ep, TargetForm form) {
  return form == TargetForm::kSipUri ? fmt::format("sip:{}:{}", ep.hostForUri(), ep.port)
                                     : ep.str();
}

}  // namespace

Result<TargetEntry> parseTargetEntry(std::string_view text, TargetForm form, uint16_t defaultPort) {
  return form == TargetForm::kSipUri ? parseSipEntry(text) : parseAddressEntry(text, defaultPort);
}

std::vector<transport::Endpoint> readNameServers(config::Document& doc, const std::string& key) {
  std::vector<transport::Endpoint> out;
  for (const auto& text : doc.getList(key, {})) {
    auto ep = transport::parseEndpoint(text, 53);
    if (!ep) {
      throw config::ConfigError(key + ": '" + text +
                                "' is not an IPv4 address[:port] or an IPv6 [address]:port");
    }
    out.push_back(*ep);
  }
  if (out.size() > 3) {
    throw config::ConfigError(key + ": at most 3 name servers");
  }
  return out;
}

transport::ResolverSettings readResolverSettings(config::Document& doc) {
  transport::ResolverSettings s;
  s.servers = readNameServers(doc, "dns.servers");
  s.minTtl = std::chrono::seconds(doc.getInt("dns.min_ttl_s", 5, 1, 3600));
  s.maxTtl = std::chrono::seconds(doc.getInt("dns.max_ttl_s", 300, 1, 86400));
  if (s.maxTtl < s.minTtl) {
    throw config::ConfigError("dns.max_ttl_s: must not be below dns.min_ttl_s");
  }
  s.timeoutS = static_cast<int>(doc.getInt("dns.timeout_s", 2, 1, 30));
  s.attempts = static_cast<int>(doc.getInt("dns.attempts", 2, 1, 5));
  return s;
}

SetResolver::SetResolver(transport::ResolverSettings settings) : settings_(std::move(settings)) {}

SetResolver::~SetResolver() {
  std::unique_ptr<transport::Resolver> resolver;
  {
    std::lock_guard lock(mutex_);
    resolver = std::move(resolver_);
  }
  resolver.reset();  // outside the lock: a callback in progress may need it
}

Result<std::vector<TargetEntry>> SetResolver::check(const SetRequest& request, TargetForm form,
                                                    uint16_t defaultPort) {
  std::vector<TargetEntry> entries;
  for (const auto& text : request.targets) {
    auto entry = parseTargetEntry(text, form, defaultPort);
    if (!entry) {
      return tl::unexpected(entry.error());
    }
    for (const auto& other : entries) {
      if ((entry->numeric && other.numeric && *entry->numeric == *other.numeric) ||
          (!entry->numeric && !other.numeric && entry->query == other.query)) {
        return makeError(Errc::kInvalid, fmt::format("target '{}' is listed twice", text));
      }
    }
    entries.push_back(std::move(*entry));
  }
  for (const auto& d : request.draining) {
    if (std::find(request.targets.begin(), request.targets.end(), d) == request.targets.end()) {
      return makeError(Errc::kInvalid, "draining target '" + d + "' is not among the targets");
    }
  }
  return entries;
}

std::shared_ptr<TargetSet> SetResolver::build(const Named& set) const {
  std::vector<TargetAddress> addresses;
  auto draining = [&set](const std::string& text) {
    return std::find(set.draining.begin(), set.draining.end(), text) != set.draining.end();
  };
  for (const auto& e : set.entries) {
    if (e.numeric) {
      addresses.push_back(TargetAddress{e.text, *e.numeric, "", 0, 0, draining(e.text)});
      continue;
    }
    auto known = resolver_ ? resolver_->get(e.query) : std::nullopt;
    if (!known) {
      continue;
    }
    const auto ranks = ranksOf(known->hops);
    for (size_t i = 0; i < known->hops.size(); ++i) {
      const auto& hop = known->hops[i];
      addresses.push_back(TargetAddress{addressUri(hop.endpoint, set.form), hop.endpoint, e.text,
                                        ranks[i], hop.weight, draining(e.text)});
    }
  }
  return TargetSet::fromAddresses(addresses);
}

void SetResolver::updateWanted() {
  std::vector<transport::DnsQuery> wanted;
  for (const auto& [name, set] : sets_) {
    for (const auto& e : set.entries) {
      if (!e.numeric && std::find(wanted.begin(), wanted.end(), e.query) == wanted.end()) {
        wanted.push_back(e.query);
      }
    }
  }
  if (wanted.empty() && !resolver_) {
    return;
  }
  if (!resolver_) {
    resolver_ = std::make_unique<transport::Resolver>(
        settings_, [this](const transport::DnsQuery& q) { onAnswer(q); });
  }
  resolver_->setWanted(wanted);
}

Result<void> SetResolver::assign(const SetRequest& request, TargetForm form, uint16_t defaultPort,
                                 Publish publish) {
  auto entries = check(request, form, defaultPort);
  if (!entries) {
    return tl::unexpected(entries.error());
  }
  std::lock_guard lock(mutex_);
  Named& set = sets_[request.set];
  set.entries = std::move(*entries);
  set.draining = request.draining;
  set.form = form;
  set.publish = std::move(publish);
  updateWanted();
  if (answered(set)) {
    set.publish(build(set));
  }
  return {};
}

bool SetResolver::answered(const Named& set) const {
  return std::all_of(set.entries.begin(), set.entries.end(), [this](const TargetEntry& e) {
    if (e.numeric) {
      return true;
    }
    auto known = resolver_ ? resolver_->get(e.query) : std::nullopt;
    return known && known->answered;
  });
}

void SetResolver::onAnswer(const transport::DnsQuery& query) {
  std::lock_guard lock(mutex_);
  for (const auto& [name, set] : sets_) {
    const bool uses = std::any_of(set.entries.begin(), set.entries.end(),
                                  [&](const auto& e) { return !e.numeric && e.query == query; });
    if (uses && answered(set)) {
      auto built = build(set);
      log::get("dns")->info("set {}: {} address(es) after the answer for {}", name, built->size(),
                            query.str());
      set.publish(std::move(built));
    }
  }
}

void SetResolver::waitAnswered(std::chrono::milliseconds limit) const {
  const transport::Resolver* resolver = nullptr;
  {
    std::lock_guard lock(mutex_);
    resolver = resolver_.get();
  }
  // Without the lock: the resolver's thread takes it to publish each answer. The resolver lives
  // as long as this object.
  if (resolver != nullptr) {
    resolver->waitAnswered(limit);
  }
}

std::chrono::milliseconds SetResolver::startWait(const transport::ResolverSettings& settings) {
  const auto oneLookup = std::chrono::seconds(settings.timeoutS * settings.attempts *
                                              std::max<size_t>(1, settings.servers.size()));
  return std::min<std::chrono::milliseconds>(3 * oneLookup, std::chrono::seconds(10));
}

json::array SetResolver::names(const std::string& setName) const {
  std::lock_guard lock(mutex_);
  json::array out;
  auto it = sets_.find(setName);
  if (it == sets_.end() || !resolver_) {
    return out;
  }
  const auto now = std::chrono::steady_clock::now();
  for (const auto& e : it->second.entries) {
    if (e.numeric) {
      continue;
    }
    auto known = resolver_->get(e.query);
    json::array addresses;
    if (known) {
      for (const auto& hop : known->hops) {
        addresses.push_back(json::string(hop.endpoint.str()));
      }
    }
    json::object o{{"name", e.text},
                   {"lookup", e.query.str()},
                   {"addresses", std::move(addresses)},
                   {"resolved", known && known->answered},
                   {"ttl", known ? known->ttl : 0},
                   {"error", known ? known->error : std::string()}};
    if (known && known->answered) {
      o["refresh_in_ms"] = std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(known->refreshAt - now).count());
    }
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace evosip::role
