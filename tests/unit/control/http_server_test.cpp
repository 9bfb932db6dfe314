#include <chrono>
#include <fstream>
#include <functional>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/control/client.hpp>
#include <evosip/control/http_server.hpp>

namespace evosip::control {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr auto kTimeout = 5000ms;

// Established TCP connections whose local port is `port` (the server's side of its accepted
// connections), read from /proc/net/tcp and /proc/net/tcp6.
size_t establishedOnLocalPort(uint16_t port) {
  size_t n = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the column names
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      const auto colon = local.rfind(':');
      if (colon != std::string::npos && std::stoul(local.substr(colon + 1), nullptr, 16) == port &&
          state == "01") {
        ++n;
      }
    }
  }
  return n;
}

// Polls `done` until it holds or `limit` passes.
bool waitUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(HttpServerTest, AnswersFromAnotherThreadLater) {
  std::vector<std::thread> workers;
  HttpServer server(HttpServerSettings{"127.0.0.1:0", "test", "test.listen"},
                    [&workers](const HttpRequest& req, HttpServer::Respond respond) {
                      HttpResponse res =
                          makeHttpResponse(200, req.method + " " + req.target + " " + req.body);
                      workers.emplace_back([respond, res] { respond(res); });
                    });
  server.start();
  const std::string address = "127.0.0.1:" + std::to_string(server.port());
  auto r = httpRequest(address, "POST", "/v1/x?a=b", "", "{\"k\":1}", kTimeout);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(r->body, "POST /v1/x?a=b {\"k\":1}");
  server.stop();
  for (auto& t : workers) {
    t.join();
  }
}

TEST(HttpServerTest, OnlyTheFirstAnswerCountsAndHeadersPassThrough) {
  HttpServer server(HttpServerSettings{"127.0.0.1:0", "test", "test.listen"},
                    [](const HttpRequest& req, HttpServer::Respond respond) {
                      EXPECT_EQ(req.path, "/p");
                      EXPECT_EQ(req.header("x-probe"), "");
                      HttpResponse res = makeHttpResponse(201, "{}", "application/json");
                      res.headers.emplace_back("Location", "/p/1");
                      respond(res);
                      respond(makeHttpResponse(500, "second"));
                    });
  server.start();
  auto r =
      httpRequest("127.0.0.1:" + std::to_string(server.port()), "GET", "/p?q", "", "", kTimeout);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->status, 201u);
  EXPECT_EQ(r->header("location"), "/p/1");
  EXPECT_EQ(r->header("content-type"), "application/json");
}

TEST(HttpServerTest, AThrowingHandlerGets500AndAnUnansweredRequestTimesOut) {
  HttpServerSettings settings{"127.0.0.1:0", "test", "test.listen"};
  settings.requestTimeout = 1s;
  HttpServer server(settings, [](const HttpRequest& req, HttpServer::Respond) {
    if (req.path == "/throw") {
      throw std::runtime_error("boom");
    }
    // /never: the answer never comes.
  });
  server.start();
  const std::string address = "127.0.0.1:" + std::to_string(server.port());
  auto thrown = httpRequest(address, "GET", "/throw", "", "", kTimeout);
  ASSERT_TRUE(thrown) << thrown.error();
  EXPECT_EQ(thrown->status, 500u);
  auto never = httpRequest(address, "GET", "/never", "", "", kTimeout);
  ASSERT_TRUE(never) << never.error();
  EXPECT_EQ(never->status, 504u);
}

TEST(HttpServerTest, RespondAfterStopIsIgnored) {
  std::promise<HttpServer::Respond> held;
  auto server = std::make_unique<HttpServer>(
      HttpServerSettings{"127.0.0.1:0", "test", "test.listen"},
      [&held](const HttpRequest&, HttpServer::Respond respond) { held.set_value(respond); });
  server->start();
  const std::string address = "127.0.0.1:" + std::to_string(server->port());
  std::thread client([address] { (void)httpRequest(address, "GET", "/", "", "", 2000ms); });
  HttpServer::Respond respond = held.get_future().get();
  server->stop();
  server.reset();
  respond(makeHttpResponse(200, "late"));  // must not touch the destroyed server
  client.join();
}

TEST(HttpServerTest, BadListenAddressNamesTheKey) {
  HttpServer server(HttpServerSettings{"nope", "api", "api.listen"},
                    [](const HttpRequest&, HttpServer::Respond) {});
  try {
    server.start();
    FAIL() << "started";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("api.listen"));
  }
}

TEST(AsyncHttpClientTest, CallsBackOnTheGivenContext) {
  HttpServer server(HttpServerSettings{"127.0.0.1:0", "test", "test.listen"},
                    [](const HttpRequest& req, HttpServer::Respond respond) {
                      respond(makeHttpResponse(200, req.header("authorization")));
                    });
  server.start();
  boost::asio::io_context io;
  std::vector<tl::expected<HttpResponse, std::string>> results;
  auto collect = [&](tl::expected<HttpResponse, std::string> r) { results.push_back(r); };
  asyncHttpRequest(io, "127.0.0.1:" + std::to_string(server.port()), "POST", "/rpc", "tok", "{}",
                   kTimeout, collect);
  asyncHttpRequest(io, "127.0.0.1:1", "POST", "/rpc", "", "{}", kTimeout, collect);
  asyncHttpRequest(io, "no-port", "POST", "/rpc", "", "{}", kTimeout, collect);
  io.run_for(kTimeout);
  ASSERT_EQ(results.size(), 3u);
  int ok = 0;
  for (const auto& r : results) {
    if (r) {
      ++ok;
      EXPECT_EQ(r->body, "Bearer tok");
    }
  }
  EXPECT_EQ(ok, 1);
}

}  // namespace
}  // namespace evosip::control

namespace evosip::control {
namespace {

// Runs `count` requests one after the other through the pool on this thread's io_context.
std::vector<tl::expected<HttpResponse, std::string>> sequential(boost::asio::io_context& io,
                                                                HttpConnectionPool& pool,
                                                                int count) {
  std::vector<tl::expected<HttpResponse, std::string>> out;
  std::function<void()> next = [&] {
    pool.request("GET", "/n/" + std::to_string(out.size()), "tok", "", 5000ms,
                 [&](tl::expected<HttpResponse, std::string> r) {
                   out.push_back(std::move(r));
                   if (static_cast<int>(out.size()) < count) {
                     next();
                   }
                 });
  };
  next();
  io.restart();
  io.run();
  return out;
}

TEST(HttpConnectionPoolTest, RequestsReuseOneConnection) {
  std::atomic<int> seen{0};
  HttpServer server(
      HttpServerSettings{"127.0.0.1:0", "test", "test.listen"},
      [&seen](const HttpRequest& req, HttpServer::Respond respond) {
        ++seen;
        respond(makeHttpResponse(200, req.target + " " + req.header("authorization")));
      });
  server.start();
  boost::asio::io_context io{1};
  HttpConnectionPool pool(io, "127.0.0.1:" + std::to_string(server.port()));
  auto results = sequential(io, pool, 20);
  ASSERT_EQ(results.size(), 20u);
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i]) << results[i].error();
    EXPECT_EQ(results[i]->body, "/n/" + std::to_string(i) + " Bearer tok");
  }
  EXPECT_EQ(pool.connectionsOpened(), 1u) << "every request opened a new connection";
  EXPECT_EQ(pool.idle(), 1u);
  EXPECT_EQ(seen.load(), 20);
}

TEST(HttpConnectionPoolTest, AConnectionTheServerClosedIsReplacedTransparently) {
  HttpServerSettings settings{"127.0.0.1:0", "test", "test.listen"};
  settings.idleTimeout = 1s;  // the server drops idle keep-alive connections after this
  HttpServer server(settings, [](const HttpRequest&, HttpServer::Respond respond) {
    respond(makeHttpResponse(200, "ok"));
  });
  server.start();
  boost::asio::io_context io{1};
  HttpConnectionPool pool(io, "127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(sequential(io, pool, 1).at(0));
  EXPECT_TRUE(waitUntil([&] { return establishedOnLocalPort(server.port()) == 0; }))
      << "the server did not close the idle connection";
  auto again = sequential(io, pool, 1);
  ASSERT_TRUE(again.at(0)) << again.at(0).error();
  EXPECT_EQ(again.at(0)->body, "ok");
  EXPECT_EQ(pool.connectionsOpened(), 2u);
}

TEST(HttpConnectionPoolTest, ManyConnectionsTheServerClosedAreAllReplaced) {
  HttpServerSettings settings{"127.0.0.1:0", "test", "test.listen"};
  settings.idleTimeout = 1s;
  HttpServer server(settings, [](const HttpRequest&, HttpServer::Respond respond) {
    respond(makeHttpResponse(200, "ok"));
  });
  server.start();
  boost::asio::io_context io{1};
  HttpConnectionPool pool(io, "127.0.0.1:" + std::to_string(server.port()));
  // Five requests at once: five connections, all idle afterwards.
  int answered = 0;
  for (int i = 0; i < 5; ++i) {
    pool.request("GET", "/", "", "", 5000ms, [&](tl::expected<HttpResponse, std::string> r) {
      EXPECT_TRUE(r) << r.error();
      ++answered;
    });
  }
  io.restart();
  io.run();
  ASSERT_EQ(answered, 5);
  ASSERT_EQ(pool.idle(), 5u);
  EXPECT_TRUE(waitUntil([&] { return establishedOnLocalPort(server.port()) == 0; }))
      << "the server did not close the five idle connections";
  auto again = sequential(io, pool, 1);
  ASSERT_TRUE(again.at(0)) << again.at(0).error();
  EXPECT_EQ(again.at(0)->body, "ok");
  EXPECT_EQ(pool.connectionsOpened(), 6u) << "the answer came on a connection the server closed";
}

TEST(HttpConnectionPoolTest, NoServerIsAnErrorLineNotAHang) {
  boost::asio::io_context io{1};
  // A port nothing listens on: bind one, read its number, close it.
  boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const auto port = probe.local_endpoint().port();
  probe.close();
  HttpConnectionPool pool(io, "127.0.0.1:" + std::to_string(port));
  auto r = sequential(io, pool, 1);
  ASSERT_FALSE(r.at(0));
  EXPECT_THAT(r.at(0).error(), HasSubstr("cannot connect"));
  HttpConnectionPool bad(io, "no-port-here");
  auto b = sequential(io, bad, 1);
  ASSERT_FALSE(b.at(0));
  EXPECT_THAT(b.at(0).error(), HasSubstr("bad address"));
}

}  // namespace
}  // namespace evosip::control
