#include <map>
#include <set>
#include <string>
#include <vector>

#include "edge_proxy_fixture.hpp"

namespace evosip::edge {
namespace {

using namespace edgetest;

TEST_F(EdgeProxyTest, ForwardsInviteToRouterWithViaRecordRouteAndNatFixes) {
  receive(invite("X-Evosip-Action: Voicemail\r\nx-evosip-mailbox: 1\r\n"));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, ep("127.0.0.1", 5070));
  auto m = last();
  auto via = m.topVia();
  ASSERT_TRUE(via);
  EXPECT_EQ(via->hostText, "127.0.0.1");
  EXPECT_EQ(via->port, 5060);
  EXPECT_EQ(via->branch()->substr(0, 7), "z9hG4bK");
  // The client's Via got received and rport (RFC 3581).
  EXPECT_NE(sent[0].bytes.find("branch=z9hG4bK776asdhds;rport=5062;received=192.0.2.10"),
            std::string::npos)
      << sent[0].bytes;
  EXPECT_NE(sent[0].bytes.find("Max-Forwards: 20\r\n"), std::string::npos);  // the cap
  EXPECT_EQ(sent[0].bytes.find("X-Evosip"), std::string::npos);
  EXPECT_EQ(sent[0].bytes.find("x-evosip"), std::string::npos);
  const auto* rr = m.find(sip::HeaderId::kRecordRoute);
  ASSERT_NE(rr, nullptr);
  auto na = sip::parseNameAddr(rr->value);
  ASSERT_TRUE(na);
  EXPECT_EQ(na->uri.host, "127.0.0.1");
  EXPECT_EQ(na->uri.port, 5060);
  EXPECT_TRUE(na->uri.looseRouting());
  EXPECT_FALSE(na->uri.user.empty());  // the flow token
}

TEST_F(EdgeProxyTest, SameCallIdAlwaysReachesTheSameRouter) {
  make({"sip:127.0.0.1:5070", "sip:127.0.0.1:5071", "sip:127.0.0.1:5072"});
  for (int i = 0; i < 5; ++i) {
    receive(invite());
  }
  ASSERT_EQ(sent.size(), 5u);
  for (const auto& s : sent) {
    EXPECT_EQ(s.to.remote, sent[0].to.remote);
  }
  // A retransmission carries the same branch (stateless proxy, RFC 3261 16.11).
  EXPECT_EQ(sip::Message::parse(sent[0].bytes)->topVia()->branch(),
            sip::Message::parse(sent[4].bytes)->topVia()->branch());
}

TEST_F(EdgeProxyTest, ResponseFromRouterGoesBackToTheClientByVia) {
  receive(invite());
  std::string forwarded = sent[0].bytes;
  auto fwd = sip::Message::parse(forwarded);
  // The router answers 180 with the Via stack it received.
  const std::string vias = viaLines(*fwd);
  std::string ringing = "SIP/2.0 180 Ringing\r\n" + vias +
                        "To: Bob <sip:bob@evosip.local>;tag=8321234356\r\n"
                        "From: Alice <sip:alice@evosip.local>;tag=1928301774\r\n"
                        "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
                        "CSeq: 314159 INVITE\r\nX-Evosip-Internal: 1\r\nContent-Length: 0\r\n\r\n";
  sent.clear();
  receive(ringing, ep("127.0.0.1", 5070));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, ep("192.0.2.10", 5062));  // received + rport
  auto m = last();
  EXPECT_EQ(m.count(sip::HeaderId::kVia), 1u);
  EXPECT_EQ(m.topVia()->host, "10.1.1.1");
  EXPECT_EQ(sent[0].bytes.find("X-Evosip"), std::string::npos);
  // A provisional answer keeps the INVITE (a call in setup) until the final one.
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 1u);
  std::string ok = ringing;
  ok.replace(0, ok.find("\r\n"), "SIP/2.0 200 OK");
  receive(ok, ep("127.0.0.1", 5070));
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 0u);  // answered: nothing to fail over
}

TEST_F(EdgeProxyTest, RequestsToRoutersLeaveFromTheCallsEgressSocket) {
  make({"sip:127.0.0.1:5070"}, 0, {{40001, 0}, {40002, 0}, {40003, 0}});
  std::map<std::string, int32_t> egressOfCall;
  std::set<int32_t> used;
  for (int i = 0; i < 24; ++i) {
    std::string text = invite();
    const std::string callId = "call-" + std::to_string(i);
    text.replace(text.find("a84b4c76e66710@pc33.atlanta.com"), 31, callId);
    sent.clear();
    receive(text);
    ASSERT_EQ(sent.size(), 1u);
    const int32_t e = sent[0].to.egress;
    ASSERT_GE(e, 0);
    ASSERT_LT(e, 3);
    used.insert(e);
    egressOfCall[callId] = e;
    EXPECT_EQ(last().topVia()->port, 40001 + e) << "the Via names the socket it left from";
    // Its retransmission leaves from the same socket (a router sees one flow per call).
    sent.clear();
    receive(text);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].to.egress, e);
  }
  EXPECT_EQ(used.size(), 3u) << "calls are spread over the egress sockets";
  // The router's answer to an egress port is ours and goes to the client.
  std::string forwarded = sent[0].bytes;
  auto fwd = sip::Message::parse(forwarded);
  const std::string vias = viaLines(*fwd);
  sent.clear();
  receive("SIP/2.0 180 Ringing\r\n" + vias +
              "To: Bob <sip:bob@evosip.local>;tag=83\r\nFrom: Alice <sip:alice@evosip.local>;"
              "tag=1928301774\r\nCall-ID: call-23\r\nCSeq: 314159 INVITE\r\n"
              "Content-Length: 0\r\n\r\n",
          ep("127.0.0.1", 5070));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, ep("192.0.2.10", 5062));
  EXPECT_EQ(sent[0].to.egress, -1);
}

TEST_F(EdgeProxyTest, ResponseWithForeignTopViaIsDropped) {
  receive(
      "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKx\r\n"
      "To: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 BYE\r\n"
      "Content-Length: 0\r\n\r\n",
      ep("127.0.0.1", 5070));
  EXPECT_TRUE(sent.empty());
  EXPECT_EQ(proxy->counters(0).drops[static_cast<size_t>(DropReason::kNotOurVia)].load(), 1u);
}

TEST_F(EdgeProxyTest, RegisterGetsPathWithFlowToken) {
  receive(
      "REGISTER sip:evosip.local SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bKnashds7\r\n"
      "Max-Forwards: 70\r\nTo: <sip:alice@evosip.local>\r\n"
      "From: <sip:alice@evosip.local>;tag=456248\r\nCall-ID: 843817637684230@998sdasdh09\r\n"
      "CSeq: 1826 REGISTER\r\nContact: <sip:alice@10.1.1.1:5062>\r\nExpires: 7200\r\n"
      "Content-Length: 0\r\n\r\n");
  ASSERT_EQ(sent.size(), 1u);
  auto m = last();
  const auto* path = m.find(sip::HeaderId::kPath);
  ASSERT_NE(path, nullptr) << sent[0].bytes;
  auto na = sip::parseNameAddr(path->value);
  ASSERT_TRUE(na);
  EXPECT_EQ(na->uri.hostText, "127.0.0.1");
  EXPECT_TRUE(na->uri.looseRouting());
  EXPECT_FALSE(na->uri.user.empty());
  EXPECT_EQ(m.find(sip::HeaderId::kRecordRoute), nullptr);  // REGISTER is not record-routed
}

TEST_F(EdgeProxyTest, RouterRequestThroughPathReachesTheNatedClient) {
  // REGISTER from behind NAT: the Path carries the client's public address.
  receive(
      "REGISTER sip:evosip.local SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bKnashds7;rport\r\n"
      "To: <sip:alice@evosip.local>\r\nFrom: <sip:alice@evosip.local>;tag=456248\r\n"
      "Call-ID: reg-1\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@10.1.1.1:5062>\r\n"
      "Content-Length: 0\r\n\r\n",
      ep("203.0.113.5", 34567));
  auto reg = last();
  const size_t pendingBefore = proxy->pending(0) + proxy->pending(1);
  std::string pathUri(sip::parseNameAddr(reg.find(sip::HeaderId::kPath)->value)->uriText);
  sent.clear();
  // The router sends an INVITE to the contact with the Path as Route.
  receive(
      "INVITE sip:alice@10.1.1.1:5062 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKrouter1\r\n"
      "Route: <" +
          pathUri +
          ">\r\n"
          "Max-Forwards: 69\r\nTo: <sip:alice@evosip.local>\r\n"
          "From: <sip:bob@evosip.local>;tag=99\r\nCall-ID: call-2\r\nCSeq: 1 INVITE\r\n"
          "Contact: <sip:bob@127.0.0.1:5090>\r\nContent-Length: 0\r\n\r\n",
      ep("127.0.0.1", 5070));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, ep("203.0.113.5", 34567));
  auto m = last();
  EXPECT_EQ(m.find(sip::HeaderId::kRoute), nullptr);  // our own Route popped
  EXPECT_EQ(m.count(sip::HeaderId::kVia), 2u);
  EXPECT_NE(m.find(sip::HeaderId::kRecordRoute), nullptr);
  // Not a router-bound request: nothing to fail over.
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), pendingBefore);
}

// A dual-stack edge in front of IPv4 routers: an IPv6 phone's requests reach the routers with
// the edge's IPv4 address wherever the routers will use it (Via, the router-facing
// Record-Route, Path), and its IPv6 address where the phone will (the client-facing entry).
TEST_F(EdgeProxyTest, Ipv6ClientOfIpv4RoutersGetsAnEntryPerFamily) {
  make({"sip:127.0.0.1:5070"}, 0, {},
       {{Protocol::kUdp, ep("127.0.0.1", 5060)}, {Protocol::kUdp, ep("::1", 5060)}});
  const Endpoint phone = ep("2001:db8::10", 5062);
  receive(invite("", "SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bKv6a;rport"), phone);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, ep("127.0.0.1", 5070));
  auto fwd = last();
  EXPECT_EQ(fwd.topVia()->host, "127.0.0.1");
  std::vector<std::string> rr;
  for (const auto& h : fwd.headers()) {
    if (h.id == sip::HeaderId::kRecordRoute) {
      rr.emplace_back(h.value);
    }
  }
  ASSERT_EQ(rr.size(), 2u) << sent[0].bytes;
  EXPECT_EQ(rr[0], "<sip:127.0.0.1:5060;lr>");  // the routers' side, on top
  auto client = sip::parseNameAddr(rr[1]);
  ASSERT_TRUE(client);
  EXPECT_EQ(client->uri.hostText, "[::1]");
  EXPECT_FALSE(client->uri.user.empty());  // the phone's flow

  // The callee's BYE comes back from the router with that route set: it reaches the phone.
  sent.clear();
  receive(
      "BYE sip:alice@[2001:db8::10]:5062 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKrouterbye\r\n"
      "Route: " +
          rr[0] + ", " + rr[1] +
          "\r\nMax-Forwards: 69\r\nTo: <sip:alice@evosip.local>;tag=1928301774\r\n"
          "From: <sip:bob@evosip.local>;tag=77\r\nCall-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
          "CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
      ep("127.0.0.1", 5070));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, phone);
  EXPECT_EQ(last().find(sip::HeaderId::kRoute), nullptr);  // both of our entries popped
  EXPECT_EQ(last().topVia()->host, "::1");

  // Its REGISTER gets a Path the routers can use.
  sent.clear();
  receive(
      "REGISTER sip:evosip.local SIP/2.0\r\n"
      "Via: SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bKv6reg\r\n"
      "To: <sip:alice@evosip.local>\r\nFrom: <sip:alice@evosip.local>;tag=4\r\n"
      "Call-ID: v6reg\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@[2001:db8::10]:5062>\r\n"
      "Content-Length: 0\r\n\r\n",
      phone);
  ASSERT_EQ(sent.size(), 1u);
  auto path = sip::parseNameAddr(last().find(sip::HeaderId::kPath)->value);
  ASSERT_TRUE(path);
  EXPECT_EQ(path->uri.hostText, "127.0.0.1");
  EXPECT_FALSE(path->uri.user.empty());
}

TEST_F(EdgeProxyTest, TcpClientGetsResponsesOnItsConnection) {
  transport::ConnectionId conn{1, 42};
  receive(invite("", "SIP/2.0/TCP 10.1.1.1:5062;branch=z9hG4bKtcp1"), ep("192.0.2.10", 40000),
          Protocol::kTcp, conn);
  ASSERT_EQ(sent.size(), 1u);
  auto fwd = last();
  // Double Record-Route: one entry for the routers (UDP), one for the client (TCP).
  EXPECT_EQ(fwd.count(sip::HeaderId::kRecordRoute), 2u);
  EXPECT_NE(sent[0].bytes.find(";transport=tcp;lr>"), std::string::npos);
  const std::string vias = viaLines(fwd);
  sent.clear();
  receive(
      "SIP/2.0 200 OK\r\n" + vias +
          "To: <sip:bob@evosip.local>;tag=1\r\nFrom: <sip:alice@evosip.local>;tag=1928301774\r\n"
          "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\nCSeq: 314159 INVITE\r\n"
          "Content-Length: 0\r\n\r\n",
      ep("127.0.0.1", 5070));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.protocol, Protocol::kTcp);
  EXPECT_EQ(sent[0].to.connection, conn);
}

TEST_F(EdgeProxyTest, AnswersOptionsForItself) {
  const std::string options =
      "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bKo1\r\n"
      "To: <sip:127.0.0.1>\r\nFrom: <sip:mon@10.1.1.1>;tag=1\r\nCall-ID: o1\r\n"
      "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
  receive(options, ep("192.0.2.10", 5062), Protocol::kTcp, {1, 7});
  ASSERT_EQ(sent.size(), 1u);
  auto m = last();
  EXPECT_EQ(m.statusCode(), 200);
  EXPECT_EQ(sent[0].to.connection, (transport::ConnectionId{1, 7}));
  EXPECT_NE(m.find("Allow"), nullptr);
  // Over UDP (a source that may be spoofed) the answer is never much larger than the request:
  // a small request gets the minimal header set.
  sent.clear();
  receive(options);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(last().statusCode(), 200);
  EXPECT_EQ(sent[0].to.remote, ep("192.0.2.10", 5062));
  EXPECT_EQ(last().find("Allow"), nullptr);
  EXPECT_LE(sent[0].bytes.size(), options.size() + 64);
}

TEST_F(EdgeProxyTest, SanityChecksAnswerWithTheRightCode) {
  struct Case {
    std::string text;
    int code;
  };
  std::string base = invite();
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = base;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  std::vector<Case> cases = {
      {replace("Max-Forwards: 70", "Max-Forwards: 0"), 483},
      {replace("Max-Forwards: 70", "Max-Forwards: many"), 400},
      {replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE"), 400},
      {replace("CSeq: 314159 INVITE", "CSeq: x INVITE"), 400},
      {replace("INVITE sip:bob@evosip.local", "INVITE http://bob"), 416},
      {invite("Proxy-Require: foo\r\n"), 420},
  };
  for (const auto& c : cases) {
    sent.clear();
    receive(c.text);
    ASSERT_EQ(sent.size(), 1u) << c.text;
    auto m = last();
    EXPECT_EQ(m.statusCode(), c.code) << c.text;
    EXPECT_TRUE(m.to()->tag().has_value());
  }
  // No Call-ID: answered 400 with what the request has; no Via: nowhere to answer, dropped.
  sent.clear();
  receive(replace("Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n", ""));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(last().statusCode(), 400);
  EXPECT_EQ(last().reasonPhrase(), "Missing Call-ID");
  sent.clear();
  receive(replace("Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK776asdhds;rport\r\n", ""));
  EXPECT_TRUE(sent.empty());
  receive("garbage\r\n\r\n");
  EXPECT_TRUE(sent.empty());
}

TEST_F(EdgeProxyTest, DetectsALoopButNotASpiral) {
  receive(invite());
  std::string once = sent.back().bytes;
  sent.clear();
  // The same request comes back through us unchanged (a loop): 482.
  receive(once, ep("192.0.2.77", 5060));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(last().statusCode(), 482);
  // The same Call-ID with another Request-URI is a spiral: forwarded.
  sent.clear();
  std::string spiral = once;
  spiral.replace(spiral.find("sip:bob@evosip.local SIP/2.0"), 28, "sip:bob@10.1.1.2:5060 SIP/2.0");
  receive(spiral, ep("192.0.2.77", 5060));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(last().isRequest());
}

TEST_F(EdgeProxyTest, FailsOverAndMarksADeadRouterDownWhenItsProbeFails) {
  make({"sip:127.0.0.1:5070", "sip:127.0.0.1:5071"});
  receive(invite());
  ASSERT_EQ(sent.size(), 1u);
  Endpoint first = sent[0].to.remote;
  clock.advance(400ms);
  tick();
  EXPECT_EQ(sent.size(), 1u);  // not yet
  clock.advance(200ms);
  tick();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_NE(sent[1].to.remote, first);
  EXPECT_EQ(sent[1].bytes, sent[0].bytes);  // the same request, same branch
  auto routers = proxy->routers();
  size_t dead = routers->find(first);
  EXPECT_GT(routers->at(dead).timeouts.load(), 0u);
  // The silent router is asked directly: OPTIONS to itself, Max-Forwards 0.
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_EQ(probes[0].to.remote, first);
  auto probe = sip::Message::parse(probes[0].bytes);
  ASSERT_TRUE(probe) << probes[0].bytes;
  EXPECT_EQ(probe->requestUri(), "sip:" + first.str());
  EXPECT_EQ(probe->maxForwards(), 0u);
  // One unanswered request is not enough to take it out of the set.
  EXPECT_TRUE(routers->at(dead).upAt(nowNs()));
  // The probe is left unanswered too: down, and new calls avoid it during the hold-down.
  clock.advance(600ms);
  tick();
  EXPECT_FALSE(routers->at(dead).upAt(nowNs()));
  EXPECT_EQ(proxy->counters(0).probesFailed.load() + proxy->counters(1).probesFailed.load(), 1u);
  sent.clear();
  for (int i = 0; i < 20; ++i) {
    std::string text = invite();
    text.replace(text.find("a84b4c76e66710"), 14, "call-" + std::to_string(100 + i));
    receive(text);
  }
  for (const auto& s : sent) {
    EXPECT_NE(s.to.remote, first);
  }
}

// In a router set of both address families, a request fails over to a router of the family its
// Via was written for, whichever router the Call-ID picked first; only when none is up does it
// cross over.
TEST_F(EdgeProxyTest, FailoverStaysInTheAddressFamilyOfTheFirstRouter) {
  auto timeOut = [&] {
    clock.advance(600ms);
    proxy->onTick(0);
    proxy->onTick(1);
  };
  for (int i = 0; i < 12; ++i) {
    make({"sip:127.0.0.1:5070", "sip:[::1]:5070", "sip:127.0.0.1:5071", "sip:[::1]:5071"}, 0, {},
         {{Protocol::kUdp, ep("127.0.0.1", 5060)}, {Protocol::kUdp, ep("::1", 5060)}});
    sent.clear();
    std::string text = invite();
    text.replace(text.find("a84b4c76e66710"), 14, "fam-" + std::to_string(i));
    receive(text);
    ASSERT_EQ(sent.size(), 1u);
    const bool v6 = sent[0].to.remote.ip.is_v6();
    timeOut();
    ASSERT_EQ(sent.size(), 2u) << i;
    EXPECT_EQ(sent[1].to.remote.ip.is_v6(), v6) << i;
    EXPECT_NE(sent[1].to.remote, sent[0].to.remote) << i;
    // Both of that family down: the other family is the last resort.
    timeOut();
    ASSERT_EQ(sent.size(), 3u) << i;
    EXPECT_NE(sent[2].to.remote.ip.is_v6(), v6) << i;
  }
}

// When no router of the first family is up, the copy resent to the other family says where
// that router can answer: our Via names the edge's address of its family, the branch stays.
TEST_F(EdgeProxyTest, FailoverToTheOtherFamilyRewritesOurVia) {
  for (int i = 0; i < 6; ++i) {
    make({"sip:127.0.0.1:5070", "sip:[::1]:5070"}, 0, {{40001, 40002}},
         {{Protocol::kUdp, ep("127.0.0.1", 5060)}, {Protocol::kUdp, ep("::1", 5060)}});
    sent.clear();
    std::string text = invite();
    text.replace(text.find("a84b4c76e66710"), 14, "cross-" + std::to_string(i));
    receive(text);
    ASSERT_EQ(sent.size(), 1u);
    const bool v6 = sent[0].to.remote.ip.is_v6();
    auto first = sip::Message::parse(sent[0].bytes);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->topVia()->host, v6 ? "::1" : "127.0.0.1");
    EXPECT_EQ(first->topVia()->port, v6 ? 40002 : 40001);
    clock.advance(600ms);
    proxy->onTick(0);
    proxy->onTick(1);
    ASSERT_EQ(sent.size(), 2u) << i;
    EXPECT_NE(sent[1].to.remote.ip.is_v6(), v6);
    auto second = sip::Message::parse(sent[1].bytes);
    ASSERT_TRUE(second) << sent[1].bytes;
    EXPECT_EQ(second->topVia()->host, v6 ? "127.0.0.1" : "::1");
    EXPECT_EQ(second->topVia()->port, v6 ? 40001 : 40002);
    EXPECT_EQ(second->topVia()->branch(), first->topVia()->branch());
    // The new router's answer to that Via reaches the client.
    const std::string vias = viaLines(*second);
    sent.clear();
    receive(
        "SIP/2.0 180 Ringing\r\n" + vias +
            "To: <sip:bob@evosip.local>;tag=1\r\nFrom: <sip:alice@evosip.local>;tag=1928301774\r\n"
            "Call-ID: cross-" +
            std::to_string(i) + "\r\nCSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n",
        v6 ? ep("127.0.0.1", 5070) : ep("::1", 5070));
    ASSERT_EQ(sent.size(), 1u) << i;
    EXPECT_EQ(sent[0].to.remote, ep("192.0.2.10", 5062));
  }
}

TEST_F(EdgeProxyTest, NoRouterLeftGives503WithRetryAfter) {
  receive(invite());
  clock.advance(600ms);
  tick();
  ASSERT_EQ(sent.size(), 2u);
  auto m = last();
  EXPECT_EQ(m.statusCode(), 503);
  EXPECT_EQ(sent[1].to.remote, ep("192.0.2.10", 5062));
  EXPECT_NE(m.find(sip::HeaderId::kRetryAfter), nullptr);
  EXPECT_EQ(m.count(sip::HeaderId::kVia), 1u);  // the client's own Via only
  // Once its probe went unanswered too, the only router is down: new requests get 503 at once.
  clock.advance(600ms);
  tick();
  sent.clear();
  receive(invite());
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(last().statusCode(), 503);
}

TEST_F(EdgeProxyTest, AckIsForwardedButNeverTrackedOrAnswered) {
  std::string ack = invite();
  ack.replace(0, 6, "ACK");
  ack.replace(ack.find("CSeq: 314159 INVITE"), 19, "CSeq: 314159 ACK");
  receive(ack);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(proxy->pending(0) + proxy->pending(1), 0u);
  clock.advance(1s);
  proxy->onTick(0);
  proxy->onTick(1);
  EXPECT_EQ(sent.size(), 1u);
}

TEST_F(EdgeProxyTest, RateLimitDropsExcessFromOneSource) {
  make({"sip:127.0.0.1:5070"}, 5);
  for (int i = 0; i < 20; ++i) {
    receive(invite());
  }
  EXPECT_EQ(sent.size(), 5u);
  EXPECT_EQ(proxy->counters(0).drops[static_cast<size_t>(DropReason::kRateLimit)].load(), 15u);
  // Routers are not limited.
  receive(
      "SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKx\r\n"
      "To: <sip:a@b>\r\nFrom: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
      "Content-Length: 0\r\n\r\n",
      ep("127.0.0.1", 5070));
}

TEST_F(EdgeProxyTest, DispatcherSetMovesTraffic) {
  make({"sip:127.0.0.1:5070", "sip:127.0.0.1:5071"});
  proxy->setRouters(*RouterSet::build({"sip:127.0.0.1:5071"}));
  for (int i = 0; i < 10; ++i) {
    std::string text = invite();
    text.replace(text.find("a84b4c76e66710"), 14, "call-" + std::to_string(i));
    receive(text);
  }
  for (const auto& s : sent) {
    EXPECT_EQ(s.to.remote, ep("127.0.0.1", 5071));
  }
}

}  // namespace
}  // namespace evosip::edge

namespace evosip::edge {
namespace {

using namespace edgetest;

TEST_F(EdgeProxyTest, InDialogRequestSpiralsThroughTheRouterToTheOtherClient) {
  // A (UDP, 192.0.2.10) calls B (UDP, 203.0.113.9) through edge -> router -> edge.
  receive(invite());
  const std::string toRouterText = sent.back().bytes;  // outlives sent.clear() below
  auto toRouter = *sip::Message::parse(toRouterText);
  std::string rr1(sip::parseNameAddr(toRouter.find(sip::HeaderId::kRecordRoute)->value)->uriText);
  // The router sends the INVITE to B through the edge (Route from B's Path).
  std::string pathToB;
  {
    sent.clear();
    receive(
        "REGISTER sip:evosip.local SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.2.2.2:5060;branch=z9hG4bKbreg;rport\r\n"
        "To: <sip:bob@evosip.local>\r\nFrom: <sip:bob@evosip.local>;tag=5\r\n"
        "Call-ID: reg-b\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@10.2.2.2:5060>\r\n"
        "Content-Length: 0\r\n\r\n",
        ep("203.0.113.9", 5060));
    pathToB = std::string(sip::parseNameAddr(last().find(sip::HeaderId::kPath)->value)->uriText);
  }
  sent.clear();
  std::string routed(toRouter.buffer());
  routed.replace(0, routed.find("\r\n"), "INVITE sip:bob@10.2.2.2:5060 SIP/2.0");
  routed.replace(
      routed.find("Via: "), 0,
      "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKrtr\r\nRoute: <" + pathToB + ">\r\n");
  receive(routed, ep("127.0.0.1", 5070));
  for (size_t r = 0; r < static_cast<size_t>(DropReason::kCount); ++r) {
    EXPECT_EQ(proxy->counters(0).drops[r].load(), 0u) << dropReasonName(DropReason(r));
  }
  ASSERT_EQ(sent.size(), 1u) << routed;
  EXPECT_EQ(sent[0].to.remote, ep("203.0.113.9", 5060));
  auto toB = last();
  ASSERT_EQ(toB.count(sip::HeaderId::kRecordRoute), 2u) << toB.buffer();
  // B's route set is [RR2, RR1]; A's is [RR1, RR2]. A hangs up.
  std::string rr2;
  for (const auto& h : toB.headers()) {
    if (h.id == sip::HeaderId::kRecordRoute) {
      rr2 = std::string(sip::parseNameAddr(h.value)->uriText);
      break;
    }
  }
  ASSERT_NE(rr1, rr2);
  sent.clear();
  receive(
      "BYE sip:bob@10.2.2.2:5060 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bKbye1;rport\r\n"
      "Route: <" +
      rr1 + ">, <" + rr2 +
      ">\r\n"
      "Max-Forwards: 70\r\nTo: <sip:bob@evosip.local>;tag=b\r\n"
      "From: <sip:alice@evosip.local>;tag=1928301774\r\n"
      "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\nCSeq: 314160 BYE\r\n"
      "Content-Length: 0\r\n\r\n");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, ep("127.0.0.1", 5070));  // first to a router
  auto byeAtRouter = last();
  const auto* route = byeAtRouter.find(sip::HeaderId::kRoute);
  ASSERT_NE(route, nullptr) << byeAtRouter.buffer();
  EXPECT_EQ(sip::parseNameAddr(route->value)->uriText, rr2);
  // The router forwards it back along the remaining Route: the edge delivers it to B.
  std::string back(byeAtRouter.buffer());
  sent.clear();
  back.replace(back.find("Via: "), 0, "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKrtr2\r\n");
  receive(back, ep("127.0.0.1", 5070));
  ASSERT_EQ(sent.size(), 1u) << back;
  EXPECT_EQ(sent[0].to.remote, ep("203.0.113.9", 5060));
  EXPECT_TRUE(last().isRequest());
}

}  // namespace
}  // namespace evosip::edge

namespace evosip::edge {
namespace {

using namespace edgetest;

TEST_F(EdgeProxyTest, UdpRequestWithUnusableContentLengthGets400) {
  std::string text = invite();
  text.replace(text.find("Content-Length: 0"), 17, "Content-Length: 4000");
  receive(text);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(last().statusCode(), 400);
  EXPECT_EQ(sent[0].to.remote, ep("192.0.2.10", 5062));
  // Unreadable headers: nothing can be answered.
  sent.clear();
  receive("INVITE sip:x SIP/2.0\r\nContent-Length: 9\r\n\r\n");
  EXPECT_TRUE(sent.empty());
}

}  // namespace
}  // namespace evosip::edge

namespace evosip::edge {
namespace {

using namespace edgetest;

TEST_F(EdgeProxyTest, AckOfANonSuccessFinalGetsTheBranchOfItsInvite) {
  // The router sends an INVITE to a client through the edge, the client answers 487, the router
  // acknowledges it (hop by hop, same branch as its INVITE): the client must see the same branch
  // on the ACK as on the INVITE, or it keeps retransmitting the 487.
  const std::string head =
      "sip:bob@10.2.2.2:5060 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKrouterinv1\r\n"
      "Max-Forwards: 69\r\nFrom: <sip:alice@evosip.local>;tag=a1\r\n";
  receive("INVITE " + head +
              "To: <sip:bob@evosip.local>\r\nCall-ID: ack-branch\r\nCSeq: 7 INVITE\r\n"
              "Contact: <sip:alice@10.1.1.1>\r\nContent-Length: 0\r\n\r\n",
          ep("127.0.0.1", 5070));
  ASSERT_EQ(sent.size(), 1u);
  const std::string invite = sent[0].bytes;
  receive("ACK " + head +
              "To: <sip:bob@evosip.local>;tag=b9\r\nCall-ID: ack-branch\r\nCSeq: 7 ACK\r\n"
              "Content-Length: 0\r\n\r\n",
          ep("127.0.0.1", 5070));
  ASSERT_EQ(sent.size(), 2u);
  const std::string ack = sent[1].bytes;
  EXPECT_EQ(sip::Message::parse(invite)->topVia()->branch(),
            sip::Message::parse(ack)->topVia()->branch());
}

}  // namespace
}  // namespace evosip::edge
