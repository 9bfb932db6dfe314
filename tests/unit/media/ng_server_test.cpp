// The ng socket in process: who gets an answer (media.ng_allow) and what the reply cache gives
// back (only to the source that sent the cookie, and only for 30 s on the server's clock).
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <evosip/config/config.hpp>
#include <evosip/media/media_service.hpp>
#include <evosip/media/ng_server.hpp>

namespace evosip::media {
namespace {

// A UDP client bound to a loopback address of its choice (127.0.0.2 is loopback too).
struct Client {
  explicit Client(const char* ip) {
    fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, ip, &a.sin_addr);
    bound = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{0, 300000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Client() { ::close(fd); }
  std::string ask(uint16_t port, const std::string& datagram) const {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port);
    ::sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n <= 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
  }
  int fd = -1;
  bool bound = false;
};

// A manual clock the test thread moves while the ng thread reads it.
class SharedManualClock final : public runtime::Clock {
 public:
  time_point now() const override { return time_point(std::chrono::nanoseconds(nowNs_.load())); }
  void advance(std::chrono::nanoseconds d) { nowNs_ += d.count(); }

 private:
  std::atomic<int64_t> nowNs_{1'000'000'000'000};
};

class NgServerTest : public ::testing::Test {
 protected:
  void start(const std::vector<std::string>& allow, const std::string& listen = "127.0.0.1:0") {
    server = std::make_unique<NgServer>(
        listen, *transport::AddressAcl::parse(allow),
        [this](std::string_view, bencode::Value, NgServer::Reply reply) {
          const int n = ++handled;
          bencode::Value r = bencode::ngOk();
          r.set("n", static_cast<int64_t>(n)).set("padding", std::string(1500, 'x'));
          reply(std::move(r));
        },
        clock);
    server->start();
  }
  void TearDown() override { server.reset(); }

  SharedManualClock clock;
  std::unique_ptr<NgServer> server;
  std::atomic<int> handled{0};
};

TEST_F(NgServerTest, SourcesOutsideTheAllowListGetNoReply) {
  start({"127.0.0.1/32"});
  Client allowed("127.0.0.1"), outsider("127.0.0.2");
  ASSERT_TRUE(outsider.bound);
  EXPECT_EQ(outsider.ask(server->port(), "c1 d7:command4:pinge"), "");
  // Not even an error for a datagram that does not parse.
  EXPECT_EQ(outsider.ask(server->port(), "c2 garbage"), "");
  EXPECT_EQ(handled.load(), 0);
  EXPECT_EQ(server->counters().refused.load(), 2u);
  EXPECT_NE(allowed.ask(server->port(), "c3 d7:command4:pinge").find("c3 d"), std::string::npos);
  EXPECT_EQ(handled.load(), 1);
}

TEST_F(NgServerTest, CachedRepliesGoOnlyToTheSourceOfTheCookie) {
  start({"127.0.0.0/8"});
  Client first("127.0.0.1"), second("127.0.0.1");
  const std::string cmd = "cookie-1 d7:command4:pinge";
  const std::string reply = first.ask(server->port(), cmd);
  ASSERT_NE(reply.find("1:ni1e"), std::string::npos) << reply;
  // The same datagram from the same source: a retransmission, answered from the cache.
  EXPECT_EQ(first.ask(server->port(), cmd), reply);
  EXPECT_EQ(handled.load(), 1);
  EXPECT_EQ(server->counters().retransmissions.load(), 1u);
  // The same cookie from another port is another client's command: handled, not replayed.
  const std::string other = second.ask(server->port(), cmd);
  EXPECT_NE(other.find("1:ni2e"), std::string::npos) << other;
  EXPECT_EQ(handled.load(), 2);
  // A short datagram with a cookie it never sent gets nothing from the cache.
  Client third("127.0.0.1");
  const std::string guess = third.ask(server->port(), "cookie-1 x");
  EXPECT_NE(guess.find("error"), std::string::npos) << guess;
  EXPECT_LT(guess.size(), 200u) << "a 10-byte datagram got the 1.5 KB reply of another source";
  EXPECT_EQ(handled.load(), 2);
}

TEST_F(NgServerTest, CachedRepliesExpireThirtySecondsAfterTheReply) {
  start({"127.0.0.1/32"});
  Client client("127.0.0.1");
  const std::string cmd = "cookie-2 d7:command4:pinge";
  const std::string reply = client.ask(server->port(), cmd);
  ASSERT_NE(reply.find("1:ni1e"), std::string::npos) << reply;
  clock.advance(std::chrono::seconds(30));  // 30 s after the reply: still a retransmission
  EXPECT_EQ(client.ask(server->port(), cmd), reply);
  EXPECT_EQ(handled.load(), 1);
  EXPECT_EQ(server->counters().retransmissions.load(), 1u);
  clock.advance(std::chrono::seconds(1));  // later: the cookie is a new command
  const std::string again = client.ask(server->port(), cmd);
  EXPECT_NE(again.find("1:ni2e"), std::string::npos) << again;
  EXPECT_EQ(handled.load(), 2);
  EXPECT_EQ(server->counters().retransmissions.load(), 1u);
}

TEST(MediaConfigTest, MaxSessionsFollowsThePortRangeAndNgAllowDefaultsToLoopback) {
  auto doc =
      config::Document::fromString("media:\n  port_min: 30000\n  port_max: 40000\nworkers: 2\n");
  doc.setEnvironment([](const std::string&) { return std::nullopt; });
  const MediaConfig c = readMediaConfig(doc);
  // 5,000 pairs; a call takes at most 2 legs x 4 streams = 8 pairs.
  EXPECT_EQ(c.relay.maxStreams, 4u);
  EXPECT_EQ(c.relay.maxSessions, 625u);
  EXPECT_EQ(defaultMaxSessions(30000, 30003, 4), 1u);
  EXPECT_EQ(defaultMaxSessions(30001, 30100, 1), 24u);  // 49 pairs / 2
  EXPECT_TRUE(c.ngAllow.allows(boost::asio::ip::make_address("127.0.0.1")));
  EXPECT_TRUE(c.ngAllow.allows(boost::asio::ip::make_address("::1")));
  EXPECT_FALSE(c.ngAllow.allows(boost::asio::ip::make_address("10.0.0.1")));
}

TEST(MediaConfigTest, ExplicitValuesAndErrorsNameTheKey) {
  auto read = [](const std::string& yaml) {
    auto doc = config::Document::fromString(yaml);
    doc.setEnvironment([](const std::string&) { return std::nullopt; });
    return readMediaConfig(doc);
  };
  EXPECT_EQ(read("media:\n  max_sessions: 0\n").relay.maxSessions, 0u);  // unlimited
  EXPECT_EQ(read("media:\n  max_sessions: 50\n").relay.maxSessions, 50u);
  EXPECT_EQ(read("media:\n  max_sessions: auto\n  max_streams: 1\n  port_min: 30000\n"
                 "  port_max: 30099\n")
                .relay.maxSessions,
            25u);
  const MediaConfig c = read("media:\n  ng_allow: [10.1.0.0/16, \"2001:db8::7\"]\n");
  EXPECT_TRUE(c.ngAllow.allows(boost::asio::ip::make_address("10.1.2.3")));
  EXPECT_FALSE(c.ngAllow.allows(boost::asio::ip::make_address("127.0.0.1")));
  for (const char* bad : {"media:\n  ng_allow: [10.0.0.1/8]\n", "media:\n  ng_allow: []\n",
                          "media:\n  max_streams: 0\n", "media:\n  max_sessions: lots\n"}) {
    try {
      read(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const config::ConfigError& e) {
      const std::string key = std::string(bad).substr(9, std::string(bad).find(':', 9) - 9);
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

// media.state: a fenced relay stops its ng socket (the port is free for the peer that takes the
// address over) and starts it again after the fence; a relay whose ng port a peer holds starts
// it once the port is free.
TEST_F(NgServerTest, StartsAgainOnTheSamePortAfterAStopOrAFailedStart) {
  Client holder("127.0.0.1");
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(holder.fd, reinterpret_cast<sockaddr*>(&a), &len);
  const uint16_t port = ntohs(a.sin_port);
  EXPECT_THROW(start({"127.0.0.0/8"}, "127.0.0.1:" + std::to_string(port)), std::runtime_error);
  EXPECT_FALSE(server->running());
  ::close(holder.fd);
  holder.fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  server->start();  // the port is free now
  EXPECT_TRUE(server->running());
  Client client("127.0.0.1");
  EXPECT_NE(client.ask(port, "c1 d7:command4:pinge").find("c1 d"), std::string::npos);
  server->stop();
  EXPECT_FALSE(server->running());
  EXPECT_EQ(client.ask(port, "c2 d7:command4:pinge"), "");
  {
    sockaddr_in same{};
    same.sin_family = AF_INET;
    same.sin_port = htons(port);
    same.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&same), sizeof same), 0) << "port released";
    ::close(fd);
  }
  server->start();
  EXPECT_NE(client.ask(port, "c3 d7:command4:pinge").find("c3 d"), std::string::npos);
  EXPECT_EQ(handled.load(), 2);
}

}  // namespace
}  // namespace evosip::media
