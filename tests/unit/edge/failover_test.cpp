// A router that drains or dies while the edge has a request of a caller's at it: the request
// moves to the next router, or the caller gets a final answer from the edge; never silence.
#include <functional>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "edge_proxy_fixture.hpp"

namespace evosip::edge {
namespace {

using namespace edgetest;

class EdgeFailoverTest : public EdgeProxyTest {
 protected:
  void SetUp() override { make({"sip:127.0.0.1:5070", "sip:127.0.0.1:5071"}); }

  // The router's answer to the request it got as `forwarded`, received by `worker`.
  void answer(const Sent& forwarded, int code, const std::string& reason,
              const std::string& extra = "", size_t worker = 0) {
    auto req = sip::Message::parse(forwarded.bytes);
    ASSERT_TRUE(req) << forwarded.bytes;
    const std::string tag = code > 100 ? ";tag=r1" : "";
    receiveOn(worker,
              "SIP/2.0 " + std::to_string(code) + " " + reason + "\r\n" + viaLines(*req) +
                  "To: <sip:bob@evosip.local>" + tag +
                  "\r\nFrom: Alice <sip:alice@evosip.local>;tag=1928301774\r\n"
                  "Call-ID: " +
                  std::string(req->callId()) + "\r\nCSeq: " + std::to_string(req->cseq()->number) +
                  " " + std::string(req->cseq()->methodText) + "\r\n" + extra +
                  "Content-Length: 0\r\n\r\n",
              forwarded.to.remote);
  }

  // Another call: its own Call-ID and branch.
  static std::string withCallId(std::string text, const std::string& callId) {
    text.replace(text.find("a84b4c76e66710@pc33.atlanta.com"), 31, callId);
    text.replace(text.find("z9hG4bK776asdhds"), 16, "z9hG4bK-" + callId);
    return text;
  }

  // The caller's BYE of a call, along `routes`.
  static std::string bye(const std::string& callId, const std::string& routes) {
    return "BYE sip:bob@10.2.2.2:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bKbye" +
           std::to_string(std::hash<std::string>{}(callId)) + ";rport\r\nRoute: " + routes +
           "\r\nMax-Forwards: 70\r\nTo: <sip:bob@evosip.local>;tag=b\r\n"
           "From: <sip:alice@evosip.local>;tag=1928301774\r\nCall-ID: " +
           callId + "\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
  }

  // Every probe this far gets an answer, a moment later: the router is alive.
  void answerProbes() {
    clock.advance(10ms);
    for (const auto& p : probes) {
      answer(p, 200, "OK");
    }
    probes.clear();
  }

  size_t routerIndex(const Endpoint& e) { return proxy->routers()->find(e); }
  const role::Target& target(const Endpoint& e) { return proxy->routers()->at(routerIndex(e)); }
};

TEST_F(EdgeFailoverTest, ADrainingRoutersRefusalGoesToTheNextRouterNotToTheCaller) {
  receive(invite());
  ASSERT_EQ(sent.size(), 1u);
  const Sent first = sent[0];
  answer(first, 503, "Draining", "Retry-After: 0\r\nX-Evosip-Draining: 1\r\n");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_NE(sent[1].to.remote, first.to.remote);
  EXPECT_EQ(sent[1].bytes, first.bytes);  // the same request and branch
  EXPECT_TRUE(target(first.to.remote).drainingAt(nowNs()));
  EXPECT_TRUE(target(first.to.remote).upAt(nowNs()));
  EXPECT_EQ(proxy->counters(0).drainRetries + proxy->counters(1).drainRetries, 1u);
  // The other router's answer reaches the caller, and it is the only thing the caller sees.
  const Sent second = sent[1];
  answer(second, 180, "Ringing");
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].to.remote, ep("192.0.2.10", 5062));
  // New calls avoid the draining router while it is held out...
  sent.clear();
  for (int i = 0; i < 20; ++i) {
    receive(withCallId(invite(), "new-" + std::to_string(i)));
  }
  ASSERT_EQ(sent.size(), 20u);
  for (const auto& s : sent) {
    EXPECT_NE(s.to.remote, first.to.remote);
  }
  // ... but a request of one of its dialogs (its Record-Route, behind ours) still reaches it.
  auto atRouter = sip::Message::parse(first.bytes);
  const std::string ours(
      sip::parseNameAddr(atRouter->find(sip::HeaderId::kRecordRoute)->value)->uriText);
  sent.clear();
  receive(bye("old-call", "<" + ours + ">, <sip:" + first.to.remote.str() + ";lr>"));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, first.to.remote);
  // Without a router Record-Route (the routers' default) any router serves the dialog from
  // the shared store: the request avoids the draining one, which may exit before the call ends.
  sent.clear();
  receive(bye("a84b4c76e66710@pc33.atlanta.com", "<" + ours + ">"));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_NE(sent[0].to.remote, first.to.remote);
  // The hold ends: the router gets new calls again (and says again if it still drains).
  clock.advance(11s);
  sent.clear();
  for (int i = 0; i < 20; ++i) {
    receive(withCallId(invite(), "later-" + std::to_string(i)));
  }
  size_t toFirst = 0;
  for (const auto& s : sent) {
    toFirst += s.to.remote == first.to.remote ? 1 : 0;
  }
  EXPECT_GT(toFirst, 0u);
}

// A worker learns of a new router set at its next packet or tick. The request's owner may run
// the refusal from a post before either, while the worker that sent the request had seen the
// new set: the refusal still moves the request on (it used to be dropped, and the caller heard
// nothing).
TEST_F(EdgeFailoverTest, ARefusalRunByAWorkerThatHasNotSeenTheNewRouterSetStillMovesOn) {
  for (int call = 0; call < 8; ++call) {
    // A fresh edge whose set changed since; only worker 1 has seen the change.
    make({"sip:127.0.0.1:5070", "sip:127.0.0.1:5071"});
    proxy->setRouters(*RouterSet::build({"sip:127.0.0.1:5071", "sip:127.0.0.1:5070"}));
    sent.clear();
    receiveOn(1, withCallId(invite(), "set-change-" + std::to_string(call)));
    ASSERT_EQ(sent.size(), 1u);
    const Sent first = sent[0];
    answer(first, 503, "Draining", "X-Evosip-Draining: 1\r\n", 1);
    ASSERT_EQ(sent.size(), 2u) << "call " << call;
    EXPECT_NE(sent[1].to.remote, first.to.remote) << "call " << call;
    EXPECT_EQ(sent[1].bytes, first.bytes);
    EXPECT_EQ(proxy->counters(0).drainRetries + proxy->counters(1).drainRetries, 1u);
  }
}

TEST_F(EdgeFailoverTest, WhenEveryRouterDrainsTheCallerGetsThe503WithoutTheHeader) {
  make({"sip:127.0.0.1:5070"});
  receive(invite());
  ASSERT_EQ(sent.size(), 1u);
  answer(sent[0], 503, "Draining", "Retry-After: 0\r\nX-Evosip-Draining: 1\r\n");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].to.remote, ep("192.0.2.10", 5062));
  auto m = last();
  EXPECT_EQ(m.statusCode(), 503);
  EXPECT_EQ(m.buffer().find("X-Evosip"), std::string_view::npos) << m.buffer();
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 0u);
}

// Only a router working on the request can say it drains: a stray refusal (no request of ours
// at that router) goes on to the caller and holds nobody out, and a callee's response never
// carries the header into the platform.
TEST_F(EdgeFailoverTest, AStrayOrForeignDrainHeaderHoldsNobodyOut) {
  receive(invite());
  const Sent first = sent[0];
  answer(first, 200, "OK");
  sent.clear();
  answer(first, 503, "Draining", "X-Evosip-Draining: 1\r\n");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, ep("192.0.2.10", 5062));
  EXPECT_FALSE(target(first.to.remote).drainingAt(nowNs()));
  // A callee answers a request a router sent through the edge, with the header.
  sent.clear();
  receive("SIP/2.0 503 Busy\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-e" +
              std::string(24, 'a') +
              "\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKr\r\n"
              "To: <sip:bob@evosip.local>;tag=c\r\nFrom: <sip:carol@evosip.local>;tag=1\r\n"
              "Call-ID: callee-side\r\nCSeq: 1 INVITE\r\nX-Evosip-Draining: 1\r\n"
              "Content-Length: 0\r\n\r\n",
          ep("203.0.113.9", 5060));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, ep("127.0.0.1", 5070));
  EXPECT_EQ(sent[0].bytes.find("X-Evosip"), std::string::npos) << sent[0].bytes;
}

TEST_F(EdgeFailoverTest, AnOrdinary503GoesToTheCallerAndHoldsNobodyOut) {
  receive(invite());
  const Sent first = sent[0];
  answer(first, 503, "Service Unavailable");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].to.remote, ep("192.0.2.10", 5062));
  EXPECT_FALSE(target(first.to.remote).drainingAt(nowNs()));
}

TEST_F(EdgeFailoverTest, RouterDeadAfter100TryingTheInviteMovesToTheNextRouter) {
  receive(invite());
  const Sent first = sent[0];
  answer(first, 100, "Trying");
  ASSERT_EQ(sent.size(), 2u);  // the 100 went to the caller
  // Past router_timeout_ms: the router is working on it, nothing moves.
  clock.advance(600ms);
  tick();
  EXPECT_EQ(sent.size(), 2u);
  EXPECT_TRUE(probes.empty());
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 1u);
  // setup_check_ms without a word from the router: it is probed.
  clock.advance(500ms);
  tick();
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_EQ(probes[0].to.remote, first.to.remote);
  EXPECT_EQ(sent.size(), 2u);
  // The probe goes unanswered: the router is down, and the INVITE goes to the other one.
  clock.advance(600ms);
  tick();
  EXPECT_FALSE(target(first.to.remote).upAt(nowNs()));
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_NE(sent[2].to.remote, first.to.remote);
  EXPECT_EQ(sent[2].bytes, first.bytes);
  EXPECT_EQ(proxy->counters(0).setupRouterLost + proxy->counters(1).setupRouterLost, 1u);
}

TEST_F(EdgeFailoverTest, RouterDeadAfterRingingTheCallerGets408AndTheRouterACancel) {
  receive(invite());
  const Sent first = sent[0];
  answer(first, 180, "Ringing");
  clock.advance(1100ms);
  tick();
  ASSERT_EQ(probes.size(), 1u);
  clock.advance(600ms);
  tick();
  // The caller heard ringing: no second setup elsewhere, a final answer instead.
  ASSERT_EQ(sent.size(), 4u);
  auto cancel = sip::Message::parse(sent[2].bytes);
  ASSERT_TRUE(cancel) << sent[2].bytes;
  EXPECT_EQ(sent[2].to.remote, first.to.remote);
  EXPECT_EQ(cancel->methodText(), "CANCEL");
  auto invite = sip::Message::parse(first.bytes);
  EXPECT_EQ(cancel->topVia()->branch(), invite->topVia()->branch());
  EXPECT_EQ(cancel->count(sip::HeaderId::kVia), 1u);
  EXPECT_EQ(cancel->cseq()->number, invite->cseq()->number);
  EXPECT_EQ(cancel->requestUri(), invite->requestUri());
  EXPECT_EQ(sent[3].to.remote, ep("192.0.2.10", 5062));
  auto m = last();
  EXPECT_EQ(m.statusCode(), 408);
  EXPECT_EQ(m.count(sip::HeaderId::kVia), 1u);
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 0u);
}

TEST_F(EdgeFailoverTest, ALiveRouterKeepsItsCallInSetupUntilTheFinalAnswer) {
  receive(invite());
  const Sent first = sent[0];
  answer(first, 180, "Ringing");
  // A minute of ringing; the router answers its probes.
  for (int i = 0; i < 60; ++i) {
    clock.advance(1s);
    tick();
    answerProbes();
  }
  EXPECT_TRUE(target(first.to.remote).upAt(nowNs()));
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 1u);
  EXPECT_EQ(sent.size(), 2u);
  answer(first, 200, "OK");
  EXPECT_EQ(sent.size(), 3u);
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 0u);
}

// A router held down (a probe of another worker failed in a moment of overload) that has
// answered something since the last look is alive: its ringing calls stay.
TEST_F(EdgeFailoverTest, ARouterThatAnsweredSinceKeepsItsCallsInSetupEvenWhenHeldDown) {
  make({"sip:127.0.0.1:5070"});
  receive(invite());
  const Sent first = sent[0];
  answer(first, 180, "Ringing");
  clock.advance(500ms);
  receive(withCallId(invite(), "other"));
  answer(sent.back(), 404, "Not Found");
  proxy->routers()->at(0).downUntilNs = nowNs() + 10'000'000'000;
  const size_t before = sent.size();
  clock.advance(600ms);
  tick();
  EXPECT_EQ(sent.size(), before);  // no 408, no CANCEL
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 1u);
}

TEST_F(EdgeFailoverTest, ARouterBusyWithOtherCallsIsNotProbed) {
  make({"sip:127.0.0.1:5070"});
  receive(invite());
  const Sent first = sent[0];
  answer(first, 180, "Ringing");
  for (int i = 0; i < 10; ++i) {
    clock.advance(500ms);
    // Some other response from the same router: it is alive.
    receive(withCallId(invite(), "busy-" + std::to_string(i)));
    answer(sent.back(), 404, "Not Found");
    tick();
  }
  EXPECT_TRUE(probes.empty());
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 1u);
}

// Cut off from every router (a partition): each is held down and probed again every
// router_timeout_ms; the edge says it is not ready meanwhile, and the first answer to a probe
// puts that router back at once, long before router_hold_down_ms.
TEST_F(EdgeFailoverTest, AnEdgeWithEveryRouterDownIsNotReadyUntilAProbeIsAnswered) {
  EXPECT_TRUE(proxy->anyRouterUp());
  receive(invite());
  const Sent first = sent[0];
  clock.advance(600ms);  // unanswered: probe the first router, the INVITE to the second
  tick();
  ASSERT_EQ(sent.size(), 2u);
  const Sent second = sent[1];
  clock.advance(600ms);  // both silent: the first is down, the second probed
  tick();
  EXPECT_FALSE(target(first.to.remote).upAt(nowNs()));
  EXPECT_TRUE(proxy->anyRouterUp());
  clock.advance(600ms);
  tick();
  EXPECT_FALSE(target(second.to.remote).upAt(nowNs()));
  EXPECT_FALSE(proxy->anyRouterUp());
  // Held down, the routers are probed again, one probe in flight each.
  probes.clear();
  clock.advance(600ms);
  tick();
  ASSERT_EQ(probes.size(), 2u);
  clock.advance(100ms);
  tick();
  EXPECT_EQ(probes.size(), 2u);
  // The second router answers: back at once, and the edge is ready again.
  for (const auto& p : probes) {
    if (p.to.remote == second.to.remote) {
      answer(p, 200, "OK");
    }
  }
  EXPECT_TRUE(target(second.to.remote).upAt(nowNs()));
  EXPECT_FALSE(target(first.to.remote).upAt(nowNs()));
  EXPECT_TRUE(proxy->anyRouterUp());
}

// Each worker with egress sockets of its own (as the transport binds them): a request leaves
// from one of the receiving worker's sockets, the router answers to that socket, which only
// that worker receives on, and the request's failover state never crosses workers.
class EdgeOwnEgressTest : public EdgeFailoverTest {
 protected:
  void SetUp() override {
    make({"sip:127.0.0.1:5070", "sip:127.0.0.1:5071"}, 0,
         {{40001, 0}, {40002, 0}, {40003, 0}, {40004, 0}}, {},
         [](EdgeSettings& s) { s.egressPerWorker = 2; });
  }

  uint64_t handoffs() const {
    return proxy->counters(0).handoffs.load() + proxy->counters(1).handoffs.load();
  }

  // The caller's CANCEL of an INVITE (RFC 3261 9.1): its Request-URI, Via, Call-ID, From, To and
  // CSeq number.
  static std::string cancelOf(std::string text) {
    const std::string method = "INVITE";
    const std::string cseq = " INVITE\r\n";
    text.replace(0, method.size(), "CANCEL");
    text.replace(text.find(cseq), cseq.size(), " CANCEL\r\n");
    return text;
  }

  // The caller's ACK of a non-2xx final to an INVITE (RFC 3261 17.1.1.3): the INVITE's
  // Request-URI, Via, Call-ID, From and CSeq number, the response's To tag.
  static std::string ackOf(std::string text) {
    text = cancelOf(std::move(text));
    text.replace(0, 6, "ACK");
    text.replace(text.find(" CANCEL\r\n"), 9, " ACK\r\n");
    text.replace(text.find("<sip:bob@evosip.local>"), 22, "<sip:bob@evosip.local>;tag=r1");
    text.erase(text.find("Contact: "),
               text.find("\r\n", text.find("Contact: ")) + 2 - text.find("Contact: "));
    return text;
  }
};

TEST_F(EdgeOwnEgressTest, AnswersReachTheWorkerThatSentAndNothingIsHandedOver) {
  for (size_t worker = 0; worker < 2; ++worker) {
    std::set<int32_t> used;
    for (int i = 0; i < 16; ++i) {
      const std::string text =
          withCallId(invite(), "own-" + std::to_string(worker) + "-" + std::to_string(i));
      sent.clear();
      receiveOn(worker, text);
      ASSERT_EQ(sent.size(), 1u);
      const Sent forwarded = sent[0];
      const auto e = static_cast<size_t>(forwarded.to.egress);
      ASSERT_TRUE(e / 2 == worker) << "egress " << forwarded.to.egress << " of worker " << worker;
      used.insert(forwarded.to.egress);
      EXPECT_EQ(last().topVia()->port, 40001 + e) << "the Via names the socket it left from";
      // The retransmission (the same flow: the same worker) leaves from the same socket.
      sent.clear();
      receiveOn(worker, text);
      ASSERT_EQ(sent.size(), 1u);
      EXPECT_EQ(sent[0].to.egress, forwarded.to.egress);
      EXPECT_EQ(proxy->pending(worker), 1u);
      // The router's answers arrive at that socket: the worker settles the request itself.
      answer(forwarded, 180, "Ringing", "", worker);
      EXPECT_EQ(proxy->pending(worker), 1u);  // a call in setup
      answer(forwarded, 200, "OK", "", worker);
      EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 0u);
      ASSERT_FALSE(sent.empty());
      EXPECT_EQ(sent.back().to.remote, ep("192.0.2.10", 5062));
    }
    EXPECT_EQ(used.size(), 2u) << "a worker's calls are spread over its sockets";
  }
  EXPECT_EQ(posts, 0u);
  EXPECT_EQ(handoffs(), 0u);
}

TEST_F(EdgeOwnEgressTest, FailoverAndDrainRetriesLeaveFromTheSameSocketWithoutAHandOff) {
  // A router that drains: the request moves on at once, from the worker that keeps it.
  receiveOn(1, withCallId(invite(), "drained"));
  ASSERT_EQ(sent.size(), 1u);
  const Sent refused = sent[0];
  answer(refused, 503, "Draining", "X-Evosip-Draining: 1\r\n", 1);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_NE(sent[1].to.remote, refused.to.remote);
  EXPECT_EQ(sent[1].bytes, refused.bytes);  // the same Via: the same socket's port
  EXPECT_EQ(sent[1].to.egress, refused.to.egress);
  EXPECT_EQ(proxy->counters(1).drainRetries.load(), 1u);
  answer(sent[1], 200, "OK", "", 1);
  EXPECT_EQ(proxy->pending(1), 0u);
  // A router that answers nothing: the request moves on after router_timeout_ms.
  sent.clear();
  receiveOn(1, withCallId(invite(), "timed-out"));
  ASSERT_EQ(sent.size(), 1u);
  const Sent lost = sent[0];
  clock.advance(600ms);
  tick();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_NE(sent[1].to.remote, lost.to.remote);
  EXPECT_EQ(sent[1].bytes, lost.bytes);
  EXPECT_EQ(sent[1].to.egress, lost.to.egress);
  EXPECT_EQ(proxy->counters(1).failovers.load(), 1u);
  EXPECT_EQ(posts, 0u);
  EXPECT_EQ(handoffs(), 0u);
}

TEST_F(EdgeOwnEgressTest, ACallInSetupWhoseRouterDiesGetsItsCancelFromTheInvitesSocket) {
  receiveOn(1, invite());
  const Sent first = sent[0];
  answer(first, 180, "Ringing", "", 1);
  clock.advance(1100ms);
  tick();
  ASSERT_EQ(probes.size(), 1u);
  clock.advance(600ms);
  tick();
  ASSERT_EQ(sent.size(), 4u);
  auto cancel = sip::Message::parse(sent[2].bytes);
  ASSERT_TRUE(cancel) << sent[2].bytes;
  EXPECT_EQ(cancel->methodText(), "CANCEL");
  EXPECT_EQ(sent[2].to.egress, first.to.egress);
  EXPECT_EQ(cancel->topVia()->port, sip::Message::parse(first.bytes)->topVia()->port);
  EXPECT_EQ(last().statusCode(), 408);
  EXPECT_EQ(posts, 0u);
}

// A router that answers elsewhere than to the socket in our Via (the listen port, say): the
// answer still settles the request, handed to the worker that keeps it.
TEST_F(EdgeOwnEgressTest, AnAnswerReceivedByAnotherWorkerIsHandedToTheOneThatKeepsTheRequest) {
  receiveOn(1, invite());
  const Sent first = sent[0];
  ASSERT_EQ(proxy->pending(1), 1u);
  answer(first, 200, "OK", "", 0);
  EXPECT_EQ(proxy->pending(1), 0u);
  EXPECT_EQ(posts, 1u);
  EXPECT_EQ(proxy->counters(0).handoffs.load(), 1u);
  EXPECT_EQ(sent.back().to.remote, ep("192.0.2.10", 5062));
}

// The caller's CANCEL over another flow than its INVITE's (another source port: a phone that
// made a new socket, a NAT that rebound) reaches another worker: it is passed to the one that
// keeps the INVITE and leaves from the INVITE's socket with the INVITE's Via, so the router
// matches it; the CANCEL's own entry is kept there, where the router's answer arrives.
TEST_F(EdgeOwnEgressTest, ACancelOverAnotherFlowLeavesFromTheInvitesSocket) {
  receiveOn(0, invite());
  ASSERT_EQ(sent.size(), 1u);
  const Sent first = sent[0];
  auto forwardedInvite = sip::Message::parse(first.bytes);
  ASSERT_TRUE(forwardedInvite);
  const sip::Via inviteVia = *forwardedInvite->topVia();
  answer(first, 180, "Ringing", "", 0);
  sent.clear();
  receiveOn(1, cancelOf(invite()), ep("192.0.2.10", 5999));
  ASSERT_EQ(sent.size(), 1u);
  auto cancel = sip::Message::parse(sent[0].bytes);
  ASSERT_TRUE(cancel) << sent[0].bytes;
  EXPECT_EQ(cancel->methodText(), "CANCEL");
  EXPECT_EQ(sent[0].to.remote, first.to.remote);
  EXPECT_EQ(sent[0].to.egress, first.to.egress);
  EXPECT_EQ(cancel->topVia()->port, inviteVia.port);
  EXPECT_EQ(cancel->topVia()->host, inviteVia.host);
  EXPECT_EQ(*cancel->topVia()->branch(), *inviteVia.branch());
  EXPECT_EQ(posts, 1u);
  EXPECT_EQ(proxy->counters(1).handoffs.load(), 1u);
  EXPECT_EQ(proxy->pending(0), 2u);  // the INVITE in setup and the CANCEL
  EXPECT_EQ(proxy->pending(1), 0u);
  // The router's answers arrive at the INVITE's socket: its worker settles both.
  answer(sent[0], 200, "OK", "", 0);
  EXPECT_EQ(proxy->pending(0), 1u);
  EXPECT_EQ(sent.back().to.remote, ep("192.0.2.10", 5999)) << "the 200 goes to the CANCEL's flow";
  answer(first, 487, "Request Terminated", "", 0);
  EXPECT_EQ(proxy->pending(0), 0u);
  EXPECT_EQ(sent.back().to.remote, ep("192.0.2.10", 5062));
  EXPECT_EQ(posts, 1u);
}

// The caller's ACK of a non-2xx final over another flow than its INVITE's reaches another
// worker: it is passed to the one that relayed the final response and leaves from the INVITE's
// socket with the INVITE's Via, so the router's INVITE transaction matches it and stops
// resending the final response.
TEST_F(EdgeOwnEgressTest, AnAckOfAFailureOverAnotherFlowLeavesFromTheInvitesSocket) {
  receiveOn(0, invite());
  const Sent first = sent[0];
  const sip::Via inviteVia = *sip::Message::parse(first.bytes)->topVia();
  answer(first, 486, "Busy Here", "", 0);
  EXPECT_EQ(proxy->pending(0), 0u);
  EXPECT_EQ(sent.back().to.remote, ep("192.0.2.10", 5062));
  sent.clear();
  receiveOn(1, ackOf(invite()), ep("192.0.2.10", 5999));
  ASSERT_EQ(sent.size(), 1u);
  auto ack = sip::Message::parse(sent[0].bytes);
  ASSERT_TRUE(ack) << sent[0].bytes;
  EXPECT_EQ(ack->methodText(), "ACK");
  EXPECT_EQ(sent[0].to.remote, first.to.remote);
  EXPECT_EQ(sent[0].to.egress, first.to.egress);
  EXPECT_EQ(ack->topVia()->port, inviteVia.port);
  EXPECT_EQ(*ack->topVia()->branch(), *inviteVia.branch());
  EXPECT_EQ(posts, 1u);
  EXPECT_EQ(proxy->counters(1).handoffs.load(), 1u);
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 0u);  // an ACK is never answered
  // Over the INVITE's flow, the ACK of the next failure stays on its worker.
  sent.clear();
  receiveOn(1, withCallId(invite(), "busy-again"));
  answer(sent[0], 486, "Busy Here", "", 1);
  receiveOn(1, ackOf(withCallId(invite(), "busy-again")));
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].to.egress, sent[0].to.egress);
  EXPECT_EQ(posts, 1u);
}

TEST_F(EdgeOwnEgressTest, ACancelOverTheInvitesFlowIsNotHandedOver) {
  receiveOn(1, invite());
  const Sent first = sent[0];
  receiveOn(1, cancelOf(invite()));
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].to.egress, first.to.egress);
  EXPECT_EQ(sent[1].to.remote, first.to.remote);
  EXPECT_EQ(posts, 0u);
  EXPECT_EQ(handoffs(), 0u);
}

// The INVITE moved to the next router (its first one answered nothing): its CANCEL follows it
// there, although the first router is not marked down yet.
TEST_F(EdgeOwnEgressTest, ACancelGoesToTheRouterItsInviteMovedTo) {
  receiveOn(1, invite());
  const Sent lost = sent[0];
  clock.advance(600ms);
  tick();
  ASSERT_EQ(sent.size(), 2u);
  const Sent moved = sent[1];
  ASSERT_NE(moved.to.remote, lost.to.remote);
  receiveOn(0, cancelOf(invite()), ep("192.0.2.10", 5999));
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].to.remote, moved.to.remote);
  EXPECT_EQ(sent[2].to.egress, moved.to.egress);
}

// CANCELs whose INVITE no worker keeps (over, or never seen; a stranger's made-up branches):
// each is passed at most once around the workers, then sent once by the last, as its own.
TEST_F(EdgeOwnEgressTest, ACancelNoWorkerKnowsCostsAHopPerWorkerAndIsSentOnce) {
  for (int i = 0; i < 8; ++i) {
    receiveOn(1, cancelOf(withCallId(invite(), "unknown-" + std::to_string(i))));
  }
  ASSERT_EQ(sent.size(), 8u);
  for (const auto& s : sent) {
    EXPECT_EQ(static_cast<size_t>(s.to.egress) / 2, 0u) << "sent by the last worker";
    EXPECT_EQ(sip::Message::parse(s.bytes)->topVia()->port, 40001 + s.to.egress);
  }
  EXPECT_EQ(posts, 8u);
  EXPECT_EQ(proxy->counters(1).handoffs.load(), 8u);
  EXPECT_EQ(proxy->pending(0), 8u);  // kept where the router's answers arrive
  answer(sent[0], 481, "Call/Transaction Does Not Exist", "", 0);
  EXPECT_EQ(proxy->pending(0), 7u);
}

}  // namespace
}  // namespace evosip::edge
