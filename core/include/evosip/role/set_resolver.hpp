#pragma once
// Peer sets whose entries may be DNS names (`sip:router-0.evosip-router:5060`,
// `sip:evosip-router` for its SRV records, `relay-0.evosip-media:2223`): a SetResolver keeps each
// named set of a role, has its names looked up by a transport::Resolver (its own thread: no
// worker ever waits for DNS) and publishes a new TargetSet of numeric addresses whenever an
// answer changes. A set of numeric entries only is published at once and needs no thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>

#include <evosip/base/result.hpp>
#include <evosip/config/config.hpp>
#include <evosip/role/set_request.hpp>
#include <evosip/role/target_set.hpp>
#include <evosip/transport/resolver.hpp>

namespace evosip::role {

// How a set writes its entries: sip: URIs (routers, apps; port 5060 when not given, SRV first
// for a name without a port) or ng addresses ("udp:HOST:PORT", "HOST:PORT", "HOST").
enum class TargetForm : uint8_t { kSipUri, kAddress };

struct TargetEntry {
  std::string text;                            // as given
  std::optional<transport::Endpoint> numeric;  // a numeric entry
  transport::DnsQuery query;                   // a name: how it is looked up
};

// One entry: a numeric one, or one with a host name. Errors name the entry.
Result<TargetEntry> parseTargetEntry(std::string_view text, TargetForm form, uint16_t defaultPort);

// dns.servers, dns.min_ttl_s, dns.max_ttl_s, dns.timeout_s, dns.attempts.
transport::ResolverSettings readResolverSettings(config::Document& doc);
// A list of name servers, "IPv4[:PORT]", "[IPv6]:PORT" or a bare IPv6 address (port 53 by
// default), at `key`.
std::vector<transport::Endpoint> readNameServers(config::Document& doc, const std::string& key);

class SetResolver {
 public:
  using Publish = std::function<void(std::shared_ptr<TargetSet>)>;

  explicit SetResolver(transport::ResolverSettings settings);
  ~SetResolver();
  SetResolver(const SetResolver&) = delete;
  SetResolver& operator=(const SetResolver&) = delete;

  // Checks the targets and the draining list (each draining entry is one of the targets).
  static Result<std::vector<TargetEntry>> check(const SetRequest& request, TargetForm form,
                                                uint16_t defaultPort);

  // Replaces set `request.set`: publishes its numeric entries and the addresses of its names once
  // each name has been looked up (at once when they all are; until then the previous set stays),
  // and again, on the resolver's thread, whenever one of its names' answers changes. A draining
  // name drains every address it has.
  Result<void> assign(const SetRequest& request, TargetForm form, uint16_t defaultPort,
                      Publish publish);

  // Waits until every name has been looked up once, at most `limit` (start-up).
  void waitAnswered(std::chrono::milliseconds limit) const;
  // How long a role starting with names waits for their first answers: one lookup of each kind
  // that runs to its last attempt, at most 10 s.
  static std::chrono::milliseconds startWait(const transport::ResolverSettings& settings);

  // The names of a set as dispatcher.list shows them: name, lookup, addresses, ttl, error.
  boost::json::array names(const std::string& set) const;

 private:
  struct Named {
    std::vector<TargetEntry> entries;
    std::vector<std::string> draining;
    TargetForm form = TargetForm::kSipUri;
    Publish publish;
  };

  void onAnswer(const transport::DnsQuery& query);
  std::shared_ptr<TargetSet> build(const Named& set) const;
  bool answered(const Named& set) const;
  void updateWanted();

  transport::ResolverSettings settings_;
  mutable std::mutex mutex_;  // held while a set is built and published, so sets go out in order
  std::map<std::string, Named> sets_;
  std::unique_ptr<transport::Resolver> resolver_;  // made when a first name is given
};

}  // namespace evosip::role
