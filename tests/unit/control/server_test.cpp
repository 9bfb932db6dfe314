#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <netinet/in.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <vector>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/control/client.hpp>
#include <evosip/control/server.hpp>

namespace evosip::control {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr auto kTimeout = 5000ms;
constexpr const char* kToken = "t0ken-with-some-length";

// A blocking loopback TCP socket for what the client deliberately cannot do: keep-alive,
// malformed requests, holding connections open.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    timeval tv{5, 0};  // a safety net against a hung test, never a wait for success
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }
  void send(std::string_view data) {
    ASSERT_EQ(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(data.size()));
  }
  // Reads one response with a Content-Length body; "" when the server closed the connection.
  std::string readResponse() {
    for (;;) {
      size_t headerEnd = buffer_.find("\r\n\r\n");
      if (headerEnd != std::string::npos) {
        size_t length = 0;
        size_t field = buffer_.find("Content-Length: ");
        if (field != std::string::npos && field < headerEnd) {
          length = std::stoul(buffer_.substr(field + 16));
        }
        if (buffer_.size() >= headerEnd + 4 + length) {
          std::string response = buffer_.substr(0, headerEnd + 4 + length);
          buffer_.erase(0, response.size());
          return response;
        }
      }
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) {
        return "";
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  bool connected_ = false;
  std::string buffer_;
};

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rpc_.add("dispatcher.list", [](const json::value&) -> RpcResult {
      return json::parse(R"([{"target":"sip:10.0.0.5:5060","up":true}])");
    });
    rpc_.add("echo", [](const json::value& params) -> RpcResult { return params; });
    metrics_.counterFamily("evosip_test_requests_total", "Requests seen by the test")
        .Add({{"method", "INVITE"}})
        .Increment(2);
    server_ = std::make_unique<ControlServer>(ServerSettings{"127.0.0.1:0", kToken}, rpc_, metrics_,
                                              [this] { return ready_.load(); });
    server_->start();
    address_ = "127.0.0.1:" + std::to_string(server_->port());
  }

  tl::expected<HttpResponse, std::string> request(const std::string& method,
                                                  const std::string& path,
                                                  const std::string& token = kToken,
                                                  const std::string& body = "") {
    return httpRequest(address_, method, path, token, body, kTimeout);
  }

  RpcRegistry rpc_;
  metrics::Registry metrics_;
  std::atomic<bool> ready_{true};
  std::unique_ptr<ControlServer> server_;
  std::string address_;
};

TEST_F(ControlServerTest, BindsAnEphemeralPort) {
  EXPECT_NE(server_->port(), 0);
}

TEST_F(ControlServerTest, HealthzNeedsNoToken) {
  auto body = httpGet(address_, "/healthz", "", kTimeout);
  ASSERT_TRUE(body) << body.error();
  EXPECT_EQ(*body, "ok");
}

TEST_F(ControlServerTest, ReadyzFollowsTheCallback) {
  auto ready = request("GET", "/readyz", "");
  ASSERT_TRUE(ready) << ready.error();
  EXPECT_EQ(ready->status, 200U);
  EXPECT_EQ(ready->body, "ready");

  ready_ = false;
  auto notReady = request("GET", "/readyz", "");
  ASSERT_TRUE(notReady) << notReady.error();
  EXPECT_EQ(notReady->status, 503U);
  EXPECT_EQ(notReady->body, "not ready");
  auto viaGet = httpGet(address_, "/readyz", "", kTimeout);
  ASSERT_FALSE(viaGet);
  EXPECT_EQ(viaGet.error(), "HTTP 503: not ready");
}

TEST_F(ControlServerTest, RpcWithTokenCallsTheMethod) {
  auto result = callRpc(address_, kToken, "dispatcher.list", nullptr, kTimeout);
  ASSERT_TRUE(result) << result.error();
  EXPECT_EQ(*result, json::parse(R"([{"target":"sip:10.0.0.5:5060","up":true}])"));

  auto echoed = callRpc(address_, kToken, "echo", json::parse(R"({"set":"routers"})"), kTimeout);
  ASSERT_TRUE(echoed) << echoed.error();
  EXPECT_EQ(*echoed, json::parse(R"({"set":"routers"})"));
}

TEST_F(ControlServerTest, RpcWithoutOrWithWrongTokenIs401) {
  auto missing = request("POST", "/rpc", "", R"({"jsonrpc":"2.0","method":"echo","id":1})");
  ASSERT_TRUE(missing) << missing.error();
  EXPECT_EQ(missing->status, 401U);
  EXPECT_THAT(missing->header("WWW-Authenticate"), StartsWith("Bearer"));

  auto wrong = request("POST", "/rpc", "t0ken-with-some-lengtH", R"({"jsonrpc":"2.0"})");
  ASSERT_TRUE(wrong) << wrong.error();
  EXPECT_EQ(wrong->status, 401U);
  EXPECT_THAT(wrong->header("www-authenticate"), HasSubstr("invalid_token"));

  auto prefix = request("POST", "/rpc", "t0ken", R"({"jsonrpc":"2.0"})");
  ASSERT_TRUE(prefix) << prefix.error();
  EXPECT_EQ(prefix->status, 401U);

  auto viaClient = callRpc(address_, "", "echo", nullptr, kTimeout);
  ASSERT_FALSE(viaClient);
  EXPECT_THAT(viaClient.error(), StartsWith("HTTP 401"));
}

TEST_F(ControlServerTest, RpcErrorsReachTheClient) {
  auto result = callRpc(address_, kToken, "no.such", nullptr, kTimeout);
  ASSERT_FALSE(result);
  EXPECT_THAT(result.error(), HasSubstr("RPC error -32601: Method not found: 'no.such'"));
}

TEST_F(ControlServerTest, RpcNotificationGets204) {
  auto response = request("POST", "/rpc", kToken, R"({"jsonrpc":"2.0","method":"echo"})");
  ASSERT_TRUE(response) << response.error();
  EXPECT_EQ(response->status, 204U);
  EXPECT_EQ(response->body, "");
}

TEST_F(ControlServerTest, MalformedRpcBodyGetsAJsonRpcParseError) {
  auto response = request("POST", "/rpc", kToken, "{not json");
  ASSERT_TRUE(response) << response.error();
  EXPECT_EQ(response->status, 200U);
  EXPECT_EQ(response->header("Content-Type"), "application/json");
  EXPECT_EQ(json::parse(response->body).at("error").at("code"), -32700);
}

TEST_F(ControlServerTest, MetricsNeedTheTokenAndArePrometheusText) {
  auto denied = request("GET", "/metrics", "");
  ASSERT_TRUE(denied) << denied.error();
  EXPECT_EQ(denied->status, 401U);

  auto metrics = request("GET", "/metrics");
  ASSERT_TRUE(metrics) << metrics.error();
  EXPECT_EQ(metrics->status, 200U);
  EXPECT_EQ(metrics->header("Content-Type"), "text/plain; version=0.0.4");
  EXPECT_THAT(metrics->body, HasSubstr("evosip_test_requests_total{method=\"INVITE\"} 2"));

  auto viaGet = httpGet(address_, "/metrics", kToken, kTimeout);
  ASSERT_TRUE(viaGet) << viaGet.error();
  EXPECT_THAT(*viaGet, HasSubstr("# TYPE evosip_test_requests_total counter"));
}

TEST_F(ControlServerTest, UnknownPathIs404AndWrongMethodIs405) {
  auto missing = request("GET", "/nope");
  ASSERT_TRUE(missing) << missing.error();
  EXPECT_EQ(missing->status, 404U);

  auto getRpc = request("GET", "/rpc");
  ASSERT_TRUE(getRpc) << getRpc.error();
  EXPECT_EQ(getRpc->status, 405U);
  EXPECT_EQ(getRpc->header("Allow"), "POST");

  auto postHealth = request("POST", "/healthz", "", "{}");
  ASSERT_TRUE(postHealth) << postHealth.error();
  EXPECT_EQ(postHealth->status, 405U);
  EXPECT_EQ(postHealth->header("Allow"), "GET");

  auto withQuery = request("GET", "/healthz?verbose=1", "");
  ASSERT_TRUE(withQuery) << withQuery.error();
  EXPECT_EQ(withQuery->status, 200U);
}

TEST_F(ControlServerTest, BodyOverOneMebibyteIs413) {
  auto tooLarge = request("POST", "/rpc", kToken, std::string(kMaxBodyBytes + 1, ' '));
  ASSERT_TRUE(tooLarge) << tooLarge.error();
  EXPECT_EQ(tooLarge->status, 413U);

  // Exactly the limit is accepted (and is then a JSON-RPC parse error: it is only spaces).
  auto atLimit = request("POST", "/rpc", kToken, std::string(kMaxBodyBytes, ' '));
  ASSERT_TRUE(atLimit) << atLimit.error();
  EXPECT_EQ(atLimit->status, 200U);
}

TEST_F(ControlServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  RawConnection connection(server_->port());
  ASSERT_TRUE(connection.connected());
  connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(connection.readResponse(), StartsWith("HTTP/1.1 200 OK\r\n"));
  ready_ = false;
  connection.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(connection.readResponse(), StartsWith("HTTP/1.1 503"));
  // Pipelined requests are answered in order.
  connection.send("GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(connection.readResponse(), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(connection.readResponse(), StartsWith("HTTP/1.1 200"));
  connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(connection.readResponse(), StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(connection.readResponse(), "");  // closed as asked
}

TEST_F(ControlServerTest, MalformedHttpIs400AndTheServerKeepsServing) {
  RawConnection connection(server_->port());
  ASSERT_TRUE(connection.connected());
  connection.send("THIS IS NOT HTTP\r\n\r\n");
  EXPECT_THAT(connection.readResponse(), StartsWith("HTTP/1.1 400"));
  EXPECT_EQ(connection.readResponse(), "");

  auto body = httpGet(address_, "/healthz", "", kTimeout);
  ASSERT_TRUE(body) << body.error();
}

TEST_F(ControlServerTest, IdleConnectionsMakeRoomForNewOnes) {
  std::vector<std::unique_ptr<RawConnection>> held;
  for (size_t i = 0; i < kMaxConnections + 44; ++i) {
    held.push_back(std::make_unique<RawConnection>(server_->port()));
    ASSERT_TRUE(held.back()->connected());
    // A response proves the server accepted this connection; it idles afterwards.
    held.back()->send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_THAT(held.back()->readResponse(), StartsWith("HTTP/1.1 200")) << i;
  }
  RawConnection extra(server_->port());
  ASSERT_TRUE(extra.connected());
  extra.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(extra.readResponse(), StartsWith("HTTP/1.1 200"));
  // The oldest idle connection was closed to make room; nothing was refused.
  EXPECT_EQ(held.front()->readResponse(), "");
  const std::string text = metrics_.render();
  EXPECT_THAT(text, HasSubstr("evosip_control_connections_refused_total 0"));
  EXPECT_THAT(text, Not(HasSubstr("evosip_control_connections_evicted_total 0")));
}

TEST_F(ControlServerTest, ProbesAreAnsweredWhenOneSourceHoldsEverySlotMidRequest) {
  std::vector<std::unique_ptr<RawConnection>> held;
  for (size_t i = 0; i < kMaxConnectionsPerSource; ++i) {
    held.push_back(std::make_unique<RawConnection>(server_->port()));
    ASSERT_TRUE(held.back()->connected());
    held.back()->send("POST /rpc HTTP/1.1\r\n");  // a request that never ends
  }
  // From the same address: a reserve connection, for the probes only.
  RawConnection probe(server_->port());
  probe.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(probe.readResponse(), StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(probe.readResponse(), "");  // closed after the answer
  RawConnection rpc(server_->port());
  rpc.send("POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_THAT(rpc.readResponse(), StartsWith("HTTP/1.1 503"));
  EXPECT_THAT(metrics_.render(), HasSubstr("evosip_control_connections_refused_total 0"));
}

TEST_F(ControlServerTest, StopClosesTheListenerAndIsIdempotent) {
  server_->stop();
  server_->stop();
  auto body = httpGet(address_, "/healthz", "", 1000ms);
  EXPECT_FALSE(body);
}

TEST(ControlServerStartTest, BadListenAddressIsNamed) {
  RpcRegistry rpc;
  metrics::Registry metrics;
  for (const char* listen : {"not-an-address", "127.0.0.1:99999", "::1:8060", "[::1:8060"}) {
    ControlServer server(ServerSettings{listen, ""}, rpc, metrics, nullptr);
    try {
      server.start();
      ADD_FAILURE() << listen << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_THAT(e.what(), HasSubstr(listen));
    }
  }
}

TEST(ControlServerStartTest, NoTokenBeyondLoopbackIsRefused) {
  RpcRegistry rpc;
  metrics::Registry metrics;
  ControlServer open(ServerSettings{"0.0.0.0:0", ""}, rpc, metrics, nullptr);
  try {
    open.start();
    ADD_FAILURE() << "started without a token on 0.0.0.0";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("control.token is required"));
  }
  EXPECT_EQ(open.port(), 0u);
}

TEST(ControlServerStartTest, PortInUseIsNamed) {
  RpcRegistry rpc;
  metrics::Registry metrics;
  ControlServer first(ServerSettings{"127.0.0.1:0", ""}, rpc, metrics, nullptr);
  first.start();
  const std::string listen = "127.0.0.1:" + std::to_string(first.port());
  ControlServer second(ServerSettings{listen, ""}, rpc, metrics, nullptr);
  try {
    second.start();
    FAIL() << "second bind succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("bind on " + listen));
  }
}

TEST(ControlServerStartTest, ListensOnIpv6Loopback) {
  RpcRegistry rpc;
  metrics::Registry metrics;
  ControlServer server(ServerSettings{"[::1]:0", ""}, rpc, metrics, [] { return true; });
  server.start();
  auto body = httpGet("[::1]:" + std::to_string(server.port()), "/readyz", "", kTimeout);
  ASSERT_TRUE(body) << body.error();
  EXPECT_EQ(*body, "ready");
  // No token configured: the RPC is open.
  auto methods =
      callRpc("[::1]:" + std::to_string(server.port()), "", "rpc.methods", nullptr, kTimeout);
  ASSERT_TRUE(methods) << methods.error();
  EXPECT_EQ(*methods, json::parse(R"(["rpc.methods"])"));
}

TEST(ControlClientTest, TimesOutWhenTheServerNeverAnswers) {
  // A listening socket nobody accepts on: the connection completes, no response ever comes.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t length = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  auto result = callRpc(address, "", "rpc.methods", nullptr, 200ms);
  ASSERT_FALSE(result);
  EXPECT_THAT(result.error(), HasSubstr("no response from " + address + " within 200 ms"));
  ::close(fd);
}

TEST(ControlClientTest, ReportsRefusedConnectionsAndBadAddresses) {
  auto refused = httpGet("127.0.0.1:1", "/healthz", "", kTimeout);
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error(), HasSubstr("cannot connect"));

  auto bad = httpGet("localhost", "/healthz", "", kTimeout);
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error(), HasSubstr("bad address 'localhost'"));
}

}  // namespace
}  // namespace evosip::control
