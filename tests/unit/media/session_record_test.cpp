// The stored form of a media session (media.state): what a relay writes is what another reads
// back, and a record from the store that is malformed, oversized or out of range is refused whole.
#include <gtest/gtest.h>

#include <evosip/media/session_record.hpp>

namespace evosip::media {
namespace {

Endpoint ep(const char* ip, uint16_t port) {
  return *Endpoint::parse(ip, port);
}

SessionRecord sample() {
  SessionRecord r;
  r.callId = "a84b4c76e66710@pc33.example.com";
  r.address = "10.0.3.1";
  r.bind = "10.0.3.1";
  r.createdWall = 1700000000;
  r.lastSignalWall = 1700000005;
  for (const char* tag : {"caller-tag", "callee-tag"}) {
    LegRecord l;
    l.tag = tag;
    l.label = "caller";
    l.viaBranch = "z9hG4bK776asdhds";
    l.policy = {false, true, false};
    l.peer = r.legs.empty() ? 1 : 0;
    l.createdWall = 1700000000;
    SlotRecord m;
    m.type = "audio";
    m.protocol = "RTP/AVP";
    m.open = true;
    m.rtp = {30000, ep("192.0.2.7", 40000), ep("192.0.2.7", 40000), ep("10.1.1.7", 4000), true,
             true};
    m.rtcp = {30001, ep("192.0.2.7", 40001), {}, ep("10.1.1.7", 4001), false, false};
    l.media.push_back(m);
    SlotRecord rejected;
    rejected.type = "video";
    rejected.protocol = "RTP/AVP";
    rejected.rejected = true;
    l.media.push_back(rejected);
    r.legs.push_back(l);
  }
  return r;
}

bool sameStream(const StreamRecord& a, const StreamRecord& b) {
  return a.port == b.port && a.destination == b.destination && a.signalled == b.signalled &&
         a.advertised == b.advertised && a.signalledFromSip == b.signalledFromSip &&
         a.latched == b.latched;
}

TEST(SessionRecordTest, RoundTripKeepsEveryField) {
  const SessionRecord r = sample();
  const std::string text = encodeSessionRecord(r);
  EXPECT_LT(text.size(), 1200u) << text;  // compact: one record per call in the store
  auto back = decodeSessionRecord(text, RecordLimits{});
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->callId, r.callId);
  EXPECT_EQ(back->address, r.address);
  EXPECT_EQ(back->bind, r.bind);
  EXPECT_EQ(back->createdWall, r.createdWall);
  EXPECT_EQ(back->lastSignalWall, r.lastSignalWall);
  ASSERT_EQ(back->legs.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const LegRecord& a = r.legs[i];
    const LegRecord& b = back->legs[i];
    EXPECT_EQ(b.tag, a.tag);
    EXPECT_EQ(b.label, a.label);
    EXPECT_EQ(b.viaBranch, a.viaBranch);
    EXPECT_EQ(b.peer, a.peer);
    EXPECT_EQ(b.policy.strictSource, true);
    EXPECT_EQ(b.policy.asymmetric, false);
    ASSERT_EQ(b.media.size(), 2u);
    EXPECT_TRUE(b.media[0].open);
    EXPECT_TRUE(sameStream(b.media[0].rtp, a.media[0].rtp));
    EXPECT_TRUE(sameStream(b.media[0].rtcp, a.media[0].rtcp));
    EXPECT_FALSE(b.media[1].open);
    EXPECT_TRUE(b.media[1].rejected);
    EXPECT_EQ(b.media[1].type, "video");
  }
}

TEST(SessionRecordTest, IPv6RoundTrip) {
  SessionRecord r = sample();
  r.address = "2001:db8::1";
  r.bind = "2001:db8::1";
  r.legs[0].media[0].rtp.destination = ep("2001:db8::7", 40000);
  auto back = decodeSessionRecord(encodeSessionRecord(r), RecordLimits{});
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->legs[0].media[0].rtp.destination.str(), "[2001:db8::7]:40000");
}

// Each case changes one thing of a good record; each must be refused.
TEST(SessionRecordTest, HostileRecordsAreRefused) {
  const std::string good = encodeSessionRecord(sample());
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? s : s.replace(at, from.size(), to);
  };
  const RecordLimits limits;
  const std::vector<std::string> bad = {
      "",
      "null",
      "[]",
      "{",
      with("\"v\":1", "\"v\":2"),
      with("\"v\":1", "\"v\":\"1\""),
      with("\"p\":30000", "\"p\":0"),
      with("\"p\":30000", "\"p\":65536"),
      with("\"p\":30000", "\"p\":-1"),
      with("\"p\":30000", "\"p\":3.5"),
      with("[\"192.0.2.7\",40000]", "[\"192.0.2.7\",70000]"),
      with("[\"192.0.2.7\",40000]", "[\"not-an-ip\",40000]"),
      with("[\"192.0.2.7\",40000]", "[\"192.0.2.7\"]"),
      with("[\"192.0.2.7\",40000]", "\"192.0.2.7:40000\""),
      with("\"pe\":1", "\"pe\":2"),
      with("\"pe\":1", "\"pe\":-2"),
      with("\"a\":\"10.0.3.1\"", "\"a\":\"0.0.0.0\""),
      with("\"b\":\"10.0.3.1\"", "\"b\":\"::1\""),
      with("\"id\":\"a84b4c76e66710@pc33.example.com\"", "\"id\":\"\""),
      with("\"p\":\"s\"", "\"p\":\"sx\""),
      with("\"la\":true", "\"la\":1"),
      with("\"t\":\"caller-tag\"", "\"t\":\"" + std::string(2000, 'x') + "\""),
      with("\"ty\":\"audio\"", "\"ty\":{\"deep\":[[[[[[[[1]]]]]]]]}"),
      with("\"rc\":{", "\"rx\":{"),  // an open slot without its RTCP stream
  };
  for (const auto& text : bad) {
    EXPECT_FALSE(decodeSessionRecord(text, limits)) << text;
  }
  RecordLimits small;
  small.maxLegs = 1;
  EXPECT_FALSE(decodeSessionRecord(good, small));
  small = {};
  small.maxStreams = 1;
  EXPECT_FALSE(decodeSessionRecord(good, small));
  small = {};
  small.maxBytes = good.size() - 1;
  EXPECT_EQ(decodeSessionRecord(good, small).error().code, Errc::kTooLarge);
}

TEST(SessionRecordTest, Heartbeats) {
  const Heartbeat hb{false, "relay-b", "10.0.3.1", "10.0.3.1:2223"};
  auto back = decodeHeartbeat(encodeHeartbeat(hb));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_FALSE(back->stopped);
  EXPECT_EQ(back->by, "relay-b");
  EXPECT_EQ(back->address, "10.0.3.1");
  EXPECT_EQ(back->ng, "10.0.3.1:2223");
  EXPECT_TRUE(decodeHeartbeat(encodeHeartbeat(Heartbeat{true, "", "", ""}))->stopped);
  for (const char* bad : {"", "1", "{}", R"({"by":"x","a":"nope","ng":"1.2.3.4:1"})",
                          R"({"by":"","a":"10.0.0.1","ng":"1.2.3.4:1"})",
                          R"({"by":"x","a":"0.0.0.0","ng":"1.2.3.4:1"})"}) {
    EXPECT_FALSE(decodeHeartbeat(bad)) << bad;
  }
}

}  // namespace
}  // namespace evosip::media
