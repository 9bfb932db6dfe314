// The router's request path, step by step, as a peer sees it on the wire. 192.0.2.99 is a
// victim no request may reach.
#include "router_fixture.hpp"

namespace evosip::router {
namespace {

using namespace fixture;

class RouterRequestTest : public RouterFixture {};

TEST_F(RouterRequestTest, MadeUpToTagIs481AndNothingReachesTheVictim) {
  int n = 0;
  for (const char* method : {"INVITE", "MESSAGE", "BYE", "INFO"}) {
    for (const char* route : {"", "Route: <sip:192.0.2.99:5060;lr>\r\n"}) {
      Req r;
      r.method = method;
      r.uri = "sip:victim@192.0.2.99:5060";
      r.toTag = "made-up";
      r.callId = "fraud-" + std::to_string(++n);
      r.branch = "z9hG4bK-fraud-" + std::to_string(n);
      r.extra = route;
      receive(text(r));
      EXPECT_EQ(answers().back(), 481) << method << " " << route;
    }
  }
  EXPECT_TRUE(to("192.0.2.99").empty());
  EXPECT_EQ(rejected(Rejection::kNoDialog), 8u);
}

TEST_F(RouterRequestTest, AckWithoutToTagOrDialogIsDroppedNeverRelayed) {
  Req r;
  r.method = "ACK";
  r.uri = "sip:victim@192.0.2.99:5060";
  receive(text(r));
  r.toTag = "made-up";
  r.branch = "z9hG4bK-edge-2";
  receive(text(r));
  EXPECT_TRUE(sent_.empty()) << sent_.front().bytes;  // an ACK is never answered either
  EXPECT_EQ(rejected(Rejection::kAckDropped), 2u);
}

TEST_F(RouterRequestTest, KnownDialogGoesAlongItsRouteSetAndByeRemovesTheRecord) {
  storeDialog("call-9", "ft1", "tt1", {"<sip:tok@10.0.0.5:5060;lr>"});
  Req ack = inDialog("ACK", "call-9", "tt1");
  receive(text(ack));
  ASSERT_EQ(to("10.0.0.5").size(), 1u);
  EXPECT_TRUE(to("10.0.0.5")[0].starts_with("ACK sip:bob@10.0.0.30:5090 SIP/2.0"));

  Req bye = ack;  // from the callee's side: tags swapped, towards the caller's contact
  bye.method = "BYE";
  bye.fromTag = "tt1";
  bye.toTag = "ft1";
  bye.uri = "sip:alice@198.51.100.7:5062";
  bye.branch = "z9hG4bK-edge-bye";
  receive(text(bye));
  const auto out = to("10.0.0.5");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[1].starts_with("BYE sip:alice@198.51.100.7:5062 SIP/2.0")) << out[1];
  EXPECT_FALSE(db_->getDialogs("call-9")->size() > 0) << "the BYE removes the record";
}

TEST_F(RouterRequestTest, KnownDialogTowardsAForeignHostIs403) {
  storeDialog("call-7", "ft1", "tt1", {"<sip:tok@10.0.0.5:5060;lr>"});
  Req r;
  r.method = "MESSAGE";
  r.callId = "call-7";
  r.toTag = "tt1";
  r.uri = "sip:victim@192.0.2.99:5060";
  receive(text(r));
  EXPECT_EQ(answers(), (std::vector<int>{403}));
  EXPECT_TRUE(to("192.0.2.99").empty());
  EXPECT_EQ(rejected(Rejection::kForeignHop), 1u);
}

TEST_F(RouterRequestTest, InDialogRequestGoesOnlyToTheOtherPartysContact) {
  // No route set: the next hop is the Request-URI. The caller wrote 198.51.100.7:5062 in its
  // Contact (say, a carrier gateway) and asks the router to send its own requests there.
  storeDialog("call-dir", "ft1", "tt1", {});
  struct Case {
    const char* what;
    const char* fromTag;
    const char* toTag;
    const char* uri;
    const char* host;
    bool relayed;
  };
  const Case cases[] = {
      {"caller to its own contact", "ft1", "tt1", "sip:gw@198.51.100.7:5062", "198.51.100.7",
       false},
      {"callee to its own contact", "tt1", "ft1", "sip:gw@10.0.0.30:5090", "10.0.0.30", false},
      {"caller to the callee", "ft1", "tt1", "sip:bob@10.0.0.30:5090", "10.0.0.30", true},
      {"callee to the caller", "tt1", "ft1", "sip:alice@198.51.100.7:5062", "198.51.100.7", true},
  };
  int n = 0;
  for (const auto& c : cases) {
    sent_.clear();
    Req r;
    r.method = "MESSAGE";
    r.callId = "call-dir";
    r.fromTag = c.fromTag;
    r.toTag = c.toTag;
    r.uri = c.uri;
    r.cseq = static_cast<uint32_t>(++n + 1);
    r.branch = "z9hG4bK-dir-" + std::to_string(n);
    receive(text(r));
    if (c.relayed) {
      ASSERT_EQ(to(c.host).size(), 1u) << c.what;
      EXPECT_TRUE(to(c.host)[0].starts_with(std::string("MESSAGE ") + c.uri)) << c.what;
      EXPECT_TRUE(answers().empty()) << c.what;
    } else {
      EXPECT_TRUE(to(c.host).empty()) << c.what;
      EXPECT_EQ(answers(), (std::vector<int>{403})) << c.what;
    }
  }
  EXPECT_EQ(rejected(Rejection::kForeignHop), 2u);
}

TEST_F(RouterRequestTest, OptionsToTheRouterItselfIs200EvenWithMaxForwardsZero) {
  for (int mf : {70, 0}) {
    Req r;
    r.method = "OPTIONS";
    r.uri = "sip:10.0.0.1:5070";
    r.maxForwards = mf;
    r.branch = "z9hG4bK-probe-" + std::to_string(mf);
    r.callId = "probe-" + std::to_string(mf);
    receive(text(r));
  }
  EXPECT_EQ(answers(), (std::vector<int>{200, 200}));
  EXPECT_EQ(sent_.size(), 2u);
}

TEST_F(RouterRequestTest, RequestForTheRouterItselfIsAnsweredNeverForwarded) {
  Req r;
  r.method = "BYE";
  r.uri = "sip:10.0.0.1:5070";
  r.toTag = "tt";
  r.maxForwards = 255;
  receive(text(r));
  EXPECT_EQ(answers(), (std::vector<int>{404}));
  EXPECT_EQ(sent_.size(), 1u) << "one answer, no message to ourselves";
  EXPECT_EQ(rejected(Rejection::kForSelf), 1u);
}

TEST_F(RouterRequestTest, InitialRequestWithAPreloadedRouteIs403) {
  Req r;
  r.uri = "sip:100@evosip.local";
  r.extra = "Route: <sip:192.0.2.99;lr>\r\n";
  receive(text(r));
  EXPECT_EQ(answers(), (std::vector<int>{403}));  // refused in the same pass: no 100 first
  EXPECT_TRUE(to("192.0.2.99").empty());
}

TEST_F(RouterRequestTest, RefusalsBeforeAuthenticationAreSentOnceNeverRetransmitted) {
  // Every INVITE here comes over UDP from a source nobody has verified: a refusal that Timer G
  // retransmitted would send ~10 answers for one spoofed request.
  storeDialog("call-known", "ft1", "tt1", {});
  struct Case {
    const char* what;
    Req req;
    int code;
    bool draining = false;
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, int code, auto&& edit, bool draining = false) {
    Req r;
    r.callId = std::string("once-") + what;
    r.branch = std::string("z9hG4bK-once-") + what;
    edit(r);
    cases.push_back({what, r, code, draining});
  };
  add("no-dialog", 481, [](Req& r) { r.toTag = "made-up"; });
  add("foreign-hop", 403, [](Req& r) {
    r.callId = "call-known";
    r.toTag = "tt1";
    r.uri = "sip:victim@192.0.2.99:5060";
  });
  add("for-self", 404, [](Req& r) {
    r.uri = "sip:10.0.0.1:5070";
    r.toTag = "tt";
  });
  add("preloaded-route", 403, [](Req& r) {
    r.uri = "sip:100@evosip.local";
    r.extra = "Route: <sip:192.0.2.99;lr>\r\n";
  });
  add("max-forwards", 483, [](Req& r) { r.maxForwards = 0; });
  add("proxy-require", 420, [](Req& r) { r.extra = "Proxy-Require: x-made-up\r\n"; });
  add(
      "draining", 503, [](Req&) {}, true);
  for (const auto& c : cases) {
    sent_.clear();
    shared_->draining = c.draining;
    receive(text(c.req));
    pass(std::chrono::seconds(33));
    EXPECT_EQ(finals(), (std::vector<int>{c.code})) << c.what;
  }
  EXPECT_TRUE(to("192.0.2.99").empty());
}

TEST_F(RouterRequestTest, AppGetsOnlyTheRoutersXEvosipHeadersAndTheDialogBeforeThe2xx) {
  Req r;
  r.uri = "sip:100@evosip.local";
  r.extra = "X-Evosip-Action: Voicemail\r\nX-Evosip-Mailbox: victim\r\n";
  receive(text(r));
  auto app = to("10.0.0.8");
  ASSERT_EQ(app.size(), 1u);
  auto invite = sip::Message::parse(app[0]);
  ASSERT_TRUE(invite.has_value());
  std::vector<std::string> privateHeaders;
  for (const auto& h : invite->headers()) {
    if (h.name.starts_with("X-Evosip")) {
      privateHeaders.push_back(std::string(h.name) + ": " + std::string(h.value));
    }
  }
  EXPECT_EQ(privateHeaders, (std::vector<std::string>{"X-Evosip-Action: Playback"}));
  EXPECT_EQ(invite->maxForwards(), 20u) << "capped";

  // The app answers 200: it goes upstream only once the dialog record is written, so the
  // caller's ACK (to any worker or router) finds it.
  std::string ok = "SIP/2.0 200 OK\r\n";
  for (const auto& h : invite->headers()) {
    if (h.id == sip::HeaderId::kVia || h.id == sip::HeaderId::kFrom ||
        h.id == sip::HeaderId::kCallId || h.id == sip::HeaderId::kCSeq) {
      ok += std::string(h.name) + ": " + std::string(h.value) + "\r\n";
    }
  }
  ok +=
      "To: <sip:bob@evosip.local>;tag=app1\r\nContact: <sip:100@10.0.0.8:5080>\r\n"
      "Content-Length: 0\r\n\r\n";
  auto m = sip::Message::parse(ok);
  ASSERT_TRUE(m.has_value());
  router_->onMessage(
      *m, transport::Source{Protocol::kUdp, ep("10.0.0.8", 5080), ep("10.0.0.1", 5070), {}});
  EXPECT_EQ(answers(), (std::vector<int>{100})) << "held until the record is written";
  settle();
  EXPECT_EQ(answers(), (std::vector<int>{100, 200}));
  ASSERT_EQ(db_->getDialogs("call-1@test")->size(), 1u);

  Req ack = r;
  ack.method = "ACK";
  ack.toTag = "app1";
  ack.uri = "sip:100@10.0.0.8:5080";
  ack.extra = "X-Evosip-Action: Voicemail\r\n";
  ack.branch = "z9hG4bK-edge-ack";
  receive(text(ack));
  app = to("10.0.0.8");
  ASSERT_EQ(app.size(), 2u);
  EXPECT_TRUE(app[1].starts_with("ACK ")) << app[1];
  EXPECT_EQ(app[1].find("X-Evosip"), std::string::npos) << app[1];
}

TEST_F(RouterRequestTest, PrackOfAnEarlyDialogGoesToTheCalleeOnly) {
  store::Binding b;
  b.aor = "bob@evosip.local";
  b.contact = "sip:bob@10.0.0.30:5090";
  b.expires = store::systemNow() + std::chrono::hours(1);
  ASSERT_TRUE(db_->putBinding(b).has_value());
  Req r;
  r.callId = "early-1";
  receive(text(r));
  auto out = to("10.0.0.30");
  ASSERT_EQ(out.size(), 1u);
  auto invite = sip::Message::parse(out[0]);
  std::string ringing = "SIP/2.0 183 Session Progress\r\n";
  for (const auto& h : invite->headers()) {
    if (h.id == sip::HeaderId::kVia || h.id == sip::HeaderId::kFrom ||
        h.id == sip::HeaderId::kCallId || h.id == sip::HeaderId::kCSeq) {
      ringing += std::string(h.name) + ": " + std::string(h.value) + "\r\n";
    }
  }
  ringing +=
      "To: <sip:bob@evosip.local>;tag=early-tag\r\nContact: <sip:bob@10.0.0.30:5090>\r\n"
      "Require: 100rel\r\nRSeq: 1\r\nContent-Length: 0\r\n\r\n";
  receive(ringing, ep("10.0.0.30", 5090));
  Req prack = r;
  prack.method = "PRACK";
  prack.toTag = "early-tag";
  prack.uri = "sip:bob@10.0.0.30:5090";
  prack.branch = "z9hG4bK-prack";
  prack.cseq = 2;
  receive(text(prack));
  out = to("10.0.0.30");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[1].starts_with("PRACK sip:bob@10.0.0.30:5090")) << out[1];
  Req elsewhere = prack;  // the same early dialog, towards somebody else
  elsewhere.uri = "sip:victim@192.0.2.99";
  elsewhere.branch = "z9hG4bK-prack-2";
  elsewhere.cseq = 3;
  receive(text(elsewhere));
  EXPECT_TRUE(to("192.0.2.99").empty());
  EXPECT_EQ(answers().back(), 481);
}

TEST_F(RouterRequestTest, OfferAsksTheRelayForStrictSourceAndTheNatedCallersRealAddress) {
  boost::asio::ip::udp::socket relay(io_, {boost::asio::ip::make_address("127.0.0.1"), 0});
  make(MediaMode::kNat);
  shared_->setMedia(*role::TargetSet::buildAddresses(
      {"udp:127.0.0.1:" + std::to_string(relay.local_endpoint().port())}, 2223));
  Req r;
  r.uri = "sip:100@evosip.local";
  // Behind a NAT: the SDP names a private address, the edge saw 198.51.100.7.
  r.sdp =
      "v=0\r\no=- 1 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 0\r\n";
  receive(text(r));
  std::array<char, 4096> buf{};
  boost::asio::ip::udp::endpoint from;
  size_t n = 0;
  for (int i = 0; i < 200 && n == 0; ++i) {
    settle();
    if (relay.available() > 0) {
      n = relay.receive_from(boost::asio::buffer(buf), from);
    }
  }
  const std::string offer(buf.data(), n);
  ASSERT_NE(offer.find("5:offer"), std::string::npos) << offer;
  EXPECT_NE(offer.find("13:strict source"), std::string::npos) << offer;
  EXPECT_NE(offer.find("18:SIP source address"), std::string::npos) << offer;
  EXPECT_NE(offer.find("13:received-froml3:IP412:198.51.100.7e"), std::string::npos) << offer;
}

TEST_F(RouterRequestTest, StrayByeGetsAnAnswer) {
  Req r;
  r.method = "BYE";
  r.toTag = "gone";
  r.uri = "sip:bob@10.0.0.30:5090";
  receive(text(r));
  EXPECT_EQ(answers(), (std::vector<int>{481}));
}

TEST_F(RouterRequestTest, BindingToTheRouterItselfIsALoopNotARequestToOurselves) {
  store::Binding b;
  b.aor = "bob@evosip.local";
  b.contact = "sip:bob@10.0.0.1:5070";
  b.expires = store::systemNow() + std::chrono::hours(1);
  ASSERT_TRUE(db_->putBinding(b).has_value());
  Req r;
  r.method = "MESSAGE";
  receive(text(r));
  EXPECT_EQ(answers(), (std::vector<int>{482}));
  EXPECT_TRUE(to("10.0.0.1").empty());
}

}  // namespace
}  // namespace evosip::router
