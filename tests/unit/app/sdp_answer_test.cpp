#include <gtest/gtest.h>

#include <evosip/app/sdp_answer.hpp>
#include <evosip/sdp/session_description.hpp>

namespace evosip::app {
namespace {

std::string offer(const std::string& mline, const std::string& extra = "",
                  const std::string& addr = "192.0.2.10") {
  return "v=0\r\no=- 1 1 IN IP4 " + addr + "\r\ns=-\r\nc=IN IP4 " + addr + "\r\nt=0 0\r\n" + mline +
         "\r\n" + extra;
}

TEST(SdpAnswer, FirstSupportedCodecOfTheOfferWins) {
  auto n = negotiate(offer("m=audio 4000 RTP/AVP 18 8 0 101",
                           "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"));
  ASSERT_TRUE(n.has_value()) << n.error().message;
  EXPECT_EQ(n->law, audio::G711Law::kAlaw);
  EXPECT_EQ(n->payloadType, 8);
  ASSERT_TRUE(n->telephoneEvent.has_value());
  EXPECT_EQ(*n->telephoneEvent, 101);
  EXPECT_EQ(n->remoteAddress, "192.0.2.10");
  EXPECT_EQ(n->remotePort, 4000);
  EXPECT_TRUE(n->canSend());

  auto u = negotiate(offer("m=audio 4000 RTP/AVP 0 8"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->law, audio::G711Law::kUlaw);
  EXPECT_FALSE(u->telephoneEvent.has_value());
}

TEST(SdpAnswer, AReOfferKeepsTheCallsCodecWhenItIsStillOffered) {
  const std::string o = offer("m=audio 4000 RTP/AVP 0 8");
  EXPECT_EQ(negotiate(o)->law, audio::G711Law::kUlaw);
  EXPECT_EQ(negotiate(o, audio::G711Law::kAlaw)->law, audio::G711Law::kAlaw);
  EXPECT_EQ(negotiate(o, audio::G711Law::kAlaw)->payloadType, 8);
  EXPECT_EQ(negotiate(offer("m=audio 4000 RTP/AVP 0"), audio::G711Law::kAlaw)->law,
            audio::G711Law::kUlaw);
}

TEST(SdpAnswer, DynamicPayloadTypesByRtpmapName) {
  auto n = negotiate(offer("m=audio 4000 RTP/AVP 96 97",
                           "a=rtpmap:96 opus/48000/2\r\n"
                           "a=rtpmap:97 PCMA/8000\r\n"));
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->payloadType, 97);
  EXPECT_EQ(n->law, audio::G711Law::kAlaw);
}

TEST(SdpAnswer, NoG711IsRefused) {
  auto n =
      negotiate(offer("m=audio 4000 RTP/AVP 18 9 101", "a=rtpmap:101 telephone-event/8000\r\n"));
  ASSERT_FALSE(n.has_value());
  EXPECT_EQ(n.error().code, Errc::kInvalid);                              // the caller answers 488
  EXPECT_FALSE(negotiate(offer("m=audio 4000 RTP/SAVP 0")).has_value());  // no SRTP
  EXPECT_FALSE(negotiate(offer("m=video 4000 RTP/AVP 0")).has_value());
  EXPECT_FALSE(negotiate(offer("m=audio 0 RTP/AVP 0")).has_value());
  EXPECT_EQ(negotiate("not sdp").error().code, Errc::kParse);
}

TEST(SdpAnswer, AnswerCarriesTheChosenCodecTelephoneEventAndRefusedLines) {
  auto n = *negotiate(offer("m=video 5000 RTP/AVP 96\r\nm=audio 4000 RTP/AVP 0 8 101",
                            "a=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\n"));
  const std::string a = buildAnswer(n, {"10.1.1.1", false, 40000, 77, 2});
  auto sd = sdp::parse(a);
  ASSERT_TRUE(sd.has_value()) << sd.error().message << "\n" << a;
  ASSERT_EQ(sd->media.size(), 2u);
  EXPECT_EQ(sd->media[0].port, 0);  // video refused
  EXPECT_EQ(sd->media[1].port, 40000);
  ASSERT_EQ(sd->media[1].formats.size(), 2u);
  EXPECT_EQ(sd->media[1].formats[0], "0");
  EXPECT_EQ(sd->media[1].formats[1], "101");
  EXPECT_TRUE(sd->media[1].rtcpMux);
  EXPECT_EQ(sd->connection->address, "10.1.1.1");
  EXPECT_EQ(sd->origin.sessionVersion, "2");
  EXPECT_NE(a.find("a=rtpmap:0 PCMU/8000\r\n"), std::string::npos);
  EXPECT_NE(a.find("a=rtpmap:101 telephone-event/8000\r\n"), std::string::npos);
  EXPECT_NE(a.find("a=sendrecv\r\n"), std::string::npos);
}

TEST(SdpAnswer, HoldStopsSendingAndMirrorsTheDirection) {
  auto sendonly = *negotiate(offer("m=audio 4000 RTP/AVP 0", "a=sendonly\r\n"));
  EXPECT_TRUE(sendonly.hold);
  EXPECT_FALSE(sendonly.canSend());
  EXPECT_EQ(answerDirection(sendonly), sdp::Direction::kRecvOnly);
  auto inactive = *negotiate(offer("m=audio 4000 RTP/AVP 0", "a=inactive\r\n"));
  EXPECT_FALSE(inactive.canSend());
  EXPECT_EQ(answerDirection(inactive), sdp::Direction::kInactive);
  auto zero = *negotiate(offer("m=audio 4000 RTP/AVP 0", "", "0.0.0.0"));
  EXPECT_TRUE(zero.hold);
  EXPECT_FALSE(zero.canSend());
  EXPECT_EQ(answerDirection(zero), sdp::Direction::kRecvOnly);
  auto recvonly = *negotiate(offer("m=audio 4000 RTP/AVP 0", "a=recvonly\r\n"));
  EXPECT_TRUE(recvonly.canSend());
  EXPECT_EQ(answerDirection(recvonly), sdp::Direction::kSendOnly);
}

TEST(SdpAnswer, Ipv6) {
  auto n = negotiate(
      "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 2001:db8::5\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 8\r\n");
  ASSERT_TRUE(n.has_value());
  EXPECT_TRUE(n->remoteIpv6);
  const std::string a = buildAnswer(*n, {"2001:db8::1", true, 40002, 1, 1});
  EXPECT_NE(a.find("c=IN IP6 2001:db8::1\r\n"), std::string::npos);
}

}  // namespace
}  // namespace evosip::app
