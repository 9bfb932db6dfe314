#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/transaction/transaction_layer.hpp>

#include "txn_test_support.hpp"

namespace evosip::transaction {
namespace {

using namespace std::chrono_literals;
using namespace txntest;

struct Event {
  std::string what;  // request, cancel, ack, response, stray, client_error, server_error
  TransactionId id;
  int code = 0;
  std::string method;
  TransactionError error = TransactionError::kTimeout;
};

class RecordingUser : public TransactionUser {
 public:
  void onRequest(TransactionId id, const sip::Message& m, const Source&) override {
    events.push_back({"request", id, 0, std::string(m.methodText())});
    lastServer = id;
  }
  void onCancel(TransactionId id, const sip::Message&) override {
    events.push_back({"cancel", id});
  }
  void onAck(const sip::Message&, const Source&) override { events.push_back({"ack", {}}); }
  void onResponse(TransactionId id, const sip::Message& m) override {
    events.push_back({"response", id, m.statusCode()});
  }
  void onStrayResponse(const sip::Message& m, const Source&) override {
    events.push_back({"stray", {}, m.statusCode()});
  }
  void onClientError(TransactionId id, TransactionError e) override {
    events.push_back({"client_error", id, 0, "", e});
  }
  void onServerError(TransactionId id, TransactionError e) override {
    events.push_back({"server_error", id, 0, "", e});
  }
  std::vector<Event> events;
  TransactionId lastServer;
};

class TransactionLayerTest : public ::testing::Test {
 protected:
  TransactionLayerTest() { make({}); }

  void make(LayerSettings s) {
    layer = std::make_unique<TransactionLayer>(
        s, clock,
        [this](const Destination& to, std::string_view bytes) {
          sent.push_back({to, std::string(bytes)});
          return sendOk;
        },
        user);
  }

  void receive(const std::string& text, Protocol proto = Protocol::kUdp) {
    auto m = sip::Message::parse(text);
    ASSERT_TRUE(m.has_value()) << text;
    layer->onMessage(*m, Source{proto, ep("192.0.2.10", 5062), ep("10.0.0.1", 5060), {}});
  }

  // Moves the clock by `d` in steps of 100 ms, firing timers on the way.
  void advance(std::chrono::milliseconds d) {
    for (auto left = d; left > 0ms; left -= 100ms) {
      clock.advance(std::min(left, std::chrono::milliseconds(100ms)));
      layer->onTick(clock.now());
    }
  }

  // A request we send to a downstream element.
  std::string outgoing(const std::string& method = "INVITE", const std::string& branch = {}) {
    RequestSpec s;
    s.method = method;
    s.via = "SIP/2.0/UDP 10.0.0.1:5060;branch=" + (branch.empty() ? layer->newBranch() : branch);
    s.extra = "Route: <sip:10.0.0.9;lr>\r\n";
    return request(s);
  }

  TransactionId start(const std::string& req, Protocol proto = Protocol::kUdp) {
    auto id = layer->sendRequest(req, Destination{proto, ep("10.0.0.9", 5060), {}});
    EXPECT_TRUE(id.has_value());
    return id ? *id : TransactionId{};
  }

  size_t count(const std::string& what) const {
    size_t n = 0;
    for (const auto& e : user.events) {
      n += e.what == what ? 1 : 0;
    }
    return n;
  }

  evosip::test::ManualClock clock;
  RecordingUser user;
  std::vector<Sent> sent;
  bool sendOk = true;
  std::unique_ptr<TransactionLayer> layer;
};

// ---- client INVITE (17.1.1) ----

TEST_F(TransactionLayerTest, ClientInviteTimerARetransmitsWithDoublingUntilTimerB) {
  const std::string req = outgoing();
  TransactionId id = start(req);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(layer->client(id)->state(), State::kCalling);
  EXPECT_EQ(layer->nextDeadline(), clock.now() + 500ms);
  // A fires at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; B at 32 s.
  std::vector<std::chrono::milliseconds> expected = {500ms,  1500ms,  3500ms,
                                                     7500ms, 15500ms, 31500ms};
  const auto t0 = clock.now();
  std::vector<std::chrono::milliseconds> at;
  for (int i = 0; i < 330; ++i) {
    size_t before = sent.size();
    advance(100ms);
    if (sent.size() > before) {
      at.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - t0));
      EXPECT_EQ(sent.back().bytes, req);
    }
  }
  EXPECT_EQ(at, expected);
  ASSERT_EQ(count("client_error"), 1u);
  EXPECT_EQ(user.events.back().error, TransactionError::kTimeout);
  EXPECT_EQ(layer->client(id), nullptr);
  EXPECT_EQ(layer->clientCount(), 0u);
}

TEST_F(TransactionLayerTest, ClientInviteOnReliableTransportDoesNotRetransmit) {
  start(outgoing(), Protocol::kTcp);
  advance(31900ms);
  EXPECT_EQ(sent.size(), 1u);
  EXPECT_EQ(count("client_error"), 0u);
  advance(100ms);
  EXPECT_EQ(count("client_error"), 1u);
}

TEST_F(TransactionLayerTest, ClientInviteProvisionalStopsTimersAAndB) {
  const std::string req = outgoing();
  TransactionId id = start(req);
  receive(responseTo(req, 180, "callee1"));
  EXPECT_EQ(layer->client(id)->state(), State::kProceeding);
  advance(200s);
  EXPECT_EQ(sent.size(), 1u);
  EXPECT_EQ(count("client_error"), 0u);
  ASSERT_EQ(count("response"), 1u);
  EXPECT_EQ(user.events.back().code, 180);
}

TEST_F(TransactionLayerTest, ClientInviteAcknowledgesNonSuccessFinalAndAbsorbsItsRetransmissions) {
  const std::string req = outgoing();
  TransactionId id = start(req);
  const std::string busy = responseTo(req, 486, "callee1");
  receive(busy);
  ASSERT_EQ(sent.size(), 2u);
  auto ack = parsed(sent[1].bytes);
  EXPECT_EQ(ack.methodText(), "ACK");
  EXPECT_EQ(ack.requestUri(), "sip:bob@evosip.local");
  EXPECT_EQ(ack.topVia()->text, parsed(req).topVia()->text);  // same branch: hop by hop
  EXPECT_EQ(ack.count(sip::HeaderId::kVia), 1u);
  EXPECT_EQ(wireTag(ack), "callee1");
  EXPECT_EQ(ack.cseq()->number, 314159u);
  EXPECT_EQ(ack.cseq()->methodText, "ACK");
  EXPECT_EQ(header(sent[1].bytes, sip::HeaderId::kRoute), "<sip:10.0.0.9;lr>");
  EXPECT_EQ(sent[1].to.remote, ep("10.0.0.9", 5060));
  EXPECT_EQ(layer->client(id)->state(), State::kCompleted);
  // The retransmitted 486 is acknowledged again and not passed up.
  receive(busy);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].bytes, sent[1].bytes);
  EXPECT_EQ(count("response"), 1u);
  // Timer D (32 s) ends it.
  advance(31900ms);
  EXPECT_NE(layer->client(id), nullptr);
  advance(100ms);
  EXPECT_EQ(layer->client(id), nullptr);
}

TEST_F(TransactionLayerTest, ClientInviteTimerDIsZeroOnReliableTransports) {
  const std::string req = outgoing();
  TransactionId id = start(req, Protocol::kTcp);
  receive(responseTo(req, 404, "x"), Protocol::kTcp);
  EXPECT_EQ(layer->client(id), nullptr);
  EXPECT_EQ(parsed(sent.back().bytes).methodText(), "ACK");
}

TEST_F(TransactionLayerTest, ClientInviteSuccessGoesUpAndItsRetransmissionIsStray) {
  const std::string req = outgoing();
  TransactionId id = start(req);
  const std::string ok = responseTo(req, 200, "callee1");
  receive(ok);
  EXPECT_EQ(layer->client(id), nullptr);
  EXPECT_EQ(sent.size(), 1u);  // no ACK for a 2xx: end to end
  receive(ok);
  ASSERT_EQ(user.events.size(), 2u);
  EXPECT_EQ(user.events[0].what, "response");
  EXPECT_EQ(user.events[1].what, "stray");
  EXPECT_EQ(user.events[1].code, 200);
}

TEST_F(TransactionLayerTest, CancelWaitsForAProvisionalThenUsesTheInviteBranch) {
  const std::string req = outgoing();
  TransactionId id = start(req);
  layer->cancel(id);
  EXPECT_EQ(sent.size(), 1u);  // RFC 3261 9.1: not before a provisional
  receive(responseTo(req, 180, "callee1"));
  ASSERT_EQ(sent.size(), 2u);
  auto cancel = parsed(sent[1].bytes);
  EXPECT_EQ(cancel.methodText(), "CANCEL");
  EXPECT_EQ(cancel.requestUri(), "sip:bob@evosip.local");
  EXPECT_EQ(cancel.topVia()->branch(), parsed(req).topVia()->branch());
  EXPECT_EQ(cancel.cseq()->methodText, "CANCEL");
  EXPECT_EQ(cancel.cseq()->number, 314159u);
  EXPECT_EQ(wireTag(cancel), "");  // the To of the request
  // The 200 to the CANCEL matches the CANCEL transaction, not the INVITE.
  receive(responseTo(sent[1].bytes, 200, "callee1"));
  EXPECT_EQ(layer->client(id)->state(), State::kProceeding);
  receive(responseTo(req, 487, "callee1"));
  EXPECT_EQ(parsed(sent.back().bytes).methodText(), "ACK");
}

TEST_F(TransactionLayerTest, CancelledInviteWithoutFinalEndsAfter64T1) {
  const std::string req = outgoing();
  TransactionId id = start(req);
  receive(responseTo(req, 183, "callee1"));
  layer->cancel(id);
  advance(31900ms);
  EXPECT_NE(layer->client(id), nullptr);
  advance(100ms);
  EXPECT_EQ(layer->client(id), nullptr);
  EXPECT_EQ(user.events.back().what, "client_error");
}

TEST_F(TransactionLayerTest, CancelAfterFinalSendsNothing) {
  const std::string req = outgoing();
  TransactionId id = start(req);
  receive(responseTo(req, 480, "x"));
  const size_t n = sent.size();
  layer->cancel(id);
  EXPECT_EQ(sent.size(), n);
}

// ---- client non-INVITE (17.1.2) ----

TEST_F(TransactionLayerTest, ClientNonInviteTimerECapsAtT2AndTimerFEnds) {
  const std::string req = outgoing("OPTIONS");
  TransactionId id = start(req);
  EXPECT_EQ(layer->client(id)->state(), State::kTrying);
  const auto t0 = clock.now();
  std::vector<int64_t> at;
  for (int i = 0; i < 330; ++i) {
    size_t before = sent.size();
    advance(100ms);
    if (sent.size() > before) {
      at.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - t0).count());
    }
  }
  // 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s until F at 32 s.
  EXPECT_EQ(
      at, (std::vector<int64_t>{500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500}));
  EXPECT_EQ(count("client_error"), 1u);
}

TEST_F(TransactionLayerTest, ClientNonInviteProceedingRetransmitsEveryT2) {
  const std::string req = outgoing("REGISTER");
  start(req);
  advance(500ms);  // first retransmission at T1
  receive(responseTo(req, 100, ""));
  const size_t n = sent.size();
  advance(1000ms);  // E was armed for 1 s: fires, then every T2
  EXPECT_EQ(sent.size(), n + 1);
  advance(3900ms);
  EXPECT_EQ(sent.size(), n + 1);
  advance(100ms);
  EXPECT_EQ(sent.size(), n + 2);
}

TEST_F(TransactionLayerTest, ClientNonInviteTimerKAbsorbsRetransmittedFinals) {
  const std::string req = outgoing("BYE");
  TransactionId id = start(req);
  const std::string ok = responseTo(req, 200, "x");
  receive(ok);
  EXPECT_EQ(layer->client(id)->state(), State::kCompleted);
  receive(ok);
  EXPECT_EQ(count("response"), 1u);
  EXPECT_EQ(count("stray"), 0u);
  advance(4900ms);
  EXPECT_NE(layer->client(id), nullptr);
  advance(100ms);  // Timer K = T4
  EXPECT_EQ(layer->client(id), nullptr);
  EXPECT_EQ(sent.size(), 1u);  // no retransmission after the final
}

TEST_F(TransactionLayerTest, ClientNonInviteTimerKIsZeroOnReliableTransports) {
  const std::string req = outgoing("BYE");
  TransactionId id = start(req, Protocol::kTls);
  receive(responseTo(req, 200, "x"), Protocol::kTls);
  EXPECT_EQ(layer->client(id), nullptr);
}

TEST_F(TransactionLayerTest, ResponseMatchesByBranchAndCSeqMethod) {
  const std::string req = outgoing("INVITE", "z9hG4bKsame");
  start(req);
  // Same branch, other method: not this transaction.
  std::string other = responseTo(req, 200, "x");
  other.replace(other.find("314159 INVITE"), 13, "314159 UPDATE");
  receive(other);
  EXPECT_EQ(user.events.back().what, "stray");
}

TEST_F(TransactionLayerTest, TransportErrorsReachTheUser) {
  sendOk = false;
  auto r = layer->sendRequest(outgoing(), Destination{Protocol::kUdp, ep("10.0.0.9", 5060), {}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kIo);
  sendOk = true;
  TransactionId id = start(outgoing());
  sendOk = false;
  advance(500ms);  // Timer A cannot send
  EXPECT_EQ(layer->client(id), nullptr);
  ASSERT_EQ(count("client_error"), 1u);
  EXPECT_EQ(user.events.back().error, TransactionError::kTransport);
}

TEST_F(TransactionLayerTest, AFailedConnectionFailsTheUnansweredTransactionsSentToIt) {
  const Destination gw{Protocol::kTcp, ep("10.0.0.9", 5060), {}};
  const Destination otherPort{Protocol::kTcp, ep("10.0.0.9", 5070), {}};
  TransactionId invite = *layer->sendRequest(outgoing(), gw);
  TransactionId options = *layer->sendRequest(outgoing("OPTIONS"), gw);
  const std::string answeredReq = outgoing();
  TransactionId answered = *layer->sendRequest(answeredReq, gw);
  receive(responseTo(answeredReq, 180, "callee1"), Protocol::kTcp);
  TransactionId elsewhere = *layer->sendRequest(outgoing(), otherPort);
  TransactionId overUdp = start(outgoing());  // 10.0.0.9:5060 over UDP
  TransactionId overConnection =
      *layer->sendRequest(outgoing(), Destination{Protocol::kTcp, gw.remote, {0, 7}});
  user.events.clear();

  layer->onTransportFailure(gw);
  EXPECT_EQ(layer->client(invite), nullptr);
  EXPECT_EQ(layer->client(options), nullptr);
  ASSERT_EQ(count("client_error"), 2u);
  for (const auto& e : user.events) {
    EXPECT_EQ(e.error, TransactionError::kTransport);
  }
  // A transaction with an answer (the connection was up), another port, UDP, and one sent over
  // a given connection are not this connect's.
  EXPECT_NE(layer->client(answered), nullptr);
  EXPECT_NE(layer->client(elsewhere), nullptr);
  EXPECT_NE(layer->client(overUdp), nullptr);
  EXPECT_NE(layer->client(overConnection), nullptr);
  EXPECT_EQ(layer->stats().transportErrors, 2u);

  layer->onTransportFailure(gw);  // nothing left for it
  EXPECT_EQ(count("client_error"), 2u);
  layer->onTransportFailure(otherPort);
  EXPECT_EQ(layer->client(elsewhere), nullptr);
  EXPECT_EQ(count("client_error"), 3u);
}

TEST_F(TransactionLayerTest, AnEndedTransactionIsForgottenByItsConnection) {
  const Destination gw{Protocol::kTcp, ep("10.0.0.9", 5060), {}};
  for (int i = 0; i < 3; ++i) {
    const std::string req = outgoing("OPTIONS");
    ASSERT_TRUE(layer->sendRequest(req, gw).has_value());
    receive(responseTo(req, 200, "x"), Protocol::kTcp);  // Timer K is zero over TCP
  }
  EXPECT_EQ(layer->clientCount(), 0u);
  user.events.clear();
  layer->onTransportFailure(gw);
  EXPECT_EQ(count("client_error"), 0u);
}

// ---- server INVITE (17.2.1) ----

TEST_F(TransactionLayerTest, ServerInviteResendsLastProvisionalOnRetransmission) {
  const std::string inv = request({});
  receive(inv);
  ASSERT_EQ(count("request"), 1u);
  TransactionId id = user.lastServer;
  EXPECT_EQ(layer->server(id)->state(), State::kProceeding);
  receive(inv);  // nothing to resend yet
  EXPECT_TRUE(sent.empty());
  ASSERT_TRUE(layer->respond(id, 100));
  ASSERT_TRUE(layer->respond(id, 180));
  receive(inv);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(parsed(sent[2].bytes).statusCode(), 180);
  EXPECT_EQ(sent[2].bytes, sent[1].bytes);
  EXPECT_EQ(count("request"), 1u);
  // Responses go to the source address and the sent-by port (no rport).
  EXPECT_EQ(sent[0].to.remote, ep("192.0.2.10", 5062));
  EXPECT_EQ(wireTag(parsed(sent[0].bytes)), "");  // no tag on 100
  EXPECT_EQ(wireTag(parsed(sent[1].bytes)), layer->server(id)->localTag());
}

TEST_F(TransactionLayerTest, ServerInviteTimerGRetransmitsUntilAckThenTimerIAbsorbs) {
  const std::string inv = request({});
  receive(inv);
  TransactionId id = user.lastServer;
  ASSERT_TRUE(layer->respond(id, 486, "Busy Here"));
  EXPECT_EQ(layer->server(id)->state(), State::kCompleted);
  const auto t0 = clock.now();
  std::vector<int64_t> at;
  for (int i = 0; i < 120; ++i) {
    size_t before = sent.size();
    advance(100ms);
    if (sent.size() > before) {
      at.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - t0).count());
      EXPECT_EQ(parsed(sent.back().bytes).statusCode(), 486);
    }
  }
  EXPECT_EQ(at, (std::vector<int64_t>{500, 1500, 3500, 7500, 11500}));
  RequestSpec ack;
  ack.method = "ACK";
  ack.toTag = std::string(layer->server(id)->localTag());
  receive(request(ack));
  EXPECT_EQ(layer->server(id)->state(), State::kConfirmed);
  EXPECT_EQ(count("ack"), 0u);  // hop by hop: absorbed
  const size_t n = sent.size();
  receive(request(ack));  // retransmitted ACK absorbed
  receive(inv);           // retransmitted INVITE absorbed
  advance(4900ms);
  EXPECT_EQ(sent.size(), n);
  EXPECT_NE(layer->server(id), nullptr);
  advance(100ms);  // Timer I = T4
  EXPECT_EQ(layer->server(id), nullptr);
}

TEST_F(TransactionLayerTest, ServerInviteRetransmittedInviteInCompletedResendsFinal) {
  const std::string inv = request({});
  receive(inv);
  ASSERT_TRUE(layer->respond(user.lastServer, 603));
  receive(inv);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].bytes, sent[0].bytes);
}

TEST_F(TransactionLayerTest, ServerInviteTimerHReportsMissingAck) {
  receive(request({}));
  TransactionId id = user.lastServer;
  ASSERT_TRUE(layer->respond(id, 500));
  advance(31900ms);
  EXPECT_EQ(count("server_error"), 0u);
  advance(100ms);
  ASSERT_EQ(count("server_error"), 1u);
  EXPECT_EQ(user.events.back().error, TransactionError::kTimeout);
  EXPECT_EQ(layer->server(id), nullptr);
}

TEST_F(TransactionLayerTest, ServerInviteReliableHasNoTimerGAndNoTimerI) {
  receive(request({}), Protocol::kTcp);
  TransactionId id = user.lastServer;
  ASSERT_TRUE(layer->respond(id, 404));
  advance(10s);
  EXPECT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to.protocol, Protocol::kTcp);
  RequestSpec ack;
  ack.method = "ACK";
  ack.toTag = std::string(layer->server(id)->localTag());
  receive(request(ack), Protocol::kTcp);
  EXPECT_EQ(layer->server(id), nullptr);
}

TEST_F(TransactionLayerTest, ServerInviteSuccessEndsTransactionAndTheAckGoesToTheUser) {
  receive(request({}));
  TransactionId id = user.lastServer;
  ASSERT_TRUE(layer->respond(id, 200));
  EXPECT_EQ(layer->server(id), nullptr);
  RequestSpec ack;
  ack.method = "ACK";
  ack.via = "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-ack2xx";
  ack.toTag = "callee";
  receive(request(ack));
  EXPECT_EQ(user.events.back().what, "ack");
}

TEST_F(TransactionLayerTest, FinalResponseOnlyOnce) {
  receive(request({}));
  TransactionId id = user.lastServer;
  EXPECT_TRUE(layer->respond(id, 486));
  EXPECT_FALSE(layer->respond(id, 200));
  EXPECT_EQ(sent.size(), 1u);
}

// ---- respondOnce: answers to sources that have proven nothing ----

TEST_F(TransactionLayerTest, RespondOnceSendsAnInviteFinalOnceAndAbsorbsItsAck) {
  const std::string inv = request({});
  receive(inv);
  TransactionId id = user.lastServer;
  ASSERT_TRUE(layer->respondOnce(id, 407, "Proxy Authentication Required",
                                 "Proxy-Authenticate: Digest realm=\"x\", nonce=\"n\"\r\n"));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(parsed(sent[0].bytes).statusCode(), 407);
  EXPECT_TRUE(layer->server(id)->request().empty()) << "the request copy is not kept";
  advance(4900ms);  // no Timer G: nothing more without a new request
  EXPECT_EQ(sent.size(), 1u);
  // A retransmission of the INVITE gets the same answer once: one response per request.
  receive(inv);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].bytes, sent[0].bytes);
  // The ACK of the 407 is absorbed: never passed to the user (never forwarded).
  RequestSpec ack;
  ack.method = "ACK";
  ack.toTag = std::string(layer->server(id)->localTag());
  receive(request(ack));
  EXPECT_EQ(count("ack"), 0u);
  advance(5s);
  EXPECT_EQ(layer->server(id), nullptr);
  EXPECT_EQ(sent.size(), 2u);
  EXPECT_EQ(count("server_error"), 0u);
}

TEST_F(TransactionLayerTest, RespondOnceWithoutAckEndsSilentlyAfterT4) {
  receive(request({}));
  TransactionId id = user.lastServer;
  ASSERT_TRUE(layer->respondOnce(id, 403, "Forbidden"));
  advance(4900ms);
  EXPECT_NE(layer->server(id), nullptr);
  advance(100ms);
  EXPECT_EQ(layer->server(id), nullptr);
  advance(60s);
  EXPECT_EQ(sent.size(), 1u);  // never retransmitted
  EXPECT_EQ(count("server_error"), 0u);
}

TEST_F(TransactionLayerTest, RespondOnceNonInvite) {
  RequestSpec s;
  s.method = "REGISTER";
  const std::string reg = request(s);
  receive(reg);
  TransactionId id = user.lastServer;
  ASSERT_TRUE(layer->respondOnce(id, 401, "Unauthorized"));
  receive(reg);  // a retransmission: the same 401 again, not a new request
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].bytes, sent[0].bytes);
  EXPECT_EQ(count("request"), 1u);
  advance(5s);  // T4, not Timer J's 64*T1
  EXPECT_EQ(layer->server(id), nullptr);
  // Over a reliable transport nothing is kept.
  receive(request(s), Protocol::kTcp);
  id = user.lastServer;
  ASSERT_TRUE(layer->respondOnce(id, 401, "Unauthorized"));
  EXPECT_EQ(layer->server(id), nullptr);
  // Only finals >= 300, once.
  receive(request(s));
  id = user.lastServer;
  EXPECT_FALSE(layer->respondOnce(id, 200));
  EXPECT_TRUE(layer->respondOnce(id, 404));
  EXPECT_FALSE(layer->respondOnce(id, 404));
}

// ---- server non-INVITE (17.2.2) ----

TEST_F(TransactionLayerTest, ServerNonInviteAbsorbsInTryingResendsInCompletedTimerJ) {
  RequestSpec s;
  s.method = "REGISTER";
  const std::string reg = request(s);
  receive(reg);
  TransactionId id = user.lastServer;
  EXPECT_EQ(layer->server(id)->state(), State::kTrying);
  receive(reg);
  EXPECT_TRUE(sent.empty());
  EXPECT_EQ(count("request"), 1u);
  ASSERT_TRUE(layer->respond(id, 200));
  receive(reg);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].bytes, sent[0].bytes);
  advance(31900ms);
  EXPECT_NE(layer->server(id), nullptr);
  advance(100ms);  // Timer J = 64*T1
  EXPECT_EQ(layer->server(id), nullptr);
  receive(reg);  // a new transaction now
  EXPECT_EQ(count("request"), 2u);
}

TEST_F(TransactionLayerTest, ServerNonInviteTimerJIsZeroOnReliable) {
  RequestSpec s;
  s.method = "OPTIONS";
  receive(request(s), Protocol::kWs);
  TransactionId id = user.lastServer;
  ASSERT_TRUE(layer->respond(id, 200));
  EXPECT_EQ(layer->server(id), nullptr);
}

TEST_F(TransactionLayerTest, MatchingUsesSentByAndMethod) {
  RequestSpec s;
  s.method = "OPTIONS";
  receive(request(s));
  s.via = "SIP/2.0/UDP 192.0.2.11:5062;branch=z9hG4bK-abc1";  // same branch, other sent-by
  receive(request(s));
  s.method = "INFO";  // same branch and sent-by as the first, other method
  s.via = "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-abc1";
  receive(request(s));
  EXPECT_EQ(count("request"), 3u);
}

TEST_F(TransactionLayerTest, RportSendsResponsesToTheSourcePort) {
  RequestSpec s;
  s.method = "OPTIONS";
  s.via = "SIP/2.0/UDP 192.0.2.10:5099;branch=z9hG4bK-r;rport";
  receive(request(s));
  ASSERT_TRUE(layer->respond(user.lastServer, 200));
  EXPECT_EQ(sent[0].to.remote, ep("192.0.2.10", 5062));
}

// ---- CANCEL (9.2) ----

TEST_F(TransactionLayerTest, CancelMatchesInviteIsAnsweredAndTheUserTold) {
  receive(request({}));
  TransactionId inv = user.lastServer;
  ASSERT_TRUE(layer->respond(inv, 180));
  RequestSpec c;
  c.method = "CANCEL";
  const std::string cancel = request(c);
  receive(cancel);
  ASSERT_EQ(sent.size(), 2u);
  auto ok = parsed(sent[1].bytes);
  EXPECT_EQ(ok.statusCode(), 200);
  EXPECT_EQ(ok.cseq()->methodText, "CANCEL");
  EXPECT_EQ(wireTag(ok), layer->server(inv)->localTag());
  ASSERT_EQ(user.events.back().what, "cancel");
  EXPECT_EQ(user.events.back().id, inv);
  EXPECT_EQ(count("request"), 1u);
  // A retransmitted CANCEL gets its 200 again, the user is not told twice.
  receive(cancel);
  EXPECT_EQ(sent.size(), 3u);
  EXPECT_EQ(count("cancel"), 1u);
}

TEST_F(TransactionLayerTest, CancelAfterFinalIsAnsweredButNotReported) {
  receive(request({}));
  ASSERT_TRUE(layer->respond(user.lastServer, 486));
  RequestSpec c;
  c.method = "CANCEL";
  receive(request(c));
  EXPECT_EQ(parsed(sent.back().bytes).statusCode(), 200);
  EXPECT_EQ(count("cancel"), 0u);
}

TEST_F(TransactionLayerTest, UnmatchedCancelGoesToTheUser) {
  RequestSpec c;
  c.method = "CANCEL";
  receive(request(c));
  EXPECT_EQ(user.events.back().what, "request");
  EXPECT_EQ(user.events.back().method, "CANCEL");
  EXPECT_TRUE(sent.empty());
}

// ---- RFC 2543 fallback (17.2.3) ----

TEST_F(TransactionLayerTest, Rfc2543RequestsMatchByDialogFieldsAndTopVia) {
  RequestSpec s;
  s.via = "SIP/2.0/UDP 192.0.2.10:5062;branch=old2543";
  const std::string inv = request(s);
  receive(inv);
  TransactionId id = user.lastServer;
  ASSERT_TRUE(layer->respond(id, 486));
  receive(inv);  // retransmission: the final again
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].bytes, sent[0].bytes);
  EXPECT_EQ(count("request"), 1u);
  // The ACK carries the To tag of the response.
  RequestSpec ack = s;
  ack.method = "ACK";
  ack.toTag = std::string(layer->server(id)->localTag());
  receive(request(ack));
  EXPECT_EQ(layer->server(id)->state(), State::kConfirmed);
  // Other From tag: another transaction.
  RequestSpec other = s;
  other.fromTag = "999";
  receive(request(other));
  EXPECT_EQ(count("request"), 2u);
  // A CANCEL of the first INVITE (the To tag of the INVITE, none) matches it.
  RequestSpec c = s;
  c.method = "CANCEL";
  receive(request(c));
  EXPECT_EQ(parsed(sent.back().bytes).statusCode(), 200);
  EXPECT_EQ(parsed(sent.back().bytes).cseq()->methodText, "CANCEL");
}

TEST_F(TransactionLayerTest, Rfc2543WithoutBranchStillMatches) {
  RequestSpec s;
  s.method = "OPTIONS";
  s.via = "SIP/2.0/UDP 192.0.2.10:5062";
  const std::string opt = request(s);
  receive(opt);
  receive(opt);
  EXPECT_EQ(count("request"), 1u);
}

// ---- limits ----

TEST_F(TransactionLayerTest, FullLayerAnswers503) {
  LayerSettings settings;
  settings.maxServerTransactions = 2;
  make(settings);
  for (int i = 0; i < 3; ++i) {
    RequestSpec s;
    s.via = "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-n" + std::to_string(i);
    receive(request(s));
  }
  EXPECT_EQ(count("request"), 2u);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(parsed(sent[0].bytes).statusCode(), 503);
  EXPECT_EQ(layer->serverCount(), 2u);
}

TEST_F(TransactionLayerTest, TransactionMemoryIsBoundedInBytesAndGivenBackAtTheEnd) {
  LayerSettings settings;
  settings.maxTransactionBytes = 8 * 1024;
  make(settings);
  int admitted = 0;
  for (int i = 0; i < 100; ++i) {
    RequestSpec s;
    s.method = "MESSAGE";
    s.via = "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-m" + std::to_string(i);
    s.extra = "Subject: " + std::string(200, 'x') + "\r\n";
    receive(request(s));
    admitted = static_cast<int>(count("request"));
  }
  EXPECT_GT(admitted, 3);
  EXPECT_LT(admitted, 100);
  EXPECT_LE(layer->bytes(), settings.maxTransactionBytes + 2048);
  // Every refused request was answered 503, none silently dropped.
  EXPECT_EQ(sent.size(), static_cast<size_t>(100 - admitted));
  EXPECT_EQ(parsed(sent.back().bytes).statusCode(), 503);
  EXPECT_EQ(layer->stats().rejectedFull, static_cast<uint64_t>(100 - admitted));
  // Answered and expired: the bytes go back to zero, new requests are admitted again.
  for (const auto& e : user.events) {
    if (e.what == "request") {
      layer->respond(e.id, 200);
    }
  }
  advance(33s);  // Timer J
  EXPECT_EQ(layer->serverCount(), 0u);
  EXPECT_EQ(layer->bytes(), 0u);
}

TEST_F(TransactionLayerTest, BranchesCarryTheirLoopHashAndWorker) {
  LayerSettings settings;
  settings.branchWorker = 3;
  make(settings);
  const std::string b = layer->newBranch(0xdeadbeefu);
  EXPECT_EQ(TransactionLayer::loopOfBranch(b), 0xdeadbeefu);
  EXPECT_EQ(TransactionLayer::workerOfBranch(b), 3u);
  const std::string plain = layer->newBranch();
  EXPECT_EQ(TransactionLayer::loopOfBranch(plain), std::nullopt);
  EXPECT_EQ(TransactionLayer::workerOfBranch(plain), 3u);
  EXPECT_EQ(TransactionLayer::loopOfBranch("z9hG4bK-lzzzzzzzzt"), std::nullopt);
}

TEST_F(TransactionLayerTest, ConfigurableTimers) {
  LayerSettings settings;
  settings.timers.t1 = 100ms;
  make(settings);
  start(outgoing());
  advance(100ms);
  EXPECT_EQ(sent.size(), 2u);
  advance(6300ms);  // B = 64 * 100 ms
  EXPECT_EQ(count("client_error"), 1u);
}

TEST_F(TransactionLayerTest, NewBranchesAreUniqueAndCarryTheCookie) {
  std::string a = layer->newBranch();
  std::string b = layer->newBranch();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.substr(0, 7), "z9hG4bK");
}

}  // namespace
}  // namespace evosip::transaction

namespace evosip::transaction {
namespace {

TEST(TransactionLayerBranch, WorkerIsWrittenIntoTheBranchAndReadBack) {
  evosip::test::ManualClock clock;
  LayerSettings s;
  s.branchWorker = 12;
  struct NullUser : TransactionUser {
    void onRequest(TransactionId, const sip::Message&, const Source&) override {}
    void onCancel(TransactionId, const sip::Message&) override {}
    void onAck(const sip::Message&, const Source&) override {}
    void onResponse(TransactionId, const sip::Message&) override {}
    void onStrayResponse(const sip::Message&, const Source&) override {}
    void onClientError(TransactionId, TransactionError) override {}
    void onServerError(TransactionId, TransactionError) override {}
  } user;
  TransactionLayer layer(
      s, clock, [](const Destination&, std::string_view) { return true; }, user);
  const std::string a = layer.newBranch();
  const std::string b = layer.newBranch();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("z9hG4bK", 0), 0u);
  EXPECT_EQ(TransactionLayer::workerOfBranch(a), 12u);
  EXPECT_EQ(TransactionLayer::workerOfBranch(b), 12u);
  // Branches without the mark: another layer's, a peer's, garbage.
  s.branchWorker = -1;
  TransactionLayer plain(
      s, clock, [](const Destination&, std::string_view) { return true; }, user);
  EXPECT_FALSE(TransactionLayer::workerOfBranch(plain.newBranch()));
  EXPECT_FALSE(TransactionLayer::workerOfBranch("z9hG4bK-27585-2--1"));
  EXPECT_FALSE(TransactionLayer::workerOfBranch("z9hG4bK0123456789abcdefwt"));
  EXPECT_FALSE(TransactionLayer::workerOfBranch("z9hG4bK0123456789abcdefw1xt"));
  EXPECT_FALSE(TransactionLayer::workerOfBranch("z9hG4bK0123456789abcdefw99999999999t"));
  EXPECT_FALSE(TransactionLayer::workerOfBranch(""));
}

}  // namespace
}  // namespace evosip::transaction
