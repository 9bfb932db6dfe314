// Each step of the edge's request chain, alone: what a hostile client can no longer make the
// edge do, and what friendly traffic still gets.
#include <string>
#include <vector>

#include "edge_proxy_fixture.hpp"

namespace evosip::edge {
namespace {

using namespace edgetest;

const Endpoint kClient = ep("192.0.2.10", 5062);
const Endpoint kRouter = ep("127.0.0.1", 5070);

std::string withCallId(std::string text, const std::string& callId) {
  text.replace(text.find("a84b4c76e66710@pc33.atlanta.com"), 31, callId);
  return text;
}

std::string bye(const std::string& route, const std::string& toTag = "b77") {
  return "BYE sip:bob@198.51.100.7:5060 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bKbye1;rport\r\n" +
         route + "Max-Forwards: 70\r\nTo: <sip:bob@evosip.local>;tag=" + toTag +
         "\r\n"
         "From: <sip:alice@evosip.local>;tag=1928301774\r\n"
         "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\nCSeq: 314160 BYE\r\n"
         "Content-Length: 0\r\n\r\n";
}

class RequestStepsTest : public EdgeProxyTest {
 protected:
  size_t drops(DropReason r) const {
    return proxy->counters(0).drops[static_cast<size_t>(r)].load() +
           proxy->counters(1).drops[static_cast<size_t>(r)].load();
  }
  // The URI of the Record-Route entry the edge gave a client's INVITE (its route set).
  std::string ourRecordRoute() {
    receive(withCallId(invite(), "rr-source"));
    auto m = last();
    std::string uri(sip::parseNameAddr(m.find(sip::HeaderId::kRecordRoute)->value)->uriText);
    sent.clear();
    return uri;
  }
  // The router's answer to the last request it got, with `code` and extra header lines.
  std::string routerAnswer(int code, const std::string& extra = "") {
    auto req = last();
    std::string text = "SIP/2.0 " + std::to_string(code) + " X\r\n" + viaLines(req);
    for (auto id :
         {sip::HeaderId::kFrom, sip::HeaderId::kTo, sip::HeaderId::kCallId, sip::HeaderId::kCSeq}) {
      const auto* h = req.find(id);
      text.append(h->name).append(": ").append(h->value).append("\r\n");
    }
    return text + extra + "Content-Length: 0\r\n\r\n";
  }
};

TEST_F(RequestStepsTest, HeaderHygieneRefusesControlCharactersWith400) {
  for (const std::string bad :
       {std::string("Subject: a\0b\r\n", 14), std::string("Subject: a\rb\r\n"),
        std::string("X-Note: \x1b[2J\r\n")}) {
    sent.clear();
    receive(invite(bad));
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].to.remote, kClient);  // answered, nothing forwarded
    EXPECT_EQ(last().statusCode(), 400);
  }
  EXPECT_EQ(drops(DropReason::kControlChar), 3u);
  sent.clear();
  receive(invite("Subject: folded\r\n line\twith a tab\r\n"));  // legal text goes on
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, kRouter);
}

TEST_F(RequestStepsTest, MaxForwardsIsCappedAndAddedWhenMissing) {
  auto forwardedMf = [&](const std::string& text) {
    sent.clear();
    receive(text);
    EXPECT_EQ(sent.size(), 1u);
    return last().maxForwards();
  };
  std::string base = invite();
  auto mf = [&](const std::string& value) {
    std::string s = base;
    s.replace(s.find("Max-Forwards: 70"), 16, "Max-Forwards: " + value);
    return s;
  };
  EXPECT_EQ(forwardedMf(mf("255")), 20u);
  EXPECT_EQ(forwardedMf(mf("21")), 20u);
  EXPECT_EQ(forwardedMf(mf("5")), 4u);
  EXPECT_EQ(forwardedMf(mf("1")), 0u);
  std::string none = base;
  none.erase(none.find("Max-Forwards: 70\r\n"), 18);
  EXPECT_EQ(forwardedMf(none), 20u);
  make({"sip:127.0.0.1:5070"}, 0, {}, {}, [](EdgeSettings& s) { s.maxForwards = 7; });
  EXPECT_EQ(forwardedMf(mf("255")), 7u);
}

// A preloaded Route must not divert an initial request: it goes to a router, without it.
TEST_F(RequestStepsTest, InitialRequestLosesTheClientsRoutes) {
  receive(
      invite("Route: <sip:127.0.0.1:5060;lr>, <sip:203.0.113.66:5060;lr>\r\n"
             "Route: <sip:203.0.113.67;lr>\r\n"));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, kRouter);
  EXPECT_EQ(last().find(sip::HeaderId::kRoute), nullptr) << sent[0].bytes;
  // Even one naming a router of the set: the rendezvous choice decides, not the client.
  make({"sip:127.0.0.1:5070", "sip:127.0.0.1:5071", "sip:127.0.0.1:5072"});
  std::vector<Endpoint> chosen;
  for (int i = 0; i < 12; ++i) {
    sent.clear();
    receive(withCallId(invite("Route: <sip:127.0.0.1:5072;lr>\r\n"), "pre-" + std::to_string(i)));
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(last().find(sip::HeaderId::kRoute), nullptr);
    chosen.push_back(sent[0].to.remote);
  }
  EXPECT_NE(std::count(chosen.begin(), chosen.end(), ep("127.0.0.1", 5072)), 12);
}

TEST_F(RequestStepsTest, RegisterLosesTheClientsPath) {
  receive(
      "REGISTER sip:evosip.local SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bKreg\r\n"
      "Path: <sip:203.0.113.66:5060;lr>\r\nPath: <sip:attacker@203.0.113.67;lr>\r\n"
      "To: <sip:alice@evosip.local>\r\nFrom: <sip:alice@evosip.local>;tag=4\r\n"
      "Call-ID: reg-path\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@10.1.1.1:5062>\r\n"
      "Content-Length: 0\r\n\r\n");
  ASSERT_EQ(sent.size(), 1u);
  auto m = last();
  ASSERT_EQ(m.count(sip::HeaderId::kPath), 1u) << sent[0].bytes;
  auto path = sip::parseNameAddr(m.find(sip::HeaderId::kPath)->value);
  EXPECT_EQ(path->uri.hostText, "127.0.0.1");  // ours
  EXPECT_EQ(sent[0].bytes.find("203.0.113"), std::string::npos);
}

TEST_F(RequestStepsTest, InDialogRequestWithoutOurRecordRouteGets481) {
  const std::string rr = ourRecordRoute();
  struct Case {
    std::string route;
    DropReason why;
  };
  std::string forged = rr;
  forged[forged.find('@') - 3] ^= 1;  // one character of the token's signature
  const std::vector<Case> cases = {
      {"", DropReason::kNotOurDialog},
      {"Route: <sip:203.0.113.66:5060;lr>\r\n", DropReason::kNotOurDialog},
      {"Route: <sip:127.0.0.1:5060;lr>\r\n", DropReason::kNotOurDialog},  // ours, no token
      {"Route: <sip:203.0.113.66;lr>, <" + rr + ">\r\n", DropReason::kNotOurDialog},
      {"Route: <" + forged + ">\r\n", DropReason::kBadFlowToken},
  };
  for (const auto& c : cases) {
    sent.clear();
    receive(bye(c.route));
    ASSERT_EQ(sent.size(), 1u) << c.route;
    EXPECT_EQ(sent[0].to.remote, kClient) << "nothing forwarded: " << c.route;
    EXPECT_EQ(last().statusCode(), 481) << c.route;
  }
  EXPECT_EQ(drops(DropReason::kNotOurDialog), 4u);
  EXPECT_EQ(drops(DropReason::kBadFlowToken), 1u);
  // On our own route set it goes to a router.
  sent.clear();
  receive(bye("Route: <" + rr + ">\r\n"));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, kRouter);
  EXPECT_TRUE(last().isRequest());
}

// The ACK of a non-2xx final has a To tag and no route set: it reaches the router that has its
// INVITE, with whatever Route the client preloaded removed.
TEST_F(RequestStepsTest, AckWithoutOurRouteGoesToTheRouterWithoutClientRoutes) {
  std::string ack = bye("Route: <sip:203.0.113.66:5060;lr>\r\n");
  ack.replace(0, 3, "ACK");
  ack.replace(ack.find("CSeq: 314160 BYE"), 16, "CSeq: 314160 ACK");
  receive(ack);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, kRouter);
  EXPECT_EQ(last().find(sip::HeaderId::kRoute), nullptr);
}

TEST_F(RequestStepsTest, NeverForwardsToItself) {
  make({"sip:127.0.0.1:5070"}, 0, {{40001, 0}});
  // A router's request whose next hop is one of our own sockets would come straight back.
  for (const std::string& route :
       {std::string("<sip:127.0.0.1:40001;lr>"), std::string("<sip:foo@127.0.0.1:5060;lr>")}) {
    sent.clear();
    receive(
        "INVITE sip:bob@127.0.0.1:40001 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKself\r\nRoute: " +
            route +
            "\r\nMax-Forwards: 20\r\nTo: <sip:bob@evosip.local>\r\n"
            "From: <sip:alice@evosip.local>;tag=9\r\nCall-ID: self\r\nCSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n",
        kRouter);
    ASSERT_EQ(sent.size(), 1u) << route;
    EXPECT_EQ(sent[0].to.remote, kRouter) << route;
    EXPECT_TRUE(last().isResponse()) << route;
    EXPECT_GE(last().statusCode(), 400) << route;
  }
}

TEST_F(RequestStepsTest, RateLimitExemptsTrustedNetworks) {
  make({"sip:127.0.0.1:5070"}, 5, {}, {}, [](EdgeSettings& s) {
    s.rateLimitExempt = *transport::AddressAcl::parse({"192.0.2.0/24"});
  });
  for (int i = 0; i < 20; ++i) {
    receive(invite());
  }
  EXPECT_EQ(sent.size(), 20u);
  sent.clear();
  for (int i = 0; i < 20; ++i) {
    receive(invite(), ep("198.51.100.1", 5060));
  }
  EXPECT_EQ(sent.size(), 5u);
  // Over TCP the excess is told to slow down.
  sent.clear();
  receive(invite("", "SIP/2.0/TCP 10.1.1.1:5062;branch=z9hG4bKt"), ep("198.51.100.1", 40000),
          Protocol::kTcp, {0, 3});
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(last().statusCode(), 503);
}

TEST_F(RequestStepsTest, RepeatedAuthenticationFailuresBanTheSource) {
  make({"sip:127.0.0.1:5070"}, 0, {}, {}, [](EdgeSettings& s) {
    s.authBan.failures = 3;
    s.authBan.banFor = std::chrono::seconds(60);
  });
  const std::string creds =
      "Authorization: Digest username=\"alice\", realm=\"evosip.local\", "
      "nonce=\"n\", uri=\"sip:bob@evosip.local\", response=\"0\"\r\n";
  auto attempt = [&](const std::string& extra, int code, const std::string& answerExtra = "") {
    sent.clear();
    receive(
        withCallId(invite(extra),
                   "auth-" + std::to_string(sent.size() + clock.now().time_since_epoch().count())));
    if (sent.size() != 1u || sent[0].to.remote != kRouter) {
      return false;  // not forwarded
    }
    receive(routerAnswer(code, answerExtra), kRouter);
    return true;
  };
  // First challenges (no credentials) and stale nonces are the normal course of digest.
  for (int i = 0; i < 10; ++i) {
    clock.advance(1ms);
    ASSERT_TRUE(attempt("", 407, "Proxy-Authenticate: Digest realm=\"r\", nonce=\"x\"\r\n"));
    clock.advance(1ms);
    ASSERT_TRUE(
        attempt(creds, 401, "WWW-Authenticate: Digest realm=\"r\", nonce=\"y\", stale=true\r\n"));
  }
  // A 403 to credentials is not a failed login (too many contacts, a refused service).
  for (int i = 0; i < 5; ++i) {
    clock.advance(1ms);
    ASSERT_TRUE(attempt(creds, 403)) << i;
  }
  EXPECT_EQ(proxy->counters(0).bans.load() + proxy->counters(1).bans.load(), 0u);
  // Refused credentials (a fresh challenge, not stale): the third bans the source.
  for (int i = 0; i < 3; ++i) {
    clock.advance(1ms);
    ASSERT_TRUE(attempt(creds, 407, "Proxy-Authenticate: Digest realm=\"r\", nonce=\"z\"\r\n"))
        << i;
  }
  EXPECT_EQ(proxy->counters(0).bans.load() + proxy->counters(1).bans.load(), 1u);
  clock.advance(1ms);
  EXPECT_FALSE(attempt("", 200));  // dropped silently over UDP
  EXPECT_TRUE(sent.empty());
  EXPECT_EQ(drops(DropReason::kBanned), 1u);
  // On every worker (the kernel may hand the next packet to either).
  sent.clear();
  transport::Packet p{invite(), {Protocol::kUdp, kClient, ep("127.0.0.1", 5060), {}}};
  proxy->onPacket(1, p);
  EXPECT_TRUE(sent.empty());
  // Over TCP it is told.
  receive(invite("", "SIP/2.0/TCP 10.1.1.1:5062;branch=z9hG4bKt"), ep("192.0.2.10", 40000),
          Protocol::kTcp, {0, 3});
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(last().statusCode(), 403);
  // Another source is served; the ban ends.
  sent.clear();
  receive(invite(), ep("192.0.2.11", 5062));
  EXPECT_EQ(sent.size(), 1u);
  clock.advance(61s);
  EXPECT_TRUE(attempt("", 200));
}

// With one router, a request it leaves unanswered costs its own sender a 503 and nobody else
// anything: the router answers the probe and stays in the set.
TEST_F(RequestStepsTest, AStrayRequestCannotTakeTheOnlyRouterOut) {
  receive(withCallId(invite(), "stray"));
  ASSERT_EQ(sent.size(), 1u);
  clock.advance(600ms);
  tick();
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_EQ(probes[0].to.remote, kRouter);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(last().statusCode(), 503);  // to the stray request's sender only
  // The router answers the probe (a 404 or a 483 proves it alive as well as a 200).
  auto probe = sip::Message::parse(probes[0].bytes);
  std::string answer = "SIP/2.0 483 Too Many Hops\r\n" + viaLines(*probe) +
                       "From: x\r\nTo: y\r\nCall-ID: p\r\nCSeq: 1 OPTIONS\r\n"
                       "Content-Length: 0\r\n\r\n";
  clock.advance(10ms);
  receive(answer, kRouter);
  clock.advance(600ms);
  tick();
  EXPECT_EQ(proxy->counters(0).probesFailed.load() + proxy->counters(1).probesFailed.load(), 0u);
  for (int i = 0; i < 50; ++i) {
    sent.clear();
    receive(withCallId(invite(), "next-" + std::to_string(i)));
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].to.remote, kRouter) << i;
  }
}

// A response that merely looks like a probe's (a made-up branch) proves nothing.
TEST_F(RequestStepsTest, AForgedProbeResponseDoesNotKeepADeadRouterUp) {
  receive(withCallId(invite(), "dead"));
  clock.advance(600ms);
  tick();
  ASSERT_EQ(probes.size(), 1u);
  std::string forged = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-p" +
                       std::string(16, '0') + "00000000" + std::string(16, 'f') +
                       "\r\nFrom: x\r\nTo: y\r\nCall-ID: p\r\nCSeq: 1 OPTIONS\r\n"
                       "Content-Length: 0\r\n\r\n";
  receive(forged, kRouter);
  clock.advance(600ms);
  tick();
  EXPECT_EQ(proxy->counters(0).probesFailed.load() + proxy->counters(1).probesFailed.load(), 1u);
  sent.clear();
  receive(withCallId(invite(), "after"));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(last().statusCode(), 503);  // down: refused at once
}

// A client's response goes back to the router whose request the edge brought it; one that names
// any other next hop below our Via is made up, and the edge relays it nowhere.
TEST_F(RequestStepsTest, AClientsResponseOnlyEverGoesBackToARouter) {
  receive(
      "INVITE sip:alice@10.1.1.1:5062 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKrtr9\r\n"
      "Max-Forwards: 20\r\nTo: <sip:alice@evosip.local>\r\n"
      "From: <sip:bob@evosip.local>;tag=9\r\nCall-ID: to-client\r\nCSeq: 1 INVITE\r\n"
      "Content-Length: 0\r\n\r\n",
      kRouter);
  ASSERT_EQ(sent.size(), 1u);
  auto toClient = last();
  const std::string tail =
      "From: <sip:bob@evosip.local>;tag=9\r\nTo: <sip:alice@evosip.local>;tag=a\r\n"
      "Call-ID: to-client\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
  sent.clear();
  receive("SIP/2.0 180 Ringing\r\n" + viaLines(toClient) + tail, ep("10.1.1.1", 5062));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.remote, kRouter);
  // The same Via of ours over a victim's: dropped.
  const std::string ours(toClient.find(sip::HeaderId::kVia)->value);
  sent.clear();
  receive("SIP/2.0 200 OK\r\nVia: " + ours +
              "\r\nVia: SIP/2.0/UDP 198.51.100.99:7;branch=z9hG4bKv\r\n" + tail,
          ep("10.1.1.1", 5062));
  EXPECT_TRUE(sent.empty());
  EXPECT_EQ(drops(DropReason::kForeignResponse), 1u);
}

// A local reply to a UDP source never costs much more than the request did: the minimal header
// set, else nothing.
TEST_F(RequestStepsTest, LocalRepliesToUdpSourcesDoNotAmplify) {
  const std::vector<std::string> requests = {
      "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a;rport\r\n\r\n",
      "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKo;rport\r\n"
      "From: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\n\r\n",
  };
  for (const auto& text : requests) {
    sent.clear();
    receive(text);
    ASSERT_EQ(sent.size(), 1u) << text;
    EXPECT_TRUE(last().isResponse());
    EXPECT_LE(sent[0].bytes.size(), text.size() + 64) << sent[0].bytes;
  }
}

}  // namespace
}  // namespace evosip::edge
