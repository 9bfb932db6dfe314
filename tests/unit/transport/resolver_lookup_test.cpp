// On-demand lookups of transport::Resolver against a name server on loopback (IPv4 and IPv6):
// the cache, its bound, the bound on lookups at once, answers without an address, failures.
#include <arpa/inet.h>
#include <atomic>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include <evosip/transport/resolver.hpp>

namespace evosip::transport {
namespace {

using namespace std::chrono_literals;

// A name server answering A queries from a table (other names: NXDOMAIN, other types: NODATA).
class NameServer {
 public:
  explicit NameServer(bool v6) {
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    if (v6) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      socklen_t len = sizeof a;
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      endpoint_ = Endpoint{boost::asio::ip::make_address("::1"), ntohs(a.sin6_port)};
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      socklen_t len = sizeof a;
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      endpoint_ = Endpoint{boost::asio::ip::make_address("127.0.0.1"), ntohs(a.sin_port)};
    }
    timeval tv{0, 100000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    thread_ = std::thread([this] { run(); });
  }
  ~NameServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }

  bool ok() const { return ok_; }
  Endpoint endpoint() const { return endpoint_; }
  void set(const std::string& name, const std::string& ipv4) {
    std::lock_guard lock(mutex_);
    table_[name] = ipv4;
  }
  std::atomic<bool> silent{false};
  std::atomic<int> queries{0};

 private:
  void run() {
    while (!stop_) {
      uint8_t buf[512];
      sockaddr_storage from{};
      socklen_t len = sizeof from;
      const ssize_t n =
          ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 12) {
        continue;
      }
      ++queries;
      if (silent) {
        continue;
      }
      // The question: labels from offset 12, then type and class.
      size_t at = 12;
      std::string name;
      while (at < static_cast<size_t>(n) && buf[at] != 0) {
        const size_t l = buf[at];
        name += (name.empty() ? "" : ".") + std::string(reinterpret_cast<char*>(buf + at + 1), l);
        at += l + 1;
      }
      const size_t questionEnd = at + 5;
      if (questionEnd > static_cast<size_t>(n)) {
        continue;
      }
      const int type = (buf[at + 1] << 8) | buf[at + 2];
      std::string address;
      bool exists = false;
      {
        std::lock_guard lock(mutex_);
        auto it = table_.find(name);
        exists = it != table_.end();
        address = exists ? it->second : "";
      }
      std::vector<uint8_t> out(buf, buf + questionEnd);
      out[2] = 0x84;
      out[3] = static_cast<uint8_t>(0x80 | (exists ? 0 : 3));
      out[6] = out[7] = out[8] = out[9] = out[10] = out[11] = 0;
      if (exists && type == 1) {
        out[7] = 1;
        const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4};
        out.insert(out.end(), rr, rr + sizeof rr);
        in_addr a{};
        ::inet_pton(AF_INET, address.c_str(), &a);
        const auto* b = reinterpret_cast<const uint8_t*>(&a);
        out.insert(out.end(), b, b + 4);
      }
      ::sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }

  int fd_ = -1;
  bool ok_ = false;
  Endpoint endpoint_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::map<std::string, std::string> table_;
  std::thread thread_;
};

ResolverSettings settingsFor(const NameServer& server) {
  ResolverSettings s;
  s.servers = {server.endpoint()};
  s.minTtl = 1000ms;
  s.maxTtl = 60000ms;
  s.timeoutS = 1;
  s.attempts = 1;
  return s;
}

// Looks the query up and waits for the answer (at most 5 s).
std::optional<Resolution> lookUp(Resolver& r, const DnsQuery& q) {
  auto done = std::make_shared<std::promise<Resolution>>();
  auto answer = done->get_future();
  if (r.lookup(q, [done](const DnsQuery&, const Resolution& res) { done->set_value(res); }) !=
      LookupStart::kQueued) {
    return std::nullopt;
  }
  if (answer.wait_for(5s) != std::future_status::ready) {
    return std::nullopt;
  }
  return answer.get();
}

TEST(ResolverLookup, AnswerIsCachedAndUsedAtOnce) {
  NameServer server(false);
  ASSERT_TRUE(server.ok());
  server.set("gw.test", "127.0.0.9");
  Resolver resolver(settingsFor(server), nullptr);
  const DnsQuery q{"gw.test", 5080, ""};
  EXPECT_FALSE(resolver.cached(q));
  auto answer = lookUp(resolver, q);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->hops.size(), 1u);
  EXPECT_EQ(answer->hops[0].endpoint.str(), "127.0.0.9:5080");
  EXPECT_TRUE(answer->error.empty());
  const int asked = server.queries;
  EXPECT_EQ(resolver.lookup(q, [](const DnsQuery&, const Resolution&) { FAIL(); }),
            LookupStart::kCached);
  ASSERT_TRUE(resolver.cached(q));
  EXPECT_EQ(resolver.cached(q)->hops, answer->hops);
  EXPECT_EQ(server.queries, asked);
}

TEST(ResolverLookup, SrvFallsBackToAddressRecordsAndUnknownNamesHaveNoAddress) {
  NameServer server(false);
  ASSERT_TRUE(server.ok());
  server.set("gw.test", "127.0.0.9");
  Resolver resolver(settingsFor(server), nullptr);
  auto srv = lookUp(resolver, DnsQuery{"gw.test", 5060, "_sip._udp"});
  ASSERT_TRUE(srv);
  ASSERT_EQ(srv->hops.size(), 1u);
  EXPECT_EQ(srv->hops[0].endpoint.str(), "127.0.0.9:5060");
  auto none = lookUp(resolver, DnsQuery{"nowhere.test", 5060, "_sip._udp"});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->hops.empty());
  EXPECT_TRUE(none->error.empty());
}

TEST(ResolverLookup, SilentServerIsAFailureRememberedMinTtl) {
  NameServer server(false);
  ASSERT_TRUE(server.ok());
  server.silent = true;
  Resolver resolver(settingsFor(server), nullptr);
  const DnsQuery q{"gw.test", 5060, ""};
  auto answer = lookUp(resolver, q);
  ASSERT_TRUE(answer);
  EXPECT_TRUE(answer->hops.empty());
  EXPECT_FALSE(answer->error.empty());
  EXPECT_EQ(resolver.lookup(q, [](const DnsQuery&, const Resolution&) {}), LookupStart::kCached);
}

TEST(ResolverLookup, LookupsAtOnceAreBoundedAndTheSameNameJoins) {
  NameServer server(false);
  ASSERT_TRUE(server.ok());
  server.silent = true;
  auto settings = settingsFor(server);
  settings.maxLookups = 2;
  settings.lookupThreads = 1;
  Resolver resolver(settings, nullptr);
  auto ignore = [](const DnsQuery&, const Resolution&) {};
  EXPECT_EQ(resolver.lookup({"a.test", 5060, ""}, ignore), LookupStart::kQueued);
  EXPECT_EQ(resolver.lookup({"b.test", 5060, ""}, ignore), LookupStart::kQueued);
  EXPECT_EQ(resolver.lookup({"a.test", 5060, ""}, ignore), LookupStart::kQueued);
  EXPECT_EQ(resolver.lookup({"c.test", 5060, ""}, ignore), LookupStart::kBusy);
  EXPECT_EQ(resolver.lookupsInProgress(), 2u);
}

TEST(ResolverLookup, CacheKeepsTheMostRecentNamesOnly) {
  NameServer server(false);
  ASSERT_TRUE(server.ok());
  auto settings = settingsFor(server);
  settings.maxCached = 3;
  Resolver resolver(settings, nullptr);
  for (int i = 0; i < 6; ++i) {
    const std::string name = "n" + std::to_string(i) + ".test";
    server.set(name, "127.0.0.1");
    ASSERT_TRUE(lookUp(resolver, DnsQuery{name, 5060, ""}));
    EXPECT_LE(resolver.cachedCount(), 3u);
  }
  EXPECT_TRUE(resolver.cached(DnsQuery{"n5.test", 5060, ""}));
  EXPECT_FALSE(resolver.cached(DnsQuery{"n0.test", 5060, ""}));
}

TEST(ResolverLookup, AsksAnIpv6NameServer) {
  NameServer server(true);
  if (!server.ok()) {
    GTEST_SKIP() << "no ::1 on this machine";
  }
  server.set("gw.test", "127.0.0.9");
  Resolver resolver(settingsFor(server), nullptr);
  auto answer = lookUp(resolver, DnsQuery{"gw.test", 5080, ""});
  ASSERT_TRUE(answer);
  EXPECT_TRUE(answer->error.empty()) << answer->error;
  ASSERT_EQ(answer->hops.size(), 1u);
  EXPECT_EQ(answer->hops[0].endpoint.str(), "127.0.0.9:5080");
  EXPECT_GE(server.queries, 1);
}

}  // namespace
}  // namespace evosip::transport
