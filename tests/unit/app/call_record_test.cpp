// A stored call of the app (app.state) round-trips through its JSON form, and what another
// process could have written into the store is refused whole: not JSON, a missing or mistyped
// field, a value out of range, more routes or parameters than the limits allow, a record larger
// than max_bytes.
#include <gtest/gtest.h>

#include <evosip/app/call_record.hpp>

namespace evosip::app {
namespace {

CallRecord sample() {
  CallRecord r;
  r.callId = "c1@host";
  r.localTag = "app7";
  r.remoteTag = "caller9";
  r.fromValue = "<sip:alice@evosip.local>;tag=caller9";
  r.toValue = "<sip:100@evosip.local>;tag=app7";
  r.remoteTarget = "sip:alice@10.0.0.5:5060";
  r.routeSet = {"<sip:10.0.0.1:5060;lr>", "<sip:10.0.0.2:5060;lr>"};
  r.sourceHost = "10.0.0.1";
  r.sourcePort = 5060;
  r.localCseq = 1;
  r.remoteCseq = 2;
  r.remoteSdp = "v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\n";
  r.sessionId = 18446744073709551615u;
  r.sdpVersion = 3;
  r.action = "Playback";
  r.params = {{"Action", "Playback"}, {"Sound", "welcome"}};
  r.startedMs = 1765000000000;
  return r;
}

TEST(CallRecordTest, RoundTrips) {
  const CallRecord r = sample();
  auto back = decodeCallRecord(encodeCallRecord(r), CallRecordLimits{});
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->callId, r.callId);
  EXPECT_EQ(back->localTag, r.localTag);
  EXPECT_EQ(back->remoteTag, r.remoteTag);
  EXPECT_EQ(back->fromValue, r.fromValue);
  EXPECT_EQ(back->toValue, r.toValue);
  EXPECT_EQ(back->remoteTarget, r.remoteTarget);
  EXPECT_EQ(back->routeSet, r.routeSet);
  EXPECT_EQ(back->sourceHost, r.sourceHost);
  EXPECT_EQ(back->sourcePort, r.sourcePort);
  EXPECT_EQ(back->localCseq, r.localCseq);
  EXPECT_EQ(back->remoteCseq, r.remoteCseq);
  EXPECT_EQ(back->remoteSdp, r.remoteSdp);
  EXPECT_EQ(back->sessionId, r.sessionId);
  EXPECT_EQ(back->sdpVersion, r.sdpVersion);
  EXPECT_EQ(back->action, r.action);
  EXPECT_EQ(back->params, r.params);
  EXPECT_EQ(back->startedMs, r.startedMs);
}

TEST(CallRecordTest, RefusesWhatDoesNotDecodeWhole) {
  const std::string good = encodeCallRecord(sample());
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  for (const std::string& bad : {
           std::string("{not json"),
           std::string("[1,2]"),
           std::string("{\"v\":1,\"id\":\"x\"}"),
           with("\"v\":1", "\"v\":2"),
           with("\"id\":\"c1@host\"", "\"id\":\"\""),
           with("\"sp\":5060", "\"sp\":70000"),
           with("\"lc\":1", "\"lc\":-1"),
           with("\"si\":\"18446744073709551615\"", "\"si\":\"12x\""),
           with("\"rs\":[", "\"rs\":[1,"),
           with("\"pa\":[", "\"pa\":[[\"a\"],"),
           with("\"ac\":\"Playback\"", "\"ac\":7"),
       }) {
    auto r = decodeCallRecord(bad, CallRecordLimits{});
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_FALSE(r.error().message.empty());
    }
  }
}

TEST(CallRecordTest, RefusesOversizedRecordsAndLists) {
  CallRecordLimits limits;
  limits.maxRoutes = 1;
  EXPECT_FALSE(decodeCallRecord(encodeCallRecord(sample()), limits));
  limits = CallRecordLimits{};
  limits.maxBytes = 100;
  auto r = decodeCallRecord(encodeCallRecord(sample()), limits);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTooLarge);
  CallRecord big = sample();
  big.remoteSdp.assign(5000, 'x');
  EXPECT_FALSE(decodeCallRecord(encodeCallRecord(big), CallRecordLimits{}));
}

}  // namespace
}  // namespace evosip::app
