// The relay of one worker, in process: ng command bodies in, replies out, and real RTP packets
// over loopback sockets driven by polling the worker's io_context. Idle timeouts and packet times
// run on a manual clock.
#include <arpa/inet.h>
#include <chrono>
#include <cstring>
#include <future>
#include <netinet/in.h>
#include <set>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <evosip/media/ng_options.hpp>
#include <evosip/media/relay.hpp>

#include "loopback_udp.hpp"
#include "manual_clock.hpp"

namespace evosip::media {
namespace {

using bencode::Value;

// A fake phone's media socket.
using Phone = test::LoopbackUdp;

std::string sdpFor(uint16_t port, const std::string& addr = "127.0.0.1",
                   const std::string& extra = "") {
  return "v=0\r\no=- 1 1 IN IP4 " + addr + "\r\ns=-\r\nc=IN IP4 " + addr + "\r\nt=0 0\r\nm=audio " +
         std::to_string(port) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" + extra;
}

// The m= port of the first section of a rewritten SDP.
uint16_t mPort(std::string_view sdp) {
  const auto at = sdp.find("m=audio ");
  return at == std::string_view::npos
             ? 0
             : static_cast<uint16_t>(std::stoi(std::string(sdp.substr(at + 8, 5))));
}

// Every relay test runs on both packet paths: io_uring (where the kernel allows it) and epoll.
class RelayTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { make(0, 400); }
  void make(uint64_t maxSessions, uint16_t ports, uint32_t timeoutS = 10) {
    relay.reset();
    settings.advertise = "127.0.0.1";
    settings.maxSessions = maxSessions;
    settings.timeoutS = timeoutS;
    settings.ioUring = GetParam();
    // A range of our own per test process, away from the ephemeral ports of the phones.
    const uint16_t base = static_cast<uint16_t>(20000 + (::getpid() % 500) * 40);
    relay = std::make_unique<Relay>(io, settings, PortRange{base, uint16_t(base + ports - 1)},
                                    shared, clock);
  }
  Value offer(const std::string& callId, const std::string& from, const std::string& sdp,
              Value::List flags = {}) {
    Value b = Value::makeDict();
    b.set("command", "offer").set("call-id", callId).set("from-tag", from).set("sdp", sdp);
    b.set("flags", Value(std::move(flags)));
    return relay->offer(b);
  }
  Value answer(const std::string& callId, const std::string& from, const std::string& to,
               const std::string& sdp) {
    Value b = Value::makeDict();
    b.set("command", "answer").set("call-id", callId).set("from-tag", from).set("to-tag", to);
    b.set("sdp", sdp);
    return relay->answer(b);
  }
  Value simple(const char* command, const std::string& callId) {
    Value b = Value::makeDict();
    b.set("command", command).set("call-id", callId);
    return std::string_view(command) == "delete" ? relay->remove(b) : relay->query(b);
  }
  // Sends from `from` to relay port `to` and expects it at `at`.
  bool relays(const Phone& from, uint16_t to, const Phone& at, const std::string& data) {
    from.sendTo(to, data);
    for (int i = 0; i < 200; ++i) {
      io.poll();
      io.restart();
      std::string got = at.receive();
      if (!got.empty()) {
        return got == data;
      }
      ::usleep(1000);
    }
    return false;
  }

  boost::asio::io_context io;
  RelaySettings settings;
  RelayShared shared;
  test::ManualClock clock;
  std::unique_ptr<Relay> relay;
};

TEST_P(RelayTest, OfferAnswerRelayBothWaysAndDelete) {
  Phone a, b;
  Value o = offer("c1", "ta", sdpFor(a.port()));
  ASSERT_EQ(o.string("result"), "ok") << o.string("error-reason").value_or("");
  Value an = answer("c1", "ta", "tb", sdpFor(b.port()));
  ASSERT_EQ(an.string("result"), "ok");
  const uint16_t towardB = mPort(*o.string("sdp"));
  const uint16_t towardA = mPort(*an.string("sdp"));
  EXPECT_NE(towardA, towardB);
  EXPECT_NE(o.string("sdp")->find("a=rtcp:" + std::to_string(towardB + 1)), std::string::npos);
  EXPECT_TRUE(relays(a, towardA, b, "from-a"));
  EXPECT_TRUE(relays(b, towardB, a, "from-b"));
  EXPECT_EQ(relay->counters().packetsRelayed.load(), 2u);

  Value q = simple("query", "c1");
  EXPECT_EQ(q.find("totals")->find("RTP")->integer("packets"), 2);
  EXPECT_EQ(shared.sessions.load(), 1);
  EXPECT_EQ(relay->ports().inUse(), 2u);
  Value d = simple("delete", "c1");
  EXPECT_EQ(d.string("result"), "ok");
  EXPECT_EQ(relay->ports().inUse(), 0u);
  EXPECT_EQ(shared.sessions.load(), 0);
  EXPECT_EQ(simple("query", "c1").string("error-reason"), "Unknown call-id");
}

TEST_P(RelayTest, DeleteMatchesByEitherTag) {
  offer("c8", "ta", sdpFor(4000));
  Value wrong = Value::makeDict();
  wrong.set("call-id", "c8").set("from-tag", "other").set("to-tag", "other2");
  EXPECT_TRUE(relay->remove(wrong).has("warning"));
  EXPECT_EQ(relay->calls(), 1u);
  // The to-tag of a failure response that was never answered: the from-tag still matches.
  Value d = Value::makeDict();
  d.set("call-id", "c8").set("from-tag", "ta").set("to-tag", "487-tag");
  EXPECT_TRUE(relay->remove(d).has("tags"));
  EXPECT_EQ(relay->calls(), 0u);
}

TEST_P(RelayTest, RepeatedOfferKeepsPortsAndReply) {
  Phone a;
  Value first = offer("c2", "ta", sdpFor(a.port()));
  Value second = offer("c2", "ta", sdpFor(a.port()));
  EXPECT_EQ(first, second);
  EXPECT_EQ(relay->ports().inUse(), 2u);
}

TEST_P(RelayTest, ReofferWithNewAddressUnlatches) {
  Phone a, b, a2;
  Value o = offer("c3", "ta", sdpFor(a.port()));
  Value an = answer("c3", "ta", "tb", sdpFor(b.port()));
  const uint16_t towardA = mPort(*an.string("sdp"));
  const uint16_t towardB = mPort(*o.string("sdp"));
  EXPECT_TRUE(relays(a, towardA, b, "1"));
  // a moves (re-INVITE with a new port): b's packets follow the new SDP at once.
  Value re = offer("c3", "ta", sdpFor(a2.port()));
  EXPECT_EQ(mPort(*re.string("sdp")), towardB);
  EXPECT_TRUE(relays(b, towardB, a2, "2"));
}

TEST_P(RelayTest, CalleeMediaFlowsBeforeTheAnswer) {
  Phone a;
  Value o = offer("c4", "ta", sdpFor(a.port()));
  // The port toward a is known only from the answer; send to the one toward b instead, from b's
  // future address: a is known from its offer, so b -> a works before the answer.
  Phone b;
  EXPECT_TRUE(relays(b, mPort(*o.string("sdp")), a, "early"));
  EXPECT_EQ(relay->counters().drops[size_t(DropReason::kNoDestination)].load(), 0u);
}

TEST_P(RelayTest, Errors) {
  EXPECT_EQ(answer("nope", "a", "b", sdpFor(4000)).string("error-reason"), "Unknown call-id");
  EXPECT_EQ(offer("", "a", sdpFor(4000)).string("error-reason"), "No call-id in message");
  EXPECT_EQ(offer("c", "", sdpFor(4000)).string("error-reason"), "No from-tag in message");
  EXPECT_EQ(offer("c", "a", "").string("error-reason"), "No SDP body in message");
  Value bad = offer("c", "a", "garbage");
  EXPECT_EQ(bad.string("result"), "error");
  EXPECT_NE(bad.string("error-reason")->find("Failed to parse SDP"), std::string::npos);
  EXPECT_EQ(offer("c", "a", sdpFor(4000), {Value("record-call")}).string("result"), "error");
  EXPECT_EQ(relay->calls(), 0u);
  EXPECT_EQ(shared.sessions.load(), 0);
  Value d = simple("delete", "nope");
  EXPECT_EQ(d.string("result"), "ok");
  EXPECT_EQ(d.string("warning"), "Call-ID not found or tags didn't match");
}

TEST_P(RelayTest, OutOfPortsIsAnErrorAndLeavesNothing) {
  make(0, 2);  // one pair: an offer needs two (one per leg)
  Value o = offer("c5", "ta", sdpFor(4000));
  EXPECT_EQ(o.string("error-reason"), "Ran out of ports");
  EXPECT_EQ(relay->calls(), 0u);
  EXPECT_EQ(relay->ports().inUse(), 0u);
  EXPECT_EQ(shared.sessions.load(), 0);
}

TEST_P(RelayTest, MaxSessionsAndDraining) {
  make(1, 400);
  EXPECT_EQ(offer("c6", "ta", sdpFor(4000)).string("result"), "ok");
  EXPECT_EQ(offer("c7", "ta", sdpFor(4000)).string("error-reason"),
            "Parallel session limit reached");
  EXPECT_EQ(offer("c6", "ta", sdpFor(4002)).string("result"), "ok");  // re-offer
  simple("delete", "c6");
  shared.draining = true;
  EXPECT_EQ(offer("c7", "ta", sdpFor(4000)).string("error-reason"), "draining");
  EXPECT_EQ(relay->counters().rejectedSessions.load(), 2u);
}

TEST_P(RelayTest, TooManyMediaStreamsAreRefused) {
  // 32 m= lines would take 64 port pairs for one call: refused before any port is taken.
  std::string many = sdpFor(4000);
  for (int i = 1; i < 32; ++i) {
    many += "m=audio " + std::to_string(4000 + 2 * i) + " RTP/AVP 0\r\n";
  }
  Value o = offer("many", "ta", many);
  EXPECT_EQ(o.string("result"), "error");
  EXPECT_EQ(o.string("error-reason"), "Too many media streams: 32 m= lines, at most 4");
  EXPECT_EQ(relay->calls(), 0u);
  EXPECT_EQ(relay->ports().inUse(), 0u);
  EXPECT_EQ(shared.sessions.load(), 0);
  // Four are allowed (media.max_streams' default).
  std::string four = sdpFor(4000);
  for (int i = 1; i < 4; ++i) {
    four += "m=audio " + std::to_string(4000 + 2 * i) + " RTP/AVP 0\r\n";
  }
  EXPECT_EQ(offer("four", "ta", four).string("result"), "ok");
  EXPECT_EQ(relay->ports().inUse(), 8u);
}

TEST_P(RelayTest, NewTagsCannotGrowACallWithoutEnd) {
  // Every offer with a new from-tag makes two new legs; a call holds at most 2 x max_streams
  // pairs, so a flood of tags on one Call-ID cannot take the port range.
  size_t ok = 0;
  Value last;
  for (int i = 0; i < 20; ++i) {
    last = offer("tags", "t" + std::to_string(i), sdpFor(4000));
    ok += last.string("result") == "ok" ? 1 : 0;
  }
  EXPECT_EQ(ok, 4u);
  EXPECT_EQ(last.string("error-reason"), "Too many call legs");
  EXPECT_EQ(relay->ports().inUse(), 8u);
  EXPECT_EQ(relay->calls(), 1u);
  // Nor can more m= lines on new tags: two legs with four lines each are all a call may hold.
  std::string four = sdpFor(4000);
  for (int i = 1; i < 4; ++i) {
    four += "m=audio " + std::to_string(4000 + 2 * i) + " RTP/AVP 0\r\n";
  }
  EXPECT_EQ(offer("wide", "ta", four).string("result"), "ok");
  EXPECT_EQ(offer("wide", "tb", sdpFor(4000)).string("error-reason"),
            "Too many media streams in this call");
  EXPECT_EQ(relay->ports().inUse(), 16u);
  // An offer whose tags name one party is refused and leaves no call behind.
  Value same = Value::makeDict();
  same.set("command", "offer").set("call-id", "same").set("from-tag", "x").set("to-tag", "x");
  same.set("sdp", sdpFor(4000));
  EXPECT_EQ(relay->offer(same).string("result"), "error");
  EXPECT_EQ(relay->calls(), 2u);
  EXPECT_EQ(shared.sessions.load(), 2);
}

TEST_P(RelayTest, StrictSourceKeepsAnInjectorFromTakingTheStream) {
  // An attacker on another address sends to the relay port toward the caller before the caller
  // does: with strict-source and the SIP source address (127.0.0.1) it is dropped and the caller
  // latches; without, it would latch.
  Phone a, b;
  Value req = Value::makeDict();
  req.set("command", "offer").set("call-id", "strict").set("from-tag", "ta");
  req.set("sdp", sdpFor(a.port(), "192.168.1.20"));
  req.set("received-from", Value(Value::List{Value("IP4"), Value("127.0.0.1")}));
  req.set("flags", Value(Value::List{Value("SIP source address"), Value("strict source")}));
  Value o = relay->offer(req);
  Value an = answer("strict", "ta", "tb", sdpFor(b.port()));
  const uint16_t towardA = mPort(*an.string("sdp"));
  int attacker = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.2", &from.sin_addr);
  ASSERT_EQ(::bind(attacker, reinterpret_cast<sockaddr*>(&from), sizeof from), 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(towardA);
  ::sendto(attacker, "inject", 6, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  for (int i = 0; i < 50 && relay->counters().drops[size_t(DropReason::kStrictSource)] == 0; ++i) {
    io.poll();
    io.restart();
    ::usleep(1000);
  }
  ::close(attacker);
  EXPECT_EQ(relay->counters().drops[size_t(DropReason::kStrictSource)].load(), 1u);
  EXPECT_EQ(b.receive(), "");
  EXPECT_TRUE(relays(a, towardA, b, "from-a"));  // the caller latches
  EXPECT_TRUE(relays(b, mPort(*o.string("sdp")), a, "to-a"));
}

TEST_P(RelayTest, StrictSourceLatchesACalleeBehindNat) {
  // The callee's SDP names a private address it does not send from (NAT): with strict-source its
  // first packet still latches, and afterwards packets from other sources are dropped.
  Phone a, b;
  Value o = offer("nat", "ta", sdpFor(a.port()), {Value("strict source")});
  Value req = Value::makeDict();
  req.set("command", "answer").set("call-id", "nat").set("from-tag", "ta").set("to-tag", "tb");
  req.set("sdp", sdpFor(b.port(), "10.0.0.5"));
  req.set("flags", Value(Value::List{Value("strict source")}));
  Value an = relay->answer(req);
  ASSERT_EQ(an.string("result"), "ok");
  const uint16_t fromB = mPort(*o.string("sdp")), fromA = mPort(*an.string("sdp"));
  EXPECT_TRUE(relays(b, fromB, a, "from-b"));  // the callee latches from its real address
  EXPECT_TRUE(relays(a, fromA, b, "to-b"));
  EXPECT_EQ(relay->counters().drops[size_t(DropReason::kStrictSource)].load(), 0u);
  // Another source on the callee's port, after the latch: dropped.
  Phone c;
  c.sendTo(fromB, "inject");
  for (int i = 0; i < 200 && relay->counters().drops[size_t(DropReason::kStrictSource)] == 0; ++i) {
    io.poll();
    io.restart();
    ::usleep(1000);
  }
  EXPECT_EQ(relay->counters().drops[size_t(DropReason::kStrictSource)].load(), 1u);
  EXPECT_EQ(a.receive(), "");
}

TEST_P(RelayTest, IdleTimeout) {
  Phone a, b;
  Value o = offer("idle", "ta", sdpFor(a.port()));
  offer("busy", "ta", sdpFor(b.port()));
  clock.advance(std::chrono::seconds(9));
  relay->onTick();
  EXPECT_EQ(relay->calls(), 2u);
  Phone c;
  EXPECT_TRUE(relays(c, mPort(*offer("busy", "ta", sdpFor(b.port())).string("sdp")), b, "x"));
  // 11 s after "idle" was signalled, 2 s after "busy" had a packet.
  clock.advance(std::chrono::seconds(2));
  relay->onTick();
  EXPECT_EQ(relay->calls(), 1u);
  EXPECT_EQ(simple("query", "idle").string("result"), "error");
  EXPECT_EQ(simple("query", "busy").string("result"), "ok");
  EXPECT_EQ(relay->counters().timeoutSessions.load(), 1u);
}

TEST_P(RelayTest, IdleMeansLongerThanTimeoutSinceTheLastSignalOrPacket) {
  Phone a, b;
  ASSERT_EQ(offer("t", "ta", sdpFor(a.port())).string("result"), "ok");
  clock.advance(std::chrono::seconds(10));  // exactly timeout_s: not yet idle
  relay->onTick();
  EXPECT_EQ(relay->calls(), 1u);
  // The answer is signalling too: the count starts again. b muxes RTCP, so what a sends to its
  // RTCP port reaches b's RTP address.
  Value an = answer("t", "ta", "tb", sdpFor(b.port(), "127.0.0.1", "a=rtcp-mux\r\n"));
  ASSERT_EQ(an.string("result"), "ok");
  clock.advance(std::chrono::seconds(10));
  relay->onTick();
  EXPECT_EQ(relay->calls(), 1u);
  // An RTCP packet counts as much as an RTP packet.
  EXPECT_TRUE(relays(a, static_cast<uint16_t>(mPort(*an.string("sdp")) + 1), b, "rtcp"));
  clock.advance(std::chrono::seconds(10));
  relay->onTick();
  EXPECT_EQ(relay->calls(), 1u);
  EXPECT_EQ(relay->counters().timeoutSessions.load(), 0u);
  clock.advance(std::chrono::nanoseconds(1));
  relay->onTick();
  EXPECT_EQ(relay->calls(), 0u);
  EXPECT_EQ(relay->counters().timeoutSessions.load(), 1u);
  // Deleted like a delete command: its ports, streams and session count are given back.
  EXPECT_EQ(relay->ports().inUse(), 0u);
  EXPECT_EQ(relay->counters().streams.load(), 0);
  EXPECT_EQ(shared.sessions.load(), 0);
  EXPECT_EQ(simple("query", "t").string("error-reason"), "Unknown call-id");
}

TEST_P(RelayTest, TimeoutZeroKeepsIdleCalls) {
  make(0, 400, 0);
  ASSERT_EQ(offer("forever", "ta", sdpFor(4000)).string("result"), "ok");
  clock.advance(std::chrono::hours(24 * 365));
  relay->onTick();
  EXPECT_EQ(relay->calls(), 1u);
  EXPECT_EQ(relay->counters().timeoutSessions.load(), 0u);
}

TEST_P(RelayTest, QueryDatesTheLastPacketByTheClock) {
  Phone a, b;
  offer("lp", "ta", sdpFor(a.port()));
  Value an = answer("lp", "ta", "tb", sdpFor(b.port()));
  const uint16_t towardA = mPort(*an.string("sdp"));
  ASSERT_TRUE(relays(a, towardA, b, "x"));
  clock.advance(std::chrono::seconds(7));
  const auto wall = [] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const int64_t before = wall();
  Value q = simple("query", "lp");
  const int64_t after = wall();
  // a's leg: the streams a sends to. Its RTP stream had the packet, 7 s ago on the relay's clock;
  // its RTCP stream had none.
  const Value* streams = q.find("tags")->find("ta")->find("medias")->asList().at(0).find("streams");
  ASSERT_NE(streams, nullptr);
  ASSERT_EQ(streams->asList().size(), 2u);
  const Value& rtp = streams->asList()[0];
  EXPECT_EQ(rtp.integer("local port"), towardA);
  ASSERT_TRUE(rtp.integer("last packet"));
  EXPECT_GE(*rtp.integer("last packet"), before - 7);
  EXPECT_LE(*rtp.integer("last packet"), after - 7);
  EXPECT_FALSE(streams->asList()[1].has("last packet"));
}

TEST_P(RelayTest, SdpRewriteRemovesIceAndReplacesOrigin) {
  const std::string ice =
      "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
      "a=candidate:1 1 UDP 2130706431 192.168.1.2 4000 typ host\r\n";
  Value b = Value::makeDict();
  b.set("command", "offer").set("call-id", "ice").set("from-tag", "ta");
  b.set("sdp", sdpFor(4000, "192.168.1.2", ice));
  b.set("replace", Value(Value::List{"origin", "session-connection"}));
  b.set("ICE", "remove");
  Value o = relay->offer(b);
  ASSERT_EQ(o.string("result"), "ok");
  const std::string sdp(*o.string("sdp"));
  EXPECT_EQ(sdp.find("candidate"), std::string::npos);
  EXPECT_EQ(sdp.find("ice-ufrag"), std::string::npos);
  EXPECT_EQ(sdp.find("192.168.1.2"), std::string::npos) << sdp;
  EXPECT_NE(sdp.find("o=- 1 1 IN IP4 127.0.0.1"), std::string::npos) << sdp;
}

TEST_P(RelayTest, UsesThePacketPathAsked) {
  Phone a;
  ASSERT_EQ(offer("p", "ta", sdpFor(a.port())).string("result"), "ok");
  if (!GetParam()) {
    EXPECT_STREQ(relay->packetPath(), "epoll");
  }
}

TEST_P(RelayTest, OldStyleHoldBecomesSendonly) {
  Value o = offer("h", "ta", sdpFor(4000, "0.0.0.0"));
  ASSERT_EQ(o.string("result"), "ok");
  EXPECT_NE(o.string("sdp")->find("a=sendonly"), std::string::npos) << *o.string("sdp");
}

TEST_P(RelayTest, WebRtcPlaceholderAddressIsNotHold) {
  // Browsers offer c=IN IP4 0.0.0.0 (port 9) with ICE: not a hold (RFC 8839), the media flows
  // once the first packet latches the browser's address.
  const std::string ice = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n";
  Value o = offer("w", "ta", sdpFor(9, "0.0.0.0", ice));
  ASSERT_EQ(o.string("result"), "ok");
  const std::string sdp(*o.string("sdp"));
  EXPECT_EQ(sdp.find("a=sendonly"), std::string::npos) << sdp;
  EXPECT_EQ(sdp.find("c=IN IP4 0.0.0.0"), std::string::npos) << sdp;
  Phone browser, b;
  Value an = answer("w", "ta", "tb", sdpFor(b.port()));
  ASSERT_EQ(an.string("result"), "ok");
  const uint16_t towardA = mPort(*an.string("sdp"));
  const uint16_t towardB = mPort(sdp);
  EXPECT_TRUE(relays(browser, towardA, b, "from-browser"));  // latches the browser
  EXPECT_TRUE(relays(b, towardB, browser, "to-browser"));
}

// media.state: a call's stored form, written after offer, answer and latch, is served by another
// relay (the survivor) on the dead relay's address and ports, with its latches and strict source.
TEST_P(RelayTest, RestoredCallRelaysOnTheDeadRelaysPortsAndLatches) {
  struct Write {
    std::string callId, owner, record;
  };
  std::vector<Write> written;
  relay->setSessionSink([&](const std::string& id, const std::string& owner, std::string r) {
    written.push_back({id, owner, std::move(r)});
  });
  Phone a, b;
  Value o = offer("r1", "ta", sdpFor(a.port()), {Value("strict source")});
  Value an = answer("r1", "ta", "tb", sdpFor(b.port()));
  const uint16_t towardB = mPort(*o.string("sdp"));
  const uint16_t towardA = mPort(*an.string("sdp"));
  ASSERT_EQ(written.size(), 2u);  // offer, answer
  EXPECT_TRUE(relays(a, towardA, b, "1"));
  EXPECT_TRUE(relays(b, towardB, a, "2"));
  relay->onTick();  // the latches are written at the tick, not per packet
  ASSERT_EQ(written.size(), 3u);
  EXPECT_EQ(written.back().owner, "");
  const RecordLimits limits;
  auto record = decodeSessionRecord(written.back().record, limits);
  ASSERT_TRUE(record) << record.error().message;
  ASSERT_EQ(record->legs.size(), 2u);
  EXPECT_TRUE(record->legs[0].media[0].rtp.latched);
  EXPECT_TRUE(record->legs[0].policy.strictSource);
  relay->closeAll();  // the relay dies: its sockets close, its record stays
  EXPECT_EQ(written.size(), 3u);

  RelaySettings other = settings;
  other.advertise = "127.0.0.2";
  RelayShared otherShared;
  const uint16_t base = static_cast<uint16_t>(40000 + (::getpid() % 500) * 40);
  Relay survivor(io, other, PortRange{base, uint16_t(base + 39)}, otherShared, clock);
  std::vector<Write> taken;
  survivor.setSessionSink([&](const std::string& id, const std::string& owner, std::string r) {
    taken.push_back({id, owner, std::move(r)});
  });
  ASSERT_TRUE(survivor.restore(*record, "relay-a"));
  EXPECT_FALSE(survivor.restore(*record, "relay-a"));  // already here
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken.back().owner, "relay-a");
  EXPECT_EQ(otherShared.sessions.load(), 1);
  EXPECT_TRUE(relays(a, towardA, b, "3"));
  EXPECT_TRUE(relays(b, towardB, a, "4"));
  Phone stranger;
  EXPECT_FALSE(relays(stranger, towardA, b, "not yours"));  // strict source, as latched
  EXPECT_EQ(survivor.counters().drops[size_t(DropReason::kStrictSource)].load(), 1u);

  // A re-INVITE keeps the dead relay's address and ports in the SDP.
  Value re = Value::makeDict();
  re.set("command", "offer")
      .set("call-id", "r1")
      .set("from-tag", "ta")
      .set("sdp", sdpFor(a.port()));
  Value reply = survivor.offer(re);
  ASSERT_EQ(reply.string("result"), "ok") << reply.string("error-reason").value_or("");
  EXPECT_NE(reply.string("sdp")->find("c=IN IP4 127.0.0.1"), std::string::npos);
  EXPECT_EQ(mPort(*reply.string("sdp")), towardB);
  // The BYE's delete removes the record under the dead relay's name; its ports were never the
  // survivor's to give back.
  Value del = Value::makeDict();
  del.set("call-id", "r1").set("from-tag", "ta");
  EXPECT_EQ(survivor.remove(del).string("result"), "ok");
  EXPECT_EQ(taken.back().owner, "relay-a");
  EXPECT_TRUE(taken.back().record.empty());
  EXPECT_EQ(survivor.ports().inUse(), 0u);
  EXPECT_EQ(otherShared.sessions.load(), 0);
}

// media.state.fence: a fenced relay relays nothing (its packets are counted, not latched) and
// relays again when the fence lifts; the calls of an address another relay holds are dropped
// without their records being removed.
TEST_P(RelayTest, FencedRelaysNothingAndLostCallsGoWithoutTheirRecords) {
  std::vector<std::string> written;
  relay->setSessionSink([&](const std::string& id, const std::string&, std::string r) {
    written.push_back(id + (r.empty() ? " removed" : " written"));
  });
  Phone a, b;
  Value o = offer("f1", "ta", sdpFor(a.port()));
  answer("f1", "ta", "tb", sdpFor(b.port()));
  const uint16_t towardB = mPort(*o.string("sdp"));
  EXPECT_TRUE(relays(b, towardB, a, "before"));
  relay->setFenced(true);
  EXPECT_FALSE(relays(b, towardB, a, "fenced"));
  EXPECT_GE(relay->counters().drops[size_t(DropReason::kFenced)].load(), 1u);
  relay->setFenced(false);
  EXPECT_TRUE(relays(b, towardB, a, "after"));

  const auto writes = written.size();
  EXPECT_EQ(relay->dropCalls("relay-b"), 0u);  // none lives on relay-b's address
  EXPECT_EQ(relay->dropCalls(""), 1u);         // this relay's own address is held elsewhere
  EXPECT_EQ(written.size(), writes);           // the record is the holder's now
  EXPECT_EQ(shared.sessions.load(), 0);
  EXPECT_EQ(relay->ports().inUse(), 0u);
  EXPECT_FALSE(relays(b, towardB, a, "gone"));
}

// The address handed over while fenced: no socket of the call is bound (another process can bind
// its ports), and after the fence the call is relayed on the same ports again.
TEST_P(RelayTest, FencedRelayReleasesItsPortsAndBindsThemAgain) {
  Phone a, b;
  Value o = offer("r1", "ta", sdpFor(a.port()));
  Value an = answer("r1", "ta", "tb", sdpFor(b.port()));
  const uint16_t towardB = mPort(*o.string("sdp"));
  const uint16_t towardA = mPort(*an.string("sdp"));
  EXPECT_TRUE(relays(b, towardB, a, "before"));
  relay->setFenced(true);
  relay->releaseSockets();
  for (uint16_t port : {towardA, towardB, uint16_t(towardB + 1)}) {
    boost::asio::ip::udp::socket other(io, boost::asio::ip::udp::v4());
    boost::system::error_code ec;
    other.bind({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
    EXPECT_FALSE(ec) << "port " << port << " still bound: " << ec.message();
  }
  EXPECT_EQ(relay->rebindSockets(), 0u);
  relay->setFenced(false);
  EXPECT_TRUE(relays(b, towardB, a, "after"));
  EXPECT_TRUE(relays(a, towardA, b, "after, the other way"));
  EXPECT_EQ(relay->calls(), 1u);
}

TEST_P(RelayTest, AFencedCallWhosePortIsTakenMeanwhileIsDeleted) {
  std::vector<std::string> written;
  relay->setSessionSink([&](const std::string& id, const std::string&, std::string r) {
    written.push_back(id + (r.empty() ? " removed" : " written"));
  });
  Phone a, b;
  Value o = offer("r2", "ta", sdpFor(a.port()));
  answer("r2", "ta", "tb", sdpFor(b.port()));
  const uint16_t towardB = mPort(*o.string("sdp"));
  relay->setFenced(true);
  relay->releaseSockets();
  boost::asio::ip::udp::socket other(io, boost::asio::ip::udp::v4());
  other.bind({boost::asio::ip::make_address("127.0.0.1"), towardB});
  EXPECT_EQ(relay->rebindSockets(), 1u);
  relay->setFenced(false);
  EXPECT_EQ(relay->calls(), 0u);
  EXPECT_EQ(shared.sessions.load(), 0);
  ASSERT_FALSE(written.empty());
  EXPECT_EQ(written.back(), "r2 removed");
}

// media.state, a restart: the calls restored on the relay's own address hold their pairs in the
// port allocator, so new calls get other pairs (none is offered a port it cannot bind), and the
// pairs come back when the restored call ends.
TEST_P(RelayTest, RestoredOwnCallsHoldTheirPortsInTheAllocator) {
  make(0, 8);  // four pairs
  Phone a, b;
  Value o = offer("r1", "ta", sdpFor(a.port()));
  Value an = answer("r1", "ta", "tb", sdpFor(b.port()));
  ASSERT_EQ(an.string("result"), "ok");
  const uint16_t towardB = mPort(*o.string("sdp"));
  const uint16_t towardA = mPort(*an.string("sdp"));
  const std::set<uint16_t> restoredPorts{towardA, towardB};
  const SessionRecord record = relay->snapshot("r1");
  make(0, 8);  // the process restarted: nothing bound, every pair free
  ASSERT_TRUE(relay->restore(record, ""));
  EXPECT_EQ(relay->ports().inUse(), 2u);
  EXPECT_TRUE(relays(a, towardA, b, "restored"));
  EXPECT_TRUE(relays(b, towardB, a, "restored"));

  Phone c, d;
  Value o2 = offer("n1", "tc", sdpFor(c.port()));
  Value an2 = answer("n1", "tc", "td", sdpFor(d.port()));
  ASSERT_EQ(an2.string("result"), "ok") << an2.string("error-reason").value_or("");
  EXPECT_EQ(restoredPorts.count(mPort(*o2.string("sdp"))), 0u);
  EXPECT_EQ(restoredPorts.count(mPort(*an2.string("sdp"))), 0u);
  EXPECT_EQ(relay->ports().inUse(), 4u);
  EXPECT_EQ(offer("n2", "te", sdpFor(c.port())).string("result"), "error");  // all four taken

  Value del = Value::makeDict();
  del.set("call-id", "r1").set("from-tag", "ta");
  EXPECT_EQ(relay->remove(del).string("result"), "ok");
  EXPECT_EQ(relay->ports().inUse(), 2u);  // the restored call's pairs are free again
  Value o3 = offer("n3", "tf", sdpFor(c.port()));
  ASSERT_EQ(o3.string("result"), "ok") << o3.string("error-reason").value_or("");
  EXPECT_EQ(restoredPorts.count(mPort(*o3.string("sdp"))), 1u);
}

// media.state: a router's delete that reaches the address before the call is restored there (a
// restart or a takeover under way) keeps the call from coming back: the restore is refused and
// the record removed. Only for a while: a restore long after is not the delete's.
TEST_P(RelayTest, ACallDeletedBeforeItsRestoreIsNotRestored) {
  Phone a, b;
  offer("gone", "ta", sdpFor(a.port()));
  answer("gone", "ta", "tb", sdpFor(b.port()));
  offer("late", "ta", sdpFor(a.port()));
  const SessionRecord gone = relay->snapshot("gone");
  const SessionRecord late = relay->snapshot("late");
  make(0, 400);  // restarted: nothing restored yet
  std::vector<std::string> written;
  relay->setSessionSink([&](const std::string& id, const std::string& owner, std::string r) {
    written.push_back(id + " " + owner + (r.empty() ? " removed" : " written"));
  });
  Value del = Value::makeDict();
  del.set("call-id", "gone").set("from-tag", "ta");
  EXPECT_TRUE(relay->remove(del).has("warning"));  // not here yet
  del.set("call-id", "late");
  EXPECT_TRUE(relay->remove(del).has("warning"));
  auto refused = relay->restore(gone, "");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::kNotFound);
  EXPECT_EQ(written, (std::vector<std::string>{"gone  removed"}));
  EXPECT_EQ(relay->calls(), 0u);
  EXPECT_EQ(relay->ports().inUse(), 0u);
  clock.advance(std::chrono::seconds(31));
  relay->onTick();
  EXPECT_TRUE(relay->restore(late, ""));  // the delete was too long ago to be this call's
  EXPECT_EQ(relay->calls(), 1u);
}

TEST_P(RelayTest, RestoreRefusesARecordOfAnotherFamily) {
  SessionRecord r;
  r.callId = "v6";
  r.address = "::1";
  r.bind = "::1";
  EXPECT_FALSE(relay->restore(r, "relay-a"));
  EXPECT_EQ(relay->calls(), 0u);
}

INSTANTIATE_TEST_SUITE_P(PacketPath, RelayTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "IoUring" : "Epoll"; });

// settings.waitInRing (as MediaService runs it): the worker thread waits inside io_uring, relays
// there, and runs what is posted to its io_context as soon as wake() is called. The ring's idle
// wait is set to 30 s, far beyond the 5 s each step is given: a step that completes in time was
// served by wake() or by the packet itself, never by the wait running out.
TEST(RelayWaitInRing, RelaysAndRunsPostedWorkWithoutWaitingOutTheRing) {
  boost::asio::io_context io;
  RelayShared shared;
  RelaySettings settings;
  settings.advertise = "127.0.0.1";
  settings.waitInRing = true;
  settings.ringIdleWait = std::chrono::seconds(30);
  const uint16_t base = static_cast<uint16_t>(40000 + (::getpid() % 500) * 40);
  Relay relay(io, settings, PortRange{base, uint16_t(base + 39)}, shared);
  auto guard = boost::asio::make_work_guard(io);
  std::promise<void> exited;
  std::thread worker([&io, &exited] {
    io.run();
    exited.set_value();
  });
  constexpr auto kStep = std::chrono::seconds(5);
  // Runs fn on the worker (post + wake, as MediaService does) and waits for its result.
  auto onWorker = [&](auto fn) {
    std::promise<decltype(fn())> done;
    auto f = done.get_future();
    boost::asio::post(io, [&] { done.set_value(fn()); });
    relay.wake();
    EXPECT_EQ(f.wait_for(kStep), std::future_status::ready);
    return f.get();
  };
  Phone a, b;
  auto body = [](const char* cmd, const std::string& sdp) {
    Value v = Value::makeDict();
    v.set("command", cmd).set("call-id", "w1").set("from-tag", "ta").set("sdp", sdp);
    if (std::string_view(cmd) == "answer") {
      v.set("to-tag", "tb");
    }
    return v;
  };
  Value o = onWorker([&] { return relay.offer(body("offer", sdpFor(a.port()))); });
  ASSERT_EQ(o.string("result"), "ok");
  Value an = onWorker([&] { return relay.answer(body("answer", sdpFor(b.port()))); });
  ASSERT_EQ(an.string("result"), "ok");
  EXPECT_TRUE(onWorker([&] { return relay.waitsInRing(); }) ||
              std::string_view(relay.packetPath()) != "io_uring");
  const uint16_t towardB = mPort(*o.string("sdp"));
  const uint16_t towardA = mPort(*an.string("sdp"));
  // Waits (bounded by kStep) for a datagram on each phone.
  auto receiveBoth = [&](std::string& gotA, std::string& gotB) {
    const auto deadline = std::chrono::steady_clock::now() + kStep;
    while ((gotB.empty() || gotA.empty()) && std::chrono::steady_clock::now() < deadline) {
      if (gotB.empty()) {
        gotB = b.receive();
      }
      if (gotA.empty()) {
        gotA = a.receive();
      }
      if (gotB.empty() || gotA.empty()) {
        ::usleep(500);
      }
    }
  };
  for (int i = 0; i < 20; ++i) {
    const std::string ab = "a-to-b " + std::to_string(i), ba = "b-to-a " + std::to_string(i);
    a.sendTo(towardA, ab);  // the port A was given (in the answer), as in the tests above
    b.sendTo(towardB, ba);
    // Relayed in the pass that received it: a send left queued for the next pass would wait
    // for the 30 s idle wait.
    std::string gotA, gotB;
    receiveBoth(gotA, gotB);
    EXPECT_EQ(gotB, ab);
    EXPECT_EQ(gotA, ba);
    ::usleep(2000);  // the next exchange finds the worker waiting again
  }
  EXPECT_EQ(relay.counters().packetsRelayed.load(), 40u);
  Value d = onWorker([&] {
    Value v = Value::makeDict();
    v.set("command", "delete").set("call-id", "w1");
    return relay.remove(v);
  });
  EXPECT_EQ(d.string("result"), "ok");
  // Stopping: the worker leaves its io_uring wait when woken, not when the wait runs out.
  io.stop();
  relay.wake();
  EXPECT_EQ(exited.get_future().wait_for(kStep), std::future_status::ready);
  worker.join();
}

TEST(NgOptions, FlagsAndUnsupportedFeatures) {
  Value b = Value::makeDict();
  b.set("flags",
        Value(Value::List{"SIP source address", "strict_source", "asymmetric", "some-new-flag"}));
  b.set("received from", Value(Value::List{"IP4", "198.51.100.7"}));
  b.set("transport protocol", "RTP/AVP");
  auto o = readNgOptions(b);
  ASSERT_TRUE(o);
  EXPECT_TRUE(o->sipSourceAddress);
  EXPECT_TRUE(o->strictSource);
  EXPECT_TRUE(o->asymmetric);
  EXPECT_EQ(o->receivedFrom, "198.51.100.7");
  ASSERT_EQ(o->ignoredFlags.size(), 1u);

  for (auto [key, value] :
       {std::pair{"ICE", "force"}, std::pair{"record call", "yes"},
        std::pair{"transport-protocol", "RTP/SAVP"}, std::pair{"DTLS", "passive"}}) {
    Value u = Value::makeDict();
    u.set(key, value);
    EXPECT_FALSE(readNgOptions(u)) << key;
  }
  Value ok = Value::makeDict();
  ok.set("ICE", "remove").set("record-call", "no").set("DTLS", "off");
  EXPECT_TRUE(readNgOptions(ok));
}

}  // namespace
}  // namespace evosip::media
