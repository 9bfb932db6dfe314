#include <algorithm>
#include <deque>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/sip/response.hpp>
#include <evosip/transaction/proxy_core.hpp>

#include "txn_test_support.hpp"

namespace evosip::transaction {
namespace {

using namespace std::chrono_literals;
using namespace txntest;

class Router : public ProxyUser {
 public:
  // The request checks of RFC 3261 16.3 are a step of the user's; this one runs them first.
  void onRequest(TransactionId server, const sip::Message& request, const Source&) override {
    if (core != nullptr && !core->checkRequest(server, request)) {
      return;
    }
    last = server;
    ++requests;
    if (answerAtOnce != 0) {
      core->respond(server, answerAtOnce, "Proxy Authentication Required");
    }
  }
  ProxyCore* core = nullptr;
  int answerAtOnce = 0;  // a final response sent from inside onRequest
  void onResponse(TransactionId, const sip::Message& response) override {
    upstreamFinals.push_back(response.statusCode());
  }
  bool holdResponse(TransactionId client, const sip::Message& response) override {
    if (!holdCodes.count(response.statusCode())) {
      return false;
    }
    held.push_back({client, wholeText(response)});
    return true;
  }
  void onContextDone(TransactionId server, bool answered) override {
    done.emplace_back(server.value, answered);
  }
  static std::string wholeText(const sip::Message& m) {
    return std::string(m.buffer().substr(m.startOffset(), m.size() - m.startOffset()));
  }
  TransactionId last;
  int requests = 0;
  std::vector<int> upstreamFinals;
  std::set<int> holdCodes;
  std::vector<std::pair<TransactionId, std::string>> held;
  std::vector<std::pair<uint64_t, bool>> done;
};

class ProxyCoreTest : public ::testing::Test {
 protected:
  ProxyCoreTest() { make({}); }

  // A core with `egress` settings (egress, egressPort, alsoViaPorts) on top of the defaults.
  void make(const ProxySettings& egress) {
    ProxySettings s = egress;
    s.viaHost = "10.0.0.1";
    s.viaPort = 5060;
    s.self = {{"10.0.0.1", 5060}, {"evosip.local", 0}};
    sent.clear();
    router = Router{};
    proxy = std::make_unique<ProxyCore>(
        s, LayerSettings{}, clock,
        [this](const Destination& to, std::string_view bytes) {
          sent.push_back({to, std::string(bytes)});
          return true;
        },
        router);
    router.core = proxy.get();
  }

  void receive(const std::string& text) {
    auto m = sip::Message::parse(text);
    ASSERT_TRUE(m.has_value()) << text;
    proxy->onMessage(*m, Source{Protocol::kUdp, ep("192.0.2.10", 5062), ep("10.0.0.1", 5060), {}});
  }

  void advance(std::chrono::milliseconds d) {
    for (auto left = d; left > 0ms; left -= 1000ms) {
      clock.advance(std::min(left, std::chrono::milliseconds(1000ms)));
      proxy->onTick(clock.now());
    }
  }

  // Requests sent to `remote` (a branch), and responses sent upstream. The list lives as long as
  // the test, so messages parsed from it (views) stay valid.
  const std::vector<std::string>& to(const char* ip, uint16_t port = 5060) const {
    std::vector<std::string> out;
    for (const auto& s : sent) {
      if (s.to.remote == ep(ip, port)) {
        out.push_back(s.bytes);
      }
    }
    kept_.push_back(std::move(out));
    return kept_.back();
  }
  mutable std::deque<std::vector<std::string>> kept_;
  std::vector<int> upstreamCodes() const {
    std::vector<int> out;
    for (const auto& s : to("192.0.2.10", 5062)) {
      out.push_back(parsed(s).statusCode());
    }
    return out;
  }

  static Target target(const std::string& uri) {
    Target t;
    t.uri = uri;
    return t;
  }

  // Receives an INVITE and forks it to the given targets.
  void forkInvite(std::vector<Target> targets, const std::string& extra = "") {
    RequestSpec s;
    s.extra = extra;
    receive(request(s));
    ASSERT_EQ(router.requests, 1);
    ForwardOptions o;
    o.recordRoute = "sip:10.0.0.1;lr";
    proxy->forward(router.last, std::move(targets), o);
  }

  evosip::test::ManualClock clock;
  Router router;
  std::vector<Sent> sent;
  std::unique_ptr<ProxyCore> proxy;
};

TEST_F(ProxyCoreTest, InviteGets100AtOnceAndIsForwardedWithViaRecordRouteMaxForwards) {
  forkInvite({target("sip:bob@10.0.0.20:5080")});
  EXPECT_EQ(upstreamCodes(), (std::vector<int>{100}));
  auto out = to("10.0.0.20", 5080);
  ASSERT_EQ(out.size(), 1u);
  auto m = parsed(out[0]);
  EXPECT_EQ(m.requestUri(), "sip:bob@10.0.0.20:5080");
  auto via = m.topVia();
  EXPECT_EQ(via->host, "10.0.0.1");
  EXPECT_TRUE(via->rfc3261Branch());
  EXPECT_EQ(m.count(sip::HeaderId::kVia), 2u);
  EXPECT_EQ(m.maxForwards(), 69u);
  EXPECT_EQ(header(out[0], sip::HeaderId::kRecordRoute), "<sip:10.0.0.1;lr>");
}

// RFC 3261 18.2.1: the upstream's Via records the source when its sent-by names another
// address, so a 2xx retransmission forwarded statelessly by that Via reaches the sender too.
TEST_F(ProxyCoreTest, ForwardedRequestCarriesReceivedWhenTheSentByIsNotTheSource) {
  RequestSpec s;
  s.via = "SIP/2.0/UDP 10.99.0.1:5062;branch=z9hG4bK-anycast";
  receive(request(s));
  proxy->forward(router.last, {target("sip:bob@10.0.0.20:5080")}, {});
  auto out = to("10.0.0.20", 5080);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(
      out[0].find("Via: SIP/2.0/UDP 10.99.0.1:5062;branch=z9hG4bK-anycast;received=192.0.2.10"),
      std::string::npos)
      << out[0];
  // The callee retransmits its 2xx after the transaction ended: it goes to the source.
  auto ok = sip::Message::parse(out[0]);
  ASSERT_TRUE(ok);
  std::string response;
  ASSERT_TRUE(sip::buildResponse(*ok, 200, "OK", "callee-tag", "", response));
  sent.clear();
  auto parsedOk = sip::Message::parse(response);
  ASSERT_TRUE(parsedOk);
  proxy->onStrayResponse(*parsedOk, Source{});
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, ep("192.0.2.10", 5062));
}

TEST_F(ProxyCoreTest, InviteAnsweredInTheSamePassGetsNo100) {
  router.answerAtOnce = 407;
  RequestSpec s;
  receive(request(s));
  EXPECT_EQ(upstreamCodes(), (std::vector<int>{407}));
}

TEST_F(ProxyCoreTest, MaxForwardsZeroIs483AndNoTargetsIs480) {
  RequestSpec s;
  s.method = "OPTIONS";
  std::string req = request(s);
  req.replace(req.find("Max-Forwards: 70"), 16, "Max-Forwards: 0");
  receive(req);
  EXPECT_EQ(router.requests, 0);
  EXPECT_EQ(upstreamCodes(), (std::vector<int>{483}));
  sent.clear();
  forkInvite({});
  EXPECT_EQ(upstreamCodes(), (std::vector<int>{100, 480}));
}

TEST_F(ProxyCoreTest, LooseRoutePopsOwnEntryAndForwardsToTheNextRoute) {
  RequestSpec s;
  s.method = "BYE";
  s.toTag = "callee";
  s.uri = "sip:bob@10.0.0.30:5090";
  s.extra = "Route: <sip:10.0.0.1;lr>, <sip:10.0.0.40;lr>\r\n";
  receive(request(s));
  const std::string text = request(s);  // PreprocessedRoute views into it
  auto info = proxy->preprocessedRoute(parsed(text));
  EXPECT_TRUE(info.poppedOwnRoute);
  EXPECT_EQ(info.nextRoute, "<sip:10.0.0.40;lr>");
  proxy->forward(router.last, {Target{}});
  auto out = to("10.0.0.40");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(header(out[0], sip::HeaderId::kRoute), "<sip:10.0.0.40;lr>");
  EXPECT_EQ(parsed(out[0]).requestUri(), "sip:bob@10.0.0.30:5090");
  EXPECT_EQ(parsed(out[0]).find(sip::HeaderId::kRecordRoute), nullptr);
}

// RFC 5658: a branch that leaves over TCP for a request that came over UDP is Record-Routed
// twice, the TCP entry on top (the callee's side), the UDP one below (the caller's); a branch
// that keeps the transport gets one entry; in-dialog requests pop both entries (both are ours).
TEST_F(ProxyCoreTest, ABranchThatChangesTransportIsRecordRoutedTwice) {
  RequestSpec s;
  receive(request(s));
  ForwardOptions o;
  o.recordRoute = "sip:10.0.0.1;lr";
  o.recordRouteTcp = "sip:10.0.0.1;transport=tcp;lr";
  proxy->forward(router.last,
                 {target("sip:gw@10.0.0.20:5080;transport=tcp"), target("sip:bob@10.0.0.21")}, o);
  auto tcp = to("10.0.0.20", 5080);
  ASSERT_EQ(tcp.size(), 1u);
  auto m = parsed(tcp[0]);
  std::vector<std::string_view> rr;
  for (const auto& h : m.headers()) {
    if (h.id == sip::HeaderId::kRecordRoute) {
      rr.push_back(h.value);
    }
  }
  EXPECT_EQ(
      rr, (std::vector<std::string_view>{"<sip:10.0.0.1;transport=tcp;lr>", "<sip:10.0.0.1;lr>"}));
  EXPECT_EQ(m.topVia()->transport, "TCP");
  auto udp = to("10.0.0.21");
  ASSERT_EQ(udp.size(), 1u);
  EXPECT_EQ(parsed(udp[0]).count(sip::HeaderId::kRecordRoute), 1u);
  EXPECT_EQ(header(udp[0], sip::HeaderId::kRecordRoute), "<sip:10.0.0.1;lr>");

  // The callee's BYE along that route set: both entries are ours.
  RequestSpec bye;
  bye.method = "BYE";
  bye.toTag = "callee";
  bye.uri = "sip:alice@10.0.0.30:5090";
  bye.extra = "Route: <sip:10.0.0.1;transport=tcp;lr>, <sip:10.0.0.1;lr>\r\n";
  const std::string text = request(bye);
  auto info = proxy->preprocessedRoute(parsed(text));
  EXPECT_TRUE(info.poppedOwnRoute);
  EXPECT_EQ(info.nextRoute, "");
}

TEST_F(ProxyCoreTest, StrictRouterRequestUriIsRestoredFromTheLastRoute) {
  RequestSpec s;
  s.method = "BYE";
  s.toTag = "callee";
  s.uri = "sip:10.0.0.1;lr";  // our Record-Route URI, put there by a strict router
  s.extra = "Route: <sip:bob@10.0.0.30:5090>\r\n";
  receive(request(s));
  proxy->forward(router.last, {Target{}});
  auto out = to("10.0.0.30", 5090);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(parsed(out[0]).requestUri(), "sip:bob@10.0.0.30:5090");
  EXPECT_EQ(parsed(out[0]).find(sip::HeaderId::kRoute), nullptr);
}

TEST_F(ProxyCoreTest, TargetRouteSetFromPathLeadsTheWay) {
  Target t = target("sip:bob@192.168.1.50:5070");
  t.routeSet = {"<sip:10.0.0.5:5060;lr>"};
  forkInvite({t});
  auto out = to("10.0.0.5");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(header(out[0], sip::HeaderId::kRoute), "<sip:10.0.0.5:5060;lr>");
  EXPECT_EQ(parsed(out[0]).requestUri(), "sip:bob@192.168.1.50:5070");
}

TEST_F(ProxyCoreTest, EgressSocketCarriesRequestsToAUriAndItsPortIsInTheVia) {
  ProxySettings e;
  e.egress = 3;
  e.egressPort[0] = 40001;
  e.alsoViaPorts = {40001, 40002};
  make(e);
  forkInvite({target("sip:bob@10.0.0.20:5080")});
  ASSERT_EQ(to("10.0.0.20", 5080).size(), 1u);
  const Sent& invite = sent.back();
  EXPECT_EQ(invite.to.egress, 3);
  const auto out = to("10.0.0.20", 5080)[0];
  EXPECT_EQ(parsed(out).topVia()->port, 40001);
  // Its answers (to that port) are ours; the 100 upstream left from the listen socket.
  receive(responseTo(out, 180, "tb"));
  EXPECT_EQ(upstreamCodes(), (std::vector<int>{100, 180}));
  for (const auto& s : sent) {
    if (s.to.remote == ep("192.0.2.10", 5062)) {
      EXPECT_EQ(s.to.egress, -1) << "responses go out from the listen socket";
    }
  }
  // A stray 2xx whose top Via names another worker's egress port is ours too: forwarded up.
  std::string stray = responseTo(out, 200, "tb");
  const auto at = stray.find(":40001");
  ASSERT_NE(at, std::string::npos);
  stray.replace(at, 6, ":40002");
  std::string branch = std::string(*parsed(stray).topVia()->branch());
  stray.replace(stray.find(branch), branch.size(), "z9hG4bKother");
  const size_t before = to("192.0.2.10", 5062).size();
  receive(stray);
  EXPECT_EQ(to("192.0.2.10", 5062).size(), before + 1);
}

TEST_F(ProxyCoreTest, RequestFollowingARouteLeavesFromTheListenSocket) {
  ProxySettings e;
  e.egress = 0;
  e.egressPort[0] = 40001;
  make(e);
  // An edge knows a router by its listen address: Path and Record-Route hops get that one.
  Target t = target("sip:bob@192.168.1.50:5070");
  t.routeSet = {"<sip:10.0.0.5:5060;lr>"};
  forkInvite({t});
  ASSERT_EQ(to("10.0.0.5").size(), 1u);
  EXPECT_EQ(sent.back().to.egress, -1);
  EXPECT_EQ(parsed(to("10.0.0.5")[0]).topVia()->port, 5060);
  // No IPv6 egress socket: an IPv6 target gets the listen socket as well.
  make(e);
  forkInvite({target("sip:bob@[2001:db8::7]:5080")});
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(sent.back().to.egress, -1);
  EXPECT_EQ(parsed(sent.back().bytes).topVia()->port, 5060);
}

TEST_F(ProxyCoreTest, ABareUrisTransportParameterPicksTheProtocolAsARoutesDoes) {
  // The Via a branch carries and the protocol it is sent on, for the branch sent to `ip`:`port`.
  auto sentTo = [this](const char* ip, uint16_t port) -> std::pair<Protocol, std::string> {
    for (const auto& s : sent) {
      if (s.to.remote == ep(ip, port)) {
        return {s.to.protocol, std::string(parsed(s.bytes).topVia()->transport)};
      }
    }
    ADD_FAILURE() << "nothing sent to " << ip << ":" << port;
    return {Protocol::kUdp, ""};
  };
  // A target's URI (RFC 3263 4.1: its transport parameter chooses the transport).
  forkInvite({target("sip:bob@10.0.0.20:5080;transport=tcp")});
  EXPECT_EQ(sentTo("10.0.0.20", 5080), std::make_pair(Protocol::kTcp, std::string("TCP")));
  EXPECT_EQ(parsed(to("10.0.0.20", 5080)[0]).requestUri(), "sip:bob@10.0.0.20:5080;transport=tcp");
  // The request's own Request-URI, with maddr and lr among its parameters.
  make({});
  RequestSpec s;
  s.uri = "sip:bob@10.0.0.21:5080;lr;transport=TCP;maddr=10.0.0.21";
  receive(request(s));
  proxy->forward(router.last, {Target{}});
  EXPECT_EQ(sentTo("10.0.0.21", 5080).first, Protocol::kTcp);
  // sips: asks for TLS.
  make({});
  forkInvite({target("sips:bob@10.0.0.22")});
  EXPECT_EQ(sentTo("10.0.0.22", 5061).first, Protocol::kTls);
  // A Route's URI parameter still picks it; a parameter after its '>' is the route's own.
  make({});
  Target routed = target("sip:bob@192.168.1.50:5070");
  routed.routeSet = {"<sip:10.0.0.5:5060;lr;transport=tcp>"};
  Target after = target("sip:bob@192.168.1.51:5070;transport=tcp");
  after.routeSet = {"<sip:10.0.0.6:5060;lr>;transport=tcp"};
  forkInvite({routed, after});
  EXPECT_EQ(sentTo("10.0.0.5", 5060).first, Protocol::kTcp);
  EXPECT_EQ(sentTo("10.0.0.6", 5060).first, Protocol::kUdp);
  // The ACK of a 2xx, forwarded statelessly by its Request-URI.
  make({});
  RequestSpec ack;
  ack.method = "ACK";
  ack.toTag = "tb";
  ack.uri = "sip:bob@10.0.0.23:5090;transport=tcp";
  ack.via = "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-ack";
  receive(request(ack));
  EXPECT_EQ(sentTo("10.0.0.23", 5090), std::make_pair(Protocol::kTcp, std::string("TCP")));
}

TEST_F(ProxyCoreTest, EditBranchHookAddsHeaders) {
  RequestSpec s;
  receive(request(s));
  ForwardOptions o;
  o.editBranch = [](size_t i, const Target&, sip::MessageEditor& e) {
    e.appendHeader("X-Evosip-Action", "Playback;branch=" + std::to_string(i));
  };
  proxy->forward(router.last, {target("sip:app@10.0.0.60")}, o);
  auto m = parsed(to("10.0.0.60")[0]);
  ASSERT_NE(m.find("X-Evosip-Action"), nullptr);
  EXPECT_EQ(m.find("X-Evosip-Action")->value, "Playback;branch=0");
}

TEST_F(ProxyCoreTest, ProvisionalsForwardedExcept100AndBestResponseIsLowestClass) {
  forkInvite({target("sip:b@10.0.0.21"), target("sip:b@10.0.0.22"), target("sip:b@10.0.0.23")});
  const auto a = to("10.0.0.21")[0], b = to("10.0.0.22")[0], c = to("10.0.0.23")[0];
  receive(responseTo(a, 100, ""));
  receive(responseTo(a, 180, "ta"));
  EXPECT_EQ(upstreamCodes(), (std::vector<int>{100, 180}));
  auto ringing = parsed(to("192.0.2.10", 5062).back());
  EXPECT_EQ(ringing.count(sip::HeaderId::kVia), 1u);  // our Via removed
  EXPECT_EQ(ringing.topVia()->host, "192.0.2.10");
  receive(responseTo(a, 486, "ta"));
  receive(responseTo(b, 302, "tb"));
  EXPECT_EQ(upstreamCodes().back(), 180);  // still waiting for c
  receive(responseTo(c, 500, "tc"));
  EXPECT_EQ(upstreamCodes().back(), 302);  // 3xx is the lowest class
  EXPECT_EQ(router.upstreamFinals, (std::vector<int>{302}));
  EXPECT_EQ(proxy->contextCount(), 0u);
  // Each branch's non-2xx was acknowledged hop by hop.
  EXPECT_EQ(parsed(to("10.0.0.21").back()).methodText(), "ACK");
}

TEST_F(ProxyCoreTest, SixHundredEndsTheSearchAndCancelsTheOthers) {
  forkInvite({target("sip:b@10.0.0.21"), target("sip:b@10.0.0.22")});
  const auto a = to("10.0.0.21")[0], b = to("10.0.0.22")[0];
  receive(responseTo(b, 180, "tb"));
  receive(responseTo(a, 603, "ta"));
  EXPECT_EQ(upstreamCodes().back(), 603);
  auto toB = to("10.0.0.22");
  ASSERT_EQ(toB.size(), 2u);
  EXPECT_EQ(parsed(toB[1]).methodText(), "CANCEL");
  EXPECT_EQ(parsed(toB[1]).topVia()->branch(), parsed(b).topVia()->branch());
  receive(responseTo(b, 487, "tb"));  // ignored upstream
  EXPECT_EQ(upstreamCodes().back(), 603);
}

TEST_F(ProxyCoreTest, SuccessIsForwardedAtOnceAndOthersCancelled) {
  forkInvite({target("sip:b@10.0.0.21"), target("sip:b@10.0.0.22")});
  const auto a = to("10.0.0.21")[0], b = to("10.0.0.22")[0];
  receive(responseTo(a, 180, "ta"));
  receive(responseTo(b, 183, "tb"));
  receive(responseTo(b, 200, "tb"));
  EXPECT_EQ(upstreamCodes().back(), 200);
  EXPECT_EQ(router.upstreamFinals, (std::vector<int>{200}));
  EXPECT_EQ(parsed(to("10.0.0.21").back()).methodText(), "CANCEL");
  // A 2xx retransmission (the client transaction is gone) is forwarded statelessly.
  const size_t n = upstreamCodes().size();
  receive(responseTo(b, 200, "tb"));
  EXPECT_EQ(upstreamCodes().size(), n + 1);
  EXPECT_EQ(upstreamCodes().back(), 200);
  // A racing 2xx from the cancelled branch goes upstream too.
  receive(responseTo(a, 200, "ta"));
  EXPECT_EQ(upstreamCodes().size(), n + 2);
}

TEST_F(ProxyCoreTest, HeldResponsesGoUpstreamAsTheUserRewroteThem) {
  router.holdCodes = {183, 200};
  forkInvite({target("sip:b@10.0.0.21")});
  const auto a = to("10.0.0.21")[0];
  receive(responseTo(a, 183, "ta"));
  receive(responseTo(a, 200, "ta"));
  ASSERT_EQ(router.held.size(), 2u);
  EXPECT_EQ(upstreamCodes(), (std::vector<int>{100})) << "nothing goes upstream while held";
  EXPECT_TRUE(router.done.empty());
  for (auto& [client, text] : router.held) {
    auto pos = text.find("\r\n\r\n");
    text.insert(pos, "\r\nX-Rewritten: yes");
    proxy->resumeResponse(client, text);
  }
  EXPECT_EQ(upstreamCodes(), (std::vector<int>{100, 183, 200}));
  for (const auto& up : to("192.0.2.10", 5062)) {
    if (parsed(up).statusCode() == 100) {
      continue;
    }
    EXPECT_NE(up.find("X-Rewritten: yes"), std::string::npos) << up;
  }
  EXPECT_EQ(router.upstreamFinals, (std::vector<int>{200}));
  ASSERT_EQ(router.done.size(), 1u);
  EXPECT_TRUE(router.done[0].second) << "a 2xx answered the request";
  // A retransmitted 2xx matches no transaction: held with an invalid id, then forwarded.
  router.held.clear();
  receive(responseTo(a, 200, "ta"));
  ASSERT_EQ(router.held.size(), 1u);
  EXPECT_FALSE(router.held[0].first.valid());
  proxy->resumeResponse(router.held[0].first, router.held[0].second);
  EXPECT_EQ(upstreamCodes(), (std::vector<int>{100, 183, 200, 200}));
}

TEST_F(ProxyCoreTest, ContextDoneTellsAFailedOrCancelledCall) {
  forkInvite({target("sip:b@10.0.0.21")});
  receive(responseTo(to("10.0.0.21")[0], 486, "ta"));
  ASSERT_EQ(router.done.size(), 1u);
  EXPECT_FALSE(router.done[0].second);
  EXPECT_EQ(router.done[0].first, router.last.value);
}

TEST_F(ProxyCoreTest, AckForSuccessIsForwardedStatelesslyByRoute) {
  RequestSpec ack;
  ack.method = "ACK";
  ack.toTag = "tb";
  ack.uri = "sip:bob@10.0.0.22";
  ack.via = "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-ack";
  ack.extra = "Route: <sip:10.0.0.1;lr>\r\n";
  receive(request(ack));
  auto out = to("10.0.0.22");
  ASSERT_EQ(out.size(), 1u);
  auto m = parsed(out[0]);
  EXPECT_EQ(m.methodText(), "ACK");
  EXPECT_EQ(m.find(sip::HeaderId::kRoute), nullptr);
  EXPECT_EQ(m.count(sip::HeaderId::kVia), 2u);
  EXPECT_EQ(m.maxForwards(), 69u);
  receive(request(ack));  // the same branch for a retransmission
  EXPECT_EQ(parsed(to("10.0.0.22")[1]).topVia()->branch(), m.topVia()->branch());
}

TEST_F(ProxyCoreTest, TimerCGives408AndCancelsTheBranch) {
  forkInvite({target("sip:b@10.0.0.21")});
  const auto a = to("10.0.0.21")[0];
  advance(10s);
  receive(responseTo(a, 180, "ta"));  // resets Timer C: it would have fired at 180 s
  advance(179s);
  EXPECT_EQ(upstreamCodes().back(), 180);
  advance(1s);
  EXPECT_EQ(upstreamCodes().back(), 408);
  EXPECT_EQ(parsed(to("10.0.0.21").back()).methodText(), "CANCEL");
}

TEST_F(ProxyCoreTest, NoAnswerAtAllIs408ByTimerB) {
  forkInvite({target("sip:b@10.0.0.21")});
  advance(32s);
  EXPECT_EQ(upstreamCodes().back(), 408);
}

// RFC 3261 16.10: the CANCEL is answered at once and sent down the branches; the INVITE's final
// response is the one the cancelled branch sends back.
TEST_F(ProxyCoreTest, UpstreamCancelIsAnsweredAndTheBranchs487GoesUpstream) {
  forkInvite({target("sip:b@10.0.0.21")});
  const auto a = to("10.0.0.21")[0];
  receive(responseTo(a, 180, "ta"));
  RequestSpec c;
  c.method = "CANCEL";
  receive(request(c));
  EXPECT_EQ(upstreamCodes().back(), 200);
  EXPECT_EQ(parsed(to("192.0.2.10", 5062).back()).cseq()->methodText, "CANCEL");
  EXPECT_EQ(parsed(to("10.0.0.21").back()).methodText(), "CANCEL");
  receive(responseTo(a, 487, "ta"));
  EXPECT_EQ(upstreamCodes().back(), 487);
  auto final = parsed(to("192.0.2.10", 5062).back());
  EXPECT_EQ(final.cseq()->methodText, "INVITE");
  EXPECT_EQ(final.to()->tag(), "ta");  // the callee's, not one of ours
}

// A 200 that crossed the CANCEL is the INVITE's final response: the caller gets it (and ACKs
// and hangs up), not a 487 followed by a 200.
TEST_F(ProxyCoreTest, TwoHundredCrossingTheCancelIsTheFinalResponse) {
  forkInvite({target("sip:b@10.0.0.21")});
  const auto a = to("10.0.0.21")[0];
  receive(responseTo(a, 180, "ta"));
  RequestSpec c;
  c.method = "CANCEL";
  receive(request(c));
  receive(responseTo(a, 200, "ta"));
  const auto codes = upstreamCodes();
  EXPECT_EQ(codes.back(), 200);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), 487), 0);
  EXPECT_EQ(parsed(to("192.0.2.10", 5062).back()).cseq()->methodText, "INVITE");
}

// A branch that has sent nothing yet counts as a 487 at once (its CANCEL waits for its first
// provisional); one that rang but never answers the CANCEL is given up 64*T1 after it.
TEST_F(ProxyCoreTest, CancelledBranchesThatStaySilentEndAs487) {
  forkInvite({target("sip:b@10.0.0.21")});
  RequestSpec c;
  c.method = "CANCEL";
  receive(request(c));
  EXPECT_EQ(upstreamCodes().back(), 487);
  make({});  // a fresh core for the second case
  forkInvite({target("sip:b@10.0.0.22")});
  receive(responseTo(to("10.0.0.22")[0], 183, "tb"));
  receive(request(c));
  EXPECT_EQ(upstreamCodes().back(), 200);
  advance(31s);
  EXPECT_EQ(upstreamCodes().back(), 200);
  advance(1s);
  EXPECT_EQ(upstreamCodes().back(), 487);
}

TEST_F(ProxyCoreTest, ServiceUnavailableBecomes500) {
  forkInvite({target("sip:b@10.0.0.21")});
  receive(responseTo(to("10.0.0.21")[0], 503, "ta", "Retry-After: 30\r\n"));
  EXPECT_EQ(upstreamCodes().back(), 500);
}

TEST_F(ProxyCoreTest, UnresolvableTargetCountsAs503And500Upstream) {
  forkInvite({target("sip:b@unresolvable.example")});
  EXPECT_EQ(upstreamCodes().back(), 500);
}

TEST_F(ProxyCoreTest, ChallengesOfAllBranchesAreAggregated) {
  forkInvite({target("sip:b@10.0.0.21"), target("sip:b@10.0.0.22"), target("sip:b@10.0.0.23")});
  receive(responseTo(to("10.0.0.21")[0], 407, "ta",
                     "Proxy-Authenticate: Digest realm=\"a.example\", nonce=\"n1\"\r\n"));
  receive(responseTo(to("10.0.0.22")[0], 404, "tb"));
  receive(responseTo(to("10.0.0.23")[0], 401, "tc",
                     "WWW-Authenticate: Digest realm=\"c.example\", nonce=\"n3\"\r\n"));
  auto final = parsed(to("192.0.2.10", 5062).back());
  EXPECT_EQ(final.statusCode(), 407);
  EXPECT_EQ(final.count(sip::HeaderId::kProxyAuthenticate), 1u);
  EXPECT_EQ(final.count(sip::HeaderId::kWwwAuthenticate), 1u);
  EXPECT_NE(final.find(sip::HeaderId::kWwwAuthenticate)->value.find("c.example"),
            std::string_view::npos);
}

TEST_F(ProxyCoreTest, UnmatchedCancelIs481) {
  RequestSpec c;
  c.method = "CANCEL";
  receive(request(c));
  EXPECT_EQ(upstreamCodes(), (std::vector<int>{481}));
  EXPECT_EQ(router.requests, 0);
}

TEST_F(ProxyCoreTest, NonInviteTimeoutSendsNo408) {
  RequestSpec s;
  s.method = "MESSAGE";
  receive(request(s));
  proxy->forward(router.last, {target("sip:b@10.0.0.21")});
  advance(33s);
  EXPECT_TRUE(upstreamCodes().empty());
  EXPECT_EQ(proxy->contextCount(), 0u);
  EXPECT_EQ(proxy->layer().serverCount(), 0u);
}

}  // namespace
}  // namespace evosip::transaction

namespace evosip::transaction {
namespace {

TEST_F(ProxyCoreTest, RequestThatComesBackUnchangedIsALoopButASpiralIsNot) {
  RequestSpec s;
  s.method = "MESSAGE";
  s.uri = "sip:bob@10.0.0.21";
  receive(request(s));
  proxy->forward(router.last, {Target{}});
  const auto out = to("10.0.0.21");
  ASSERT_EQ(out.size(), 1u);
  // The element at 10.0.0.21 sends it straight back: our Via with the same loop hash.
  sent.clear();
  receive(out[0]);
  EXPECT_EQ(router.requests, 1);
  auto answer = parsed(sent.at(0).bytes);
  EXPECT_EQ(answer.statusCode(), 482);
  EXPECT_EQ(proxy->stats().loops, 1u);
  // Back with another Request-URI (a spiral, RFC 3261 16.3 item 4) through an element that
  // added its own Via: routed again.
  std::string spiral = out[0];
  spiral.replace(0, spiral.find("\r\n") + 2,
                 "MESSAGE sip:carol@10.0.0.22 SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP 10.0.0.21;branch=z9hG4bK-spiral\r\n");
  receive(spiral);
  EXPECT_EQ(router.requests, 2);
}

TEST_F(ProxyCoreTest, MaxForwardsIsCappedAndABranchToOurselvesIsALoop) {
  ProxySettings capped;
  capped.maxForwards = 20;
  make(capped);
  receive(test::SipMessageBuilder::request("MESSAGE", RequestSpec{}.uri)
              .via(RequestSpec{}.via)
              .maxForwards(255)
              .str());
  proxy->forward(router.last, {target("sip:bob@10.0.0.21"), target("sip:bob@10.0.0.1:5060")});
  auto out = to("10.0.0.21");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(parsed(out[0]).maxForwards(), 20u);
  EXPECT_TRUE(to("10.0.0.1").empty()) << "never a request to ourselves";
  EXPECT_EQ(proxy->stats().selfBranches, 1u);
  receive(responseTo(out[0], 200, "t1"));
  EXPECT_EQ(upstreamCodes(), (std::vector<int>{200}));
}

TEST_F(ProxyCoreTest, HeadersWithTheDropPrefixNeverLeave) {
  RequestSpec s;
  s.method = "MESSAGE";
  s.extra = "X-Evosip-Action: Voicemail\r\nx-evosip-mailbox: victim\r\nX-Other: kept\r\n";
  receive(request(s));
  ForwardOptions o;
  o.dropHeaderPrefix = "X-Evosip-";
  o.editBranch = [](size_t, const Target&, sip::MessageEditor& e) {
    e.appendHeader("X-Evosip-Action", "Playback");
  };
  proxy->forward(router.last, {target("sip:bob@10.0.0.21")}, o);
  auto out = to("10.0.0.21");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].find("Voicemail"), std::string::npos) << out[0];
  EXPECT_EQ(out[0].find("victim"), std::string::npos) << out[0];
  EXPECT_NE(out[0].find("X-Evosip-Action: Playback"), std::string::npos) << out[0];
  EXPECT_NE(out[0].find("X-Other: kept"), std::string::npos) << out[0];
}

}  // namespace
}  // namespace evosip::transaction
