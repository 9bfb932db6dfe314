// The HTTP server's defences against connection floods: the read deadline, the per-source cap,
// idle eviction and the probe reserve, seen from raw client sockets.

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <poll.h>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/control/client.hpp>
#include <evosip/control/http_server.hpp>

namespace evosip::control {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto kTimeout = 5000ms;

// Counts the server's connection events (the observer runs on the server thread).
struct Events {
  std::mutex mutex;
  std::map<ConnectionEvent, int> counts;
  HttpServer::ConnectionObserver observer() {
    return [this](ConnectionEvent e) {
      std::lock_guard lock(mutex);
      ++counts[e];
    };
  }
  int operator[](ConnectionEvent e) {
    std::lock_guard lock(mutex);
    return counts[e];
  }
};

HttpServer::Handler okHandler() {
  return [](const HttpRequest& req, HttpServer::Respond respond) {
    respond(makeHttpResponse(200, "ok " + req.path));
  };
}

class Client {
 public:
  explicit Client(uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  void send(std::string_view text) { asio::write(socket_, asio::buffer(text)); }
  // True when the server closed the connection (EOF or reset) within wait; false when it is
  // still open (nothing to read) at the end of wait.
  bool closedWithin(std::chrono::milliseconds wait) {
    const auto end = std::chrono::steady_clock::now() + wait;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      pollfd p{socket_.native_handle(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0))) <= 0) {
        return false;
      }
      char scratch[512];
      boost::system::error_code ec;
      socket_.read_some(asio::buffer(scratch), ec);
      if (ec) {
        return true;
      }
    }
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
};

std::string address(const HttpServer& server) {
  return "127.0.0.1:" + std::to_string(server.port());
}

TEST(HttpServerLimitsTest, ARequestThatDoesNotArriveWithinTheReadTimeoutIsClosed) {
  HttpServerSettings settings{"127.0.0.1:0", "test", "test.listen"};
  settings.readTimeout = 1s;
  Events events;
  HttpServer server(settings, okHandler(), events.observer());
  server.start();
  Client slow(server.port());
  slow.send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // the header never ends
  Client silent(server.port());                       // never sends anything
  EXPECT_FALSE(slow.closedWithin(500ms));
  EXPECT_TRUE(slow.closedWithin(3000ms));
  EXPECT_TRUE(silent.closedWithin(1000ms));
  // A whole request in time is answered.
  auto r = httpRequest(address(server), "GET", "/x", "", "", kTimeout);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->body, "ok /x");
  EXPECT_EQ(events[ConnectionEvent::kReadTimeout], 2);
}

TEST(HttpServerLimitsTest, ANewConnectionTakesThePlaceOfTheOldestIdleOne) {
  HttpServerSettings settings{"127.0.0.1:0", "test", "test.listen"};
  settings.maxConnections = 4;
  Events events;
  HttpServer server(settings, okHandler(), events.observer());
  server.start();
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(std::make_unique<Client>(server.port()));
  }
  // Two more idle connections, then a request: each takes the place of the oldest idle one.
  idle.push_back(std::make_unique<Client>(server.port()));
  idle.push_back(std::make_unique<Client>(server.port()));
  auto r = httpRequest(address(server), "GET", "/healthz", "", "", kTimeout);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(events[ConnectionEvent::kEvicted], 3);
  EXPECT_EQ(events[ConnectionEvent::kRefused], 0);
  // The three oldest went, in order; the youngest is still open.
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(idle[i]->closedWithin(1000ms)) << i;
  }
  EXPECT_FALSE(idle[3]->closedWithin(200ms));
}

TEST(HttpServerLimitsTest, OneSourceGetsAtMostItsShareAndBusyConnectionsAreNotEvicted) {
  HttpServerSettings settings{"127.0.0.1:0", "test", "test.listen"};
  settings.maxConnectionsPerSource = 2;
  Events events;
  HttpServer server(settings, okHandler(), events.observer());
  server.start();
  // Two connections in the middle of a request: not idle, so nothing can be evicted.
  Client a(server.port());
  Client b(server.port());
  a.send("GET / HTTP/1.1\r\n");
  b.send("GET / HTTP/1.1\r\n");
  EXPECT_FALSE(a.closedWithin(200ms));
  Client third(server.port());
  EXPECT_TRUE(third.closedWithin(1000ms));
  EXPECT_EQ(events[ConnectionEvent::kRefused], 1);
  EXPECT_FALSE(a.closedWithin(100ms));
  EXPECT_FALSE(b.closedWithin(100ms));
}

TEST(HttpServerLimitsTest, ProbesAreServedFromTheReserveWhenEverySlotIsBusy) {
  HttpServerSettings settings{"127.0.0.1:0", "test", "test.listen"};
  settings.maxConnections = 2;
  settings.probePaths = {"/healthz", "/readyz"};
  settings.probeReserve = 2;
  Events events;
  HttpServer server(settings, okHandler(), events.observer());
  server.start();
  Client a(server.port());
  Client b(server.port());
  a.send("POST /rpc HTTP/1.1\r\n");
  b.send("POST /rpc HTTP/1.1\r\n");
  EXPECT_FALSE(a.closedWithin(200ms));
  for (int i = 0; i < 3; ++i) {
    auto health = httpRequest(address(server), "GET", "/healthz", "", "", kTimeout);
    ASSERT_TRUE(health) << health.error();
    EXPECT_EQ(health->status, 200u);
    EXPECT_EQ(health->body, "ok /healthz");
  }
  auto ready = httpRequest(address(server), "GET", "/readyz?verbose", "", "", kTimeout);
  ASSERT_TRUE(ready) << ready.error();
  EXPECT_EQ(ready->status, 200u);
  // Anything else on a reserve connection: 503, and the handler never sees it.
  auto rpc = httpRequest(address(server), "POST", "/healthz", "", "{}", kTimeout);
  ASSERT_TRUE(rpc) << rpc.error();
  EXPECT_EQ(rpc->status, 503u);
  auto other = httpRequest(address(server), "GET", "/metrics", "", "", kTimeout);
  ASSERT_TRUE(other) << other.error();
  EXPECT_EQ(other->status, 503u);
  EXPECT_EQ(events[ConnectionEvent::kRefused], 0);
  // Beyond the reserve a connection is closed at once; a reserve connection that sends nothing
  // is closed after the probe deadline.
  std::vector<std::unique_ptr<Client>> extra;
  for (int i = 0; i < 3; ++i) {
    extra.push_back(std::make_unique<Client>(server.port()));
  }
  int closedAtOnce = 0;
  for (auto& c : extra) {
    closedAtOnce += c->closedWithin(500ms) ? 1 : 0;
  }
  EXPECT_EQ(closedAtOnce, 1);
  EXPECT_EQ(events[ConnectionEvent::kRefused], 1);
  for (auto& c : extra) {
    EXPECT_TRUE(c->closedWithin(std::chrono::milliseconds(kProbeReadTimeout) + 2000ms));
  }
  EXPECT_FALSE(a.closedWithin(100ms));
}

TEST(HttpServerLimitsTest, StopClosesHeldAndEvictedConnections) {
  HttpServerSettings settings{"127.0.0.1:0", "test", "test.listen"};
  settings.maxConnections = 1;
  HttpServer server(settings, okHandler());
  server.start();
  Client a(server.port());
  Client b(server.port());  // evicts a
  EXPECT_TRUE(a.closedWithin(1000ms));
  server.stop();
  EXPECT_TRUE(b.closedWithin(1000ms));
}

}  // namespace
}  // namespace evosip::control
