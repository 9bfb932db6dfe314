#pragma once
// A Router with the memory store, a recording send callback and a manual clock, as its peers
// see it on the wire. Requests arrive from an edge (10.0.0.5:5060); the router is 10.0.0.1:5070;
// the app set is 10.0.0.8:5080 unless a test says otherwise.
#include <algorithm>
#include <chrono>
#include <functional>
#include <manual_clock.hpp>
#include <memory>
#include <sent_message.hpp>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/router/router.hpp>
#include <evosip/store/memory_store.hpp>

namespace evosip::router::fixture {

using transport::Destination;
using transport::Endpoint;
using transport::Protocol;

using test::ep;
using test::Sent;

struct Req {
  std::string method = "INVITE";
  std::string uri = "sip:bob@evosip.local";
  std::string fromTag = "ft1";
  std::string toTag;
  std::string callId = "call-1@test";
  std::string branch = "z9hG4bK-edge-1";
  int maxForwards = 70;
  std::string extra;  // complete lines
  uint32_t cseq = 1;
  std::string sdp;
};

inline std::string text(const Req& r) {
  std::string to = "<sip:bob@evosip.local>";
  if (!r.toTag.empty()) {
    to += ";tag=" + r.toTag;
  }
  return r.method + " " + r.uri + " SIP/2.0\r\n" +
         "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=" + r.branch + "\r\n" +
         "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-ua;received=198.51.100.7\r\n" +
         "Max-Forwards: " + std::to_string(r.maxForwards) + "\r\n" + "To: " + to + "\r\n" +
         "From: <sip:alice@foreign.example>;tag=" + r.fromTag + "\r\n" + "Call-ID: " + r.callId +
         "\r\n" + "CSeq: " + std::to_string(r.cseq) + " " + r.method + "\r\n" +
         "Contact: <sip:alice@198.51.100.7:5062>\r\n" + r.extra +
         (r.sdp.empty() ? "" : "Content-Type: application/sdp\r\n") +
         "Content-Length: " + std::to_string(r.sdp.size()) + "\r\n\r\n" + r.sdp;
}

// The edge's Record-Route, as a dialog's route set holds it.
constexpr const char* kEdgeRoute = "<sip:tok@10.0.0.5:5060;lr>";

// A request of a dialog from the caller's side (tags ft1 / `toTag`), along the edge's route.
inline Req inDialog(std::string method, std::string callId, std::string toTag,
                    std::string uri = "sip:bob@10.0.0.30:5090") {
  Req r;
  r.method = std::move(method);
  r.callId = std::move(callId);
  r.toTag = std::move(toTag);
  r.uri = std::move(uri);
  r.extra = std::string("Route: ") + kEdgeRoute + "\r\n";
  return r;
}

// The first Call-ID "call-N@test", N from `from` on, whose first choice in `set` (all up) is
// the target at `index`.
inline std::string callPicking(const role::TargetSet& set, size_t index, int from = 0) {
  for (int i = from;; ++i) {
    std::string id = "call-" + std::to_string(i) + "@test";
    if (set.pick(id, 0) == index) {
      return id;
    }
  }
}

class RouterFixture : public ::testing::Test {
 protected:
  RouterFixture() { make(MediaMode::kNever); }

  void make(MediaMode mode, std::vector<std::string> apps = {"sip:10.0.0.8:5080"}) {
    router_.reset();
    RouterSettings s;
    s.domain = "evosip.local";
    s.aliases = {"127.0.0.1"};
    s.instanceId = "router-test";
    s.proxy.viaHost = "10.0.0.1";
    s.proxy.viaPort = 5070;
    s.proxy.self = {{"10.0.0.1", 5070}};
    s.proxy.maxForwards = 20;
    s.registrar.maxContacts = 2;
    s.mediaMode = mode;
    if (adjust_) {
      adjust_(s);
    }
    Dialplan plan;
    ServiceNumber playback;
    playback.number = "100";
    playback.action = "Playback";
    playback.isPublic = true;  // callers of other domains reach it
    plan.add(playback);
    auth::NonceCodec::Settings nonces;
    nonces.secret = "0123456789abcdef0123";
    shared_ = std::make_unique<RouterShared>(s, nonces, plan, *role::TargetSet::build(apps));
    db_ = std::make_shared<store::MemoryDatabase>();
    router_ = std::make_unique<Router>(
        *shared_, io_, std::make_unique<store::MemoryStore>(db_, io_.get_executor()), clock_,
        [this](const Destination& to, std::string_view bytes) {
          sent_.push_back({to, std::string(bytes)});
          return true;
        });
  }
  ~RouterFixture() override { teardown(); }
  void teardown() {
    router_.reset();
    io_.poll();
  }

  void receive(const std::string& bytes, Endpoint from = ep("10.0.0.5", 5060)) {
    auto m = sip::Message::parse(bytes);
    ASSERT_TRUE(m.has_value()) << bytes;
    router_->onMessage(*m, transport::Source{Protocol::kUdp, from, ep("10.0.0.1", 5070), {}});
    settle();
  }
  void settle() {
    io_.restart();
    io_.poll();
  }
  // Moves the clock by `d` in 100 ms steps, running the router's timers at each.
  void pass(std::chrono::milliseconds d) {
    for (auto left = d; left.count() > 0; left -= std::chrono::milliseconds(100)) {
      clock_.advance(std::min(left, std::chrono::milliseconds(100)));
      router_->onTick();
      settle();
    }
  }

  // Messages the router sent to `ip` (any port), in order.
  std::vector<std::string> to(const char* ip) const {
    std::vector<std::string> out;
    for (const auto& s : sent_) {
      if (s.to.remote.ip == boost::asio::ip::make_address(ip)) {
        out.push_back(s.bytes);
      }
    }
    return out;
  }
  // Status codes of the responses sent back to the edge.
  std::vector<int> answers() const {
    std::vector<int> out;
    for (const auto& s : to("10.0.0.5")) {
      auto m = sip::Message::parse(s);
      if (m && m->isResponse()) {
        out.push_back(m->statusCode());
      }
    }
    return out;
  }
  // Final status codes of the responses sent back to the edge.
  std::vector<int> finals() const {
    std::vector<int> out;
    for (int code : answers()) {
      if (code >= 200) {
        out.push_back(code);
      }
    }
    return out;
  }
  uint64_t rejected(Rejection r) const {
    return router_->counters().rejected[static_cast<size_t>(r)].load();
  }

  // A call to the public service number 100, on a branch of its own.
  void callService(const std::string& callId, const std::string& sdp = "") {
    Req r;
    r.uri = "sip:100@evosip.local";
    r.callId = callId;
    r.branch = "z9hG4bK-edge-" + callId.substr(0, callId.find('@'));
    r.sdp = sdp;
    receive(text(r));
  }

  void storeDialog(const std::string& callId, const std::string& from, const std::string& to,
                   std::vector<std::string> routes) {
    store::DialogRecord d;
    d.id = {callId, from, to};
    d.callerContact = "sip:alice@198.51.100.7:5062";
    d.calleeContact = "sip:bob@10.0.0.30:5090";
    d.callerRouteSet = std::move(routes);
    d.calleeRouteSet.assign(d.callerRouteSet.rbegin(), d.callerRouteSet.rend());
    d.created = store::systemNow();
    d.expires = d.created + std::chrono::hours(1);
    ASSERT_TRUE(db_->putDialog(d).has_value());
  }

  // Changes the settings make() builds the router with.
  std::function<void(RouterSettings&)> adjust_;
  boost::asio::io_context io_;
  test::ManualClock clock_;
  std::unique_ptr<RouterShared> shared_;
  std::shared_ptr<store::MemoryDatabase> db_;
  std::unique_ptr<Router> router_;
  std::vector<Sent> sent_;
};

}  // namespace evosip::router::fixture
