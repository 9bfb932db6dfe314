#pragma once
// DNS for peers given by name: A/AAAA and SRV records (RFC 3263 4.2: `_sip._udp.NAME` for a
// name without a port) with their TTLs, and the hosts file. Lookups run on a thread of their own,
// never on a worker: a Resolver keeps the answers of the names it is told to watch, looks each one
// up again when its TTL (bounded by minTtl..maxTtl) runs out, keeps the last good answer when a
// lookup fails, and calls back when an answer changes. Names met at run time (a request's next
// hop) are looked up on demand instead (lookup()): on threads of their own, a bounded number at
// once, into a bounded cache of their own that never touches the watched names.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include <evosip/base/result.hpp>
#include <evosip/transport/address.hpp>

namespace evosip::transport {

// One record of a DNS answer of the types the resolver uses.
struct DnsRecord {
  enum class Type : uint8_t { kA, kAaaa, kSrv, kCname };
  Type type = Type::kA;
  std::string name;  // owner name, lower case, without the trailing dot
  uint32_t ttl = 0;
  boost::asio::ip::address address;  // A, AAAA
  uint16_t priority = 0;             // SRV
  uint16_t weight = 0;               // SRV
  uint16_t port = 0;                 // SRV
  std::string target;                // SRV target, CNAME canonical name (lower case, no dot)
};

struct DnsAnswer {
  int rcode = 0;                      // 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ...
  std::vector<DnsRecord> answers;     // answer section
  std::vector<DnsRecord> additional;  // additional section (the addresses of SRV targets)
};

// A DNS name as the resolver compares names: lower case, without the trailing dot.
std::string canonicalName(std::string_view name);

// Parses a DNS response message (RFC 1035 4.1) as a server sent it. Records of other types or
// classes are skipped; a message that is not a response or does not hold together is an error.
Result<DnsAnswer> parseDnsAnswer(std::span<const uint8_t> message);

// The addresses of `name` in an answer: its A/AAAA records and those of the names its CNAME
// records lead to (at most 8 steps). ttl is lowered to the smallest TTL used.
std::vector<boost::asio::ip::address> addressesOf(const DnsAnswer& answer, std::string_view name,
                                                  uint32_t& ttl);

// A name and how to look it up: with a service ("_sip._udp"), the SRV records of SERVICE.HOST
// first and, when it has none, the A/AAAA records of HOST with `port` (RFC 3263 4.2); without,
// A/AAAA with `port`. A name in the hosts file (/etc/hosts) is answered from there, as the C
// library does ("hosts: files dns"), with `port`.
struct DnsQuery {
  std::string host;  // lower case
  uint16_t port = 0;
  std::string service;  // "" or "_NAME._PROTO"

  auto operator<=>(const DnsQuery&) const = default;
  std::string str() const;  // "_sip._udp.host (SRV)" / "host:port"
};

// One address a name led to, with the order RFC 3263 gives it: lower priority first, then a
// higher weight more often. Addresses of A/AAAA records have priority 0 and weight 0.
struct ResolvedHop {
  Endpoint endpoint;
  uint16_t priority = 0;
  uint16_t weight = 0;
  bool operator==(const ResolvedHop&) const = default;
};

struct Resolution {
  std::vector<ResolvedHop> hops;  // by priority, then address
  bool answered = false;          // a lookup of the name has completed (with any result)
  bool succeeded = false;         // an answer (maybe an empty one) came at least once
  std::string error;              // the last lookup's failure; empty after a success
  uint32_t ttl = 0;               // of the answer in use
  std::chrono::steady_clock::time_point refreshAt{};
};

struct ResolverSettings {
  std::vector<Endpoint> servers;  // IPv4 or IPv6 "ip:port"; empty: those of /etc/resolv.conf
  // An answer is used at least minTtl (also the TTL of hosts-file answers and the retry of a
  // failed lookup) and at most maxTtl.
  std::chrono::milliseconds minTtl{5000};
  std::chrono::milliseconds maxTtl{300000};
  int timeoutS = 2;  // per attempt and server
  int attempts = 2;
  // Names looked up on demand: at most maxLookups distinct names queued or in progress (more
  // are refused), by lookupThreads threads; at most maxCached answers kept (the least recently
  // used goes first); at most maxHops addresses kept per name.
  size_t maxLookups = 64;
  size_t maxCached = 1024;
  int lookupThreads = 2;
  size_t maxHops = 16;
};

// How an on-demand lookup started.
enum class LookupStart : uint8_t {
  kCached,  // a fresh answer is in the cache: use cached(), no callback
  kQueued,  // looked up now (or joined a lookup of the same name in progress): callback follows
  kBusy,    // maxLookups names are being looked up already: refused, no callback
};

class Resolver {
 public:
  using OnChange = std::function<void(const DnsQuery&)>;
  using OnResolved = std::function<void(const DnsQuery&, const Resolution&)>;

  // onChange runs on the resolver's thread, after an answer that changed a name's hops, with no
  // lock of the resolver held (it may call get()).
  Resolver(ResolverSettings settings, OnChange onChange);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // The names to keep resolved from now on: new ones are looked up at once, the answers of names
  // no longer wanted are dropped.
  void setWanted(const std::vector<DnsQuery>& queries);
  // What is known of a wanted name (nullopt when it is not wanted).
  std::optional<Resolution> get(const DnsQuery& query) const;
  // Waits until every wanted name has been looked up once, at most `limit`.
  void waitAnswered(std::chrono::milliseconds limit) const;

  // On-demand names. The cached answer of a name while its TTL (bounded by minTtl..maxTtl) lasts;
  // a failed lookup is remembered minTtl (keeping the hops of an earlier answer, if any). A
  // Resolution with an error and no hops: the name servers did not answer; without an error and
  // with no hops: the name has no address.
  std::optional<Resolution> cached(const DnsQuery& query) const;
  // Starts looking the name up unless its answer is cached. `done` runs once on a lookup thread,
  // with no lock of the resolver held, unless the Resolver is destroyed first.
  LookupStart lookup(const DnsQuery& query, OnResolved done);
  size_t cachedCount() const;
  size_t lookupsInProgress() const;

 private:
  // Shared with the thread, which may outlive the Resolver by one lookup in progress (the
  // destructor does not wait for a DNS timeout; it waits only for a callback that runs).
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace evosip::transport
