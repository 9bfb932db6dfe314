// Failover between apps, on the manual clock: a request an app leaves silent
// (router.app_timeout_ms) or refuses with 503 goes to the next app in the call's rendezvous
// order; the failed app is held out of new calls (router.app_hold_down_s) unless it was only
// silent to this request while answering others.
#include <set>

#include "router_fixture.hpp"

namespace evosip::router {
namespace {

using namespace fixture;
using namespace std::chrono_literals;

constexpr const char* kAppA = "10.0.0.8";
constexpr const char* kAppB = "10.0.0.9";

class AppFailoverTest : public RouterFixture {
 protected:
  AppFailoverTest() {
    adjust_ = [](RouterSettings& s) {
      s.appTimeout = 2000ms;
      s.appHoldDown = 10s;
    };
    make(MediaMode::kNever, {"sip:10.0.0.8:5080", "sip:10.0.0.9:5080"});
  }

  // A Call-ID whose first choice among the two apps (both up) is `ip`.
  std::string callPicking(const char* ip, int from = 0) {
    auto set = *role::TargetSet::build({"sip:10.0.0.8:5080", "sip:10.0.0.9:5080"});
    const size_t index = set->at(0).endpoint.ip == boost::asio::ip::make_address(ip) ? 0 : 1;
    return fixture::callPicking(*set, index, from);
  }

  // A call to the public service number 100.
  void call(const std::string& callId) { callService(callId); }

  // The requests sent to `ip` for this Call-ID.
  std::vector<std::string> requestsTo(const char* ip, const std::string& callId) const {
    std::vector<std::string> out;
    for (const auto& bytes : to(ip)) {
      auto m = sip::Message::parse(bytes);
      if (m && m->isRequest() && m->callId() == callId) {
        out.push_back(bytes);
      }
    }
    return out;
  }

  // The app at `ip` answers the last request it got for this Call-ID.
  void appAnswers(const char* ip, const std::string& callId, int code) {
    auto sent = requestsTo(ip, callId);
    ASSERT_FALSE(sent.empty());
    auto req = sip::Message::parse(sent.back());
    ASSERT_TRUE(req.has_value());
    std::string r = "SIP/2.0 " + std::to_string(code) + " X\r\n";
    for (const auto& h : req->headers()) {
      if (h.id == sip::HeaderId::kVia || h.id == sip::HeaderId::kFrom ||
          h.id == sip::HeaderId::kCallId || h.id == sip::HeaderId::kCSeq) {
        r += std::string(h.name) + ": " + std::string(h.value) + "\r\n";
      }
    }
    r += "To: <sip:100@evosip.local>" + std::string(code > 100 ? ";tag=app" : "") +
         "\r\nContact: <sip:100@" + ip + ":5080>\r\nContent-Length: 0\r\n\r\n";
    auto m = sip::Message::parse(r);
    ASSERT_TRUE(m.has_value());
    router_->onMessage(*m,
                       transport::Source{Protocol::kUdp, ep(ip, 5080), ep("10.0.0.1", 5070), {}});
    settle();
  }

  // Final status codes the caller of this Call-ID got.
  std::vector<int> finalsOf(const std::string& callId) const {
    std::vector<int> out;
    for (const auto& s : to("10.0.0.5")) {
      auto m = sip::Message::parse(s);
      if (m && m->isResponse() && m->statusCode() >= 200 && m->callId() == callId) {
        out.push_back(m->statusCode());
      }
    }
    return out;
  }
};

TEST_F(AppFailoverTest, SilentAppIsLeftForTheNextAfterTheTimeoutAndHeldDown) {
  const std::string first = callPicking(kAppA);
  call(first);
  ASSERT_EQ(requestsTo(kAppA, first).size(), 1u);
  pass(1900ms);
  EXPECT_TRUE(requestsTo(kAppB, first).empty()) << "not before router.app_timeout_ms";
  pass(200ms);
  ASSERT_EQ(requestsTo(kAppB, first).size(), 1u) << "the next app in rendezvous order";
  EXPECT_TRUE(finalsOf(first).empty()) << "the caller saw nothing of it";
  appAnswers(kAppB, first, 200);
  EXPECT_EQ(finalsOf(first), (std::vector<int>{200}));
  EXPECT_EQ(router_->counters().appFailovers.load(), 1u);

  // Held down: a new call that would go to A goes to B at once, until the hold-down ends.
  const std::string second = callPicking(kAppA, 1000);
  call(second);
  EXPECT_TRUE(requestsTo(kAppA, second).empty());
  EXPECT_EQ(requestsTo(kAppB, second).size(), 1u);
  pass(10s);
  const std::string third = callPicking(kAppA, 2000);
  call(third);
  EXPECT_EQ(requestsTo(kAppA, third).size(), 1u) << "back in the set after the hold-down";
}

TEST_F(AppFailoverTest, A503FromAnAppGoesToTheNextAppAndTheCallerNeverSeesIt) {
  const std::string first = callPicking(kAppA);
  call(first);
  appAnswers(kAppA, first, 503);
  auto acked = requestsTo(kAppA, first);
  ASSERT_EQ(acked.size(), 2u);
  EXPECT_TRUE(acked[1].starts_with("ACK ")) << acked[1];
  ASSERT_EQ(requestsTo(kAppB, first).size(), 1u) << "at once, no timeout";
  EXPECT_TRUE(finalsOf(first).empty());
  appAnswers(kAppB, first, 200);
  EXPECT_EQ(finalsOf(first), (std::vector<int>{200}));
  // A draining app is out of new calls.
  const std::string second = callPicking(kAppA, 1000);
  call(second);
  EXPECT_TRUE(requestsTo(kAppA, second).empty());
}

TEST_F(AppFailoverTest, AnAppThatAnswersOtherRequestsIsNotHeldDown) {
  const std::string ignored = callPicking(kAppA);
  const std::string answered = callPicking(kAppA, 1000);
  call(ignored);
  pass(500ms);
  call(answered);
  appAnswers(kAppA, answered, 100);  // alive: it answers what came after
  pass(1600ms);
  ASSERT_EQ(requestsTo(kAppB, ignored).size(), 1u) << "the ignored call still moves on";
  const std::string next = callPicking(kAppA, 2000);
  call(next);
  EXPECT_EQ(requestsTo(kAppA, next).size(), 1u) << "A was not held down";
}

TEST_F(AppFailoverTest, EveryAppSilentEndsTheCallWithOneFinal) {
  const std::string id = callPicking(kAppA);
  call(id);
  pass(2100ms);
  ASSERT_EQ(requestsTo(kAppB, id).size(), 1u);
  pass(2100ms);
  std::set<std::string> branches;  // retransmissions of one transaction share the branch
  for (const auto& bytes : requestsTo(kAppA, id)) {
    branches.insert(std::string(sip::Message::parse(bytes)->topVia()->branch().value_or("")));
  }
  EXPECT_EQ(branches.size(), 1u) << "each app once";
  EXPECT_EQ(finalsOf(id), (std::vector<int>{408}));
}

TEST_F(AppFailoverTest, AnOnlyAppIsNeverLeftNorHeldDown) {
  make(MediaMode::kNever, {"sip:10.0.0.8:5080"});
  call("call-1@test");
  pass(5s);
  EXPECT_TRUE(finalsOf("call-1@test").empty()) << "its transaction runs to its own timers";
  call("call-2@test");
  EXPECT_EQ(requestsTo(kAppA, "call-2@test").size(), 1u);
}

TEST_F(AppFailoverTest, NoFailoverWhenTheAppTimeoutIsZero) {
  adjust_ = [](RouterSettings& s) { s.appTimeout = 0ms; };
  make(MediaMode::kNever, {"sip:10.0.0.8:5080", "sip:10.0.0.9:5080"});
  const std::string id = callPicking(kAppA);
  call(id);
  pass(5s);
  EXPECT_TRUE(requestsTo(kAppB, id).empty());
}

}  // namespace
}  // namespace evosip::router
