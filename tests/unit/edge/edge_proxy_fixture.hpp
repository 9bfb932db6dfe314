#pragma once
// The EdgeProxy under test: a manual clock, two workers whose posts run at once, and every
// message it sends captured (liveness probes apart).
#include <functional>
#include <manual_clock.hpp>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/edge/edge_proxy.hpp>
#include <evosip/sip/message.hpp>

#include "sent_message.hpp"

namespace evosip::edge::edgetest {

using transport::Destination;
using transport::Endpoint;
using transport::Protocol;
using namespace std::chrono_literals;

using test::ep;
using test::Sent;

class EdgeProxyTest : public ::testing::Test {
 protected:
  void SetUp() override { make({"sip:127.0.0.1:5070"}); }

  void make(const std::vector<std::string>& routers, double rate = 0,
            std::vector<std::array<uint16_t, 2>> egress = {},
            std::vector<transport::ListenSpec> listen = {},
            const std::function<void(EdgeSettings&)>& tweak = {}) {
    EdgeSettings s;
    s.egressPorts = std::move(egress);
    s.listen = {{Protocol::kUdp, ep("127.0.0.1", 5060)}, {Protocol::kTcp, ep("127.0.0.1", 5060)}};
    if (!listen.empty()) {
      s.listen = std::move(listen);
    }
    s.routerTimeout = 500ms;
    s.holdDown = 10s;
    s.rateLimitPerSecond = rate;
    s.rateLimitBurst = 0;
    s.flowSecret = "test";
    if (tweak) {
      tweak(s);
    }
    probes.clear();
    posts = 0;
    proxy = std::make_unique<EdgeProxy>(
        s, *RouterSet::build(routers), 2, clock,
        [this](const Destination& to, std::string_view bytes) {
          // Liveness probes are kept apart from the messages a test follows.
          const bool probe = bytes.starts_with("OPTIONS ") &&
                             bytes.find(";branch=z9hG4bK-p") != std::string_view::npos;
          (probe ? probes : sent).push_back({to, std::string(bytes)});
          return true;
        },
        [this](size_t, std::function<void()> fn) {
          ++posts;
          fn();
        });
  }

  void receive(const std::string& text, Endpoint from = ep("192.0.2.10", 5062),
               Protocol proto = Protocol::kUdp, transport::ConnectionId conn = {}) {
    receiveOn(0, text, from, proto, conn);
  }

  // The same, on the given worker (the kernel hands each packet to one of them).
  void receiveOn(size_t worker, const std::string& text, Endpoint from = ep("192.0.2.10", 5062),
                 Protocol proto = Protocol::kUdp, transport::ConnectionId conn = {}) {
    transport::Packet p{text, {proto, from, ep("127.0.0.1", 5060), conn}};
    proxy->onPacket(worker, p);
  }

  sip::Message last() {
    EXPECT_FALSE(sent.empty());
    auto m = sip::Message::parse(sent.back().bytes);
    EXPECT_TRUE(m.has_value()) << sent.back().bytes;
    return *m;
  }

  // The Via header lines of m, as a downstream element answering it copies them.
  static std::string viaLines(const sip::Message& m) {
    std::string vias;
    for (const auto& h : m.headers()) {
      if (h.id == sip::HeaderId::kVia) {
        vias.append("Via: ").append(h.value).append("\r\n");
      }
    }
    return vias;
  }

  static std::string invite(
      const std::string& extra = "",
      const std::string& via = "SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK776asdhds;rport") {
    return "INVITE sip:bob@evosip.local SIP/2.0\r\n"
           "Via: " +
           via +
           "\r\n"
           "Max-Forwards: 70\r\n"
           "To: Bob <sip:bob@evosip.local>\r\n"
           "From: Alice <sip:alice@evosip.local>;tag=1928301774\r\n"
           "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
           "CSeq: 314159 INVITE\r\n"
           "Contact: <sip:alice@10.1.1.1:5062>\r\n" +
           extra + "Content-Length: 0\r\n\r\n";
  }

  // Lets every worker run its timers at the manual clock's time.
  int64_t nowNs() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock.now().time_since_epoch())
        .count();
  }

  void tick() {
    proxy->onTick(0);
    proxy->onTick(1);
  }

  test::ManualClock clock;
  std::vector<Sent> sent;
  std::vector<Sent> probes;
  size_t posts = 0;  // work handed to another worker
  std::unique_ptr<EdgeProxy> proxy;
};

}  // namespace evosip::edge::edgetest
