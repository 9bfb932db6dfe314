#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

#include <evosip/sdp/sdp.hpp>

namespace evosip::sdp {
namespace {

std::string readSdp(const std::string& name) {
  std::ifstream in(std::string(EVOSIP_TEST_DATA_DIR) + "/sdp/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string rewritten(const std::string& text, const RewriteOptions& opt) {
  auto sd = parse(text);
  EXPECT_TRUE(sd) << sd.error().message;
  if (!sd) {
    return {};
  }
  auto out = rewrite(*sd, opt);
  EXPECT_TRUE(out) << out.error().message;
  return out ? *out : std::string();
}

std::string crlf(std::string lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') {
      out += '\r';
    }
    out += c;
  }
  return out;
}

TEST(SdpRewrite, NoOptionsIsByteForByte) {
  for (const char* name :
       {"baresip_offer.sdp", "sipp_offer.sdp", "linphone_ice_offer.sdp", "ipv6_offer.sdp",
        "hold_reoffer.sdp", "audio_video_offer.sdp", "webrtc_offer.sdp"}) {
    const std::string text = readSdp(name);
    EXPECT_EQ(rewritten(text, {}), text) << name;
  }
  // Bare LF in, CRLF out.
  const std::string lf = readSdp("lf_only_offer.sdp");
  EXPECT_EQ(rewritten(lf, {}), crlf(lf));
}

TEST(SdpRewrite, SippOfferThroughTheRelay) {
  RewriteOptions opt;
  opt.media.push_back({"203.0.113.5", 30000, 0});
  EXPECT_EQ(rewritten(readSdp("sipp_offer.sdp"), opt),
            crlf("v=0\n"
                 "o=user1 53655765 2353687637 IN IP4 127.0.0.1\n"
                 "s=-\n"
                 "c=IN IP4 203.0.113.5\n"
                 "t=0 0\n"
                 "m=audio 30000 RTP/AVP 0\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=rtcp:30001\n"));
}

TEST(SdpRewrite, ReplaceOriginBumpVersionAndIpv6Relay) {
  RewriteOptions opt;
  opt.media.push_back({"2001:db8::1", 40000, 40001});
  opt.replaceOrigin = true;
  opt.bumpOriginVersion = true;
  EXPECT_EQ(rewritten(readSdp("sipp_offer.sdp"), opt),
            crlf("v=0\n"
                 "o=user1 53655765 2353687638 IN IP6 2001:db8::1\n"
                 "s=-\n"
                 "c=IN IP6 2001:db8::1\n"
                 "t=0 0\n"
                 "m=audio 40000 RTP/AVP 0\n"
                 "a=rtpmap:0 PCMU/8000\n"
                 "a=rtcp:40001\n"));
  // An explicit origin address wins over the media address; version kept when not asked.
  opt.originAddress = "192.0.2.99";
  opt.bumpOriginVersion = false;
  const std::string out = rewritten(readSdp("sipp_offer.sdp"), opt);
  EXPECT_NE(out.find("o=user1 53655765 2353687637 IN IP4 192.0.2.99\r\n"), std::string::npos);
}

TEST(SdpRewrite, IceRemovedAndRtcpAddressDropped) {
  RewriteOptions opt;
  opt.media.push_back({"203.0.113.5", 30000, 30001});
  opt.removeIce = true;
  opt.replaceOrigin = true;
  EXPECT_EQ(rewritten(readSdp("linphone_ice_offer.sdp"), opt),
            crlf("v=0\n"
                 "o=alice 1851 3542 IN IP4 203.0.113.5\n"
                 "s=Talk\n"
                 "c=IN IP4 203.0.113.5\n"
                 "t=0 0\n"
                 "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\n"
                 "a=record:off\n"
                 "m=audio 30000 RTP/AVP 96 97 98 0 8 18 101 99 100\n"
                 "c=IN IP4 203.0.113.5\n"
                 "a=rtpmap:96 opus/48000/2\n"
                 "a=fmtp:96 useinbandfec=1\n"
                 "a=rtpmap:97 speex/16000\n"
                 "a=fmtp:97 vbr=on\n"
                 "a=rtpmap:98 speex/8000\n"
                 "a=fmtp:98 vbr=on\n"
                 "a=fmtp:18 annexb=yes\n"
                 "a=rtpmap:101 telephone-event/48000\n"
                 "a=rtpmap:99 telephone-event/16000\n"
                 "a=rtpmap:100 telephone-event/8000\n"
                 "a=rtcp:30001\n"
                 "a=rtcp-fb:* trr-int 1000\n"
                 "a=rtcp-fb:* ccm tmmbr\n"));
}

TEST(SdpRewrite, HoldKeepsDirectionButWritesRelayAddress) {
  RewriteOptions opt;
  opt.media.push_back({"203.0.113.5", 30000, 0});
  const std::string out = rewritten(readSdp("hold_reoffer.sdp"), opt);
  EXPECT_NE(out.find("c=IN IP4 203.0.113.5\r\n"), std::string::npos);
  EXPECT_EQ(out.find("0.0.0.0"), std::string::npos);
  EXPECT_NE(out.find("a=sendonly\r\n"), std::string::npos);
  auto again = parse(out);
  ASSERT_TRUE(again);
  EXPECT_TRUE(isOnHold(*again, again->media[0]));  // still visible as hold
}

TEST(SdpRewrite, TwoStreamsDifferentAddressesGetMediaLevelC) {
  RewriteOptions opt;
  opt.media.push_back({"203.0.113.5", 30000, 0});
  opt.media.push_back({"203.0.113.6", 30010, 0});
  const std::string out = rewritten(readSdp("audio_video_offer.sdp"), opt);
  EXPECT_EQ(out, crlf("v=0\n"
                      "o=zoiper 2038 1 IN IP4 192.0.2.44\n"
                      "s=Z\n"
                      "c=IN IP4 203.0.113.5\n"
                      "b=AS:2048\n"
                      "t=0 0\n"
                      "a=msid-semantic: WMS\n"
                      "m=audio 30000 RTP/AVP 0 8 3 101\n"
                      "a=rtpmap:0 PCMU/8000\n"
                      "a=rtpmap:8 PCMA/8000\n"
                      "a=rtpmap:3 GSM/8000\n"
                      "a=rtpmap:101 telephone-event/8000\n"
                      "a=fmtp:101 0-16\n"
                      "a=sendrecv\n"
                      "a=rtcp:30001\n"
                      "m=video 30010 RTP/AVP 99 34\n"
                      "c=IN IP4 203.0.113.6\n"
                      "b=TIAS:1500000\n"
                      "a=rtpmap:99 H264/90000\n"
                      "a=fmtp:99 profile-level-id=42801F;packetization-mode=1\n"
                      "a=rtpmap:34 H263/90000\n"
                      "a=rtcp-fb:99 nack pli\n"
                      "a=rtcp-fb:99 ccm fir\n"
                      "a=sendrecv\n"
                      "a=rtcp:30011\n"));
  auto again = parse(out);
  ASSERT_TRUE(again);
  EXPECT_EQ(effectiveConnection(*again, again->media[0])->address, "203.0.113.5");
  EXPECT_EQ(effectiveConnection(*again, again->media[1])->address, "203.0.113.6");
}

TEST(SdpRewrite, UntouchedStreamKeepsItsOldSessionAddress) {
  RewriteOptions opt;
  opt.media.push_back({"203.0.113.5", 30000, 0});  // only the audio stream is relayed
  const std::string out = rewritten(readSdp("audio_video_offer.sdp"), opt);
  auto again = parse(out);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(effectiveConnection(*again, again->media[0])->address, "203.0.113.5");
  EXPECT_EQ(effectiveConnection(*again, again->media[1])->address, "192.0.2.44");
  EXPECT_EQ(again->media[1].port, 8002);
}

TEST(SdpRewrite, RejectedStreamStaysZero) {
  const std::string text =
      "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\na=rtcp:4\r\n";
  RewriteOptions opt;
  opt.media.push_back({"203.0.113.5", 30000, 0});
  opt.media.push_back({"203.0.113.5", 30002, 0});
  EXPECT_EQ(rewritten(text, opt),
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"
            "m=audio 30000 RTP/AVP 0\r\na=rtcp:30001\r\nm=video 0 RTP/AVP 31\r\na=rtcp:4\r\n");
}

TEST(SdpRewrite, RtcpMuxPortCountAndNoSessionC) {
  RewriteOptions opt;
  opt.media.push_back({"198.51.100.1", 50000, 0});
  opt.removeIce = true;
  const std::string out = rewritten(readSdp("webrtc_offer.sdp"), opt);
  EXPECT_NE(out.find("m=audio 50000 UDP/TLS/RTP/SAVPF 111 63"), std::string::npos);
  EXPECT_NE(out.find("\r\nc=IN IP4 198.51.100.1\r\na=rtcp:50000\r\n"), std::string::npos);
  EXPECT_EQ(out.find("candidate"), std::string::npos);
  EXPECT_EQ(out.find("ice-"), std::string::npos);
  EXPECT_NE(out.find("a=fingerprint:"), std::string::npos);  // DTLS is not ICE

  const std::string text =
      "v=0\n o=- 1 1 IN IP4 h\n";  // (a bad one, only to check that errors pass through)
  EXPECT_FALSE(parse(text));

  const std::string counted =
      "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=video 49170/2 RTP/AVP 31\r\n";
  RewriteOptions o2;
  o2.media.push_back({"192.0.2.7", 1000, 1001});
  EXPECT_EQ(rewritten(counted, o2),
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n"
            "m=video 1000/2 RTP/AVP 31\r\nc=IN IP4 192.0.2.7\r\n"
            "a=rtcp:1001\r\n");
}

TEST(SdpRewrite, MediaLevelCInsertedAfterInfoLine) {
  const std::string text =
      "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\ni=main\r\nb=AS:1\r\n";
  RewriteOptions opt;
  opt.media.push_back({"192.0.2.7", 1000, 0});
  opt.addRtcp = false;
  EXPECT_EQ(rewritten(text, opt),
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n"
            "m=audio 1000 RTP/AVP 0\r\ni=main\r\nc=IN IP4 192.0.2.7\r\n"
            "b=AS:1\r\n");
}

TEST(SdpRewrite, DirectionOverride) {
  RewriteOptions opt;
  opt.direction = Direction::kInactive;
  const std::string text =
      "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\na=sendonly\r\nm=audio 1 RTP/AVP 0\r\n"
      "a=recvonly\r\na=ptime:20\r\nm=video 2 RTP/AVP 31\r\n";
  EXPECT_EQ(rewritten(text, opt),
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n"
            "m=audio 1 RTP/AVP 0\r\na=ptime:20\r\na=inactive\r\n"
            "m=video 2 RTP/AVP 31\r\na=inactive\r\n");
}

TEST(SdpRewrite, RejectsBadAddresses) {
  const std::string text = readSdp("sipp_offer.sdp");  // the description views it
  auto sd = parse(text);
  ASSERT_TRUE(sd);
  RewriteOptions opt;
  opt.media.push_back({"1.2.3.4\r\na=evil", 1000, 0});
  auto r = rewrite(*sd, opt);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalid);
  RewriteOptions origin;
  origin.replaceOrigin = true;
  EXPECT_EQ(rewrite(*sd, origin).error().message, "sdp rewrite: replace origin without an address");
  RewriteOptions high;
  high.media.push_back({"1.2.3.4", 65535, 0});
  EXPECT_FALSE(rewrite(*sd, high));
  high.media[0].rtcpPort = 1;
  EXPECT_TRUE(rewrite(*sd, high));
}

TEST(SdpRewrite, EveryVectorRewritesToParseableSdp) {
  for (const char* name :
       {"baresip_offer.sdp", "sipp_offer.sdp", "linphone_ice_offer.sdp", "ipv6_offer.sdp",
        "hold_reoffer.sdp", "audio_video_offer.sdp", "lf_only_offer.sdp", "webrtc_offer.sdp"}) {
    const std::string text = readSdp(name);
    auto sd = parse(text);
    ASSERT_TRUE(sd) << name;
    RewriteOptions opt;
    for (size_t i = 0; i < sd->media.size(); ++i) {
      opt.media.push_back({"192.0.2.200", static_cast<uint16_t>(20000 + 2 * i), 0});
    }
    opt.removeIce = true;
    opt.replaceOrigin = true;
    auto out = rewrite(*sd, opt);
    ASSERT_TRUE(out) << name;
    auto again = parse(*out);
    ASSERT_TRUE(again) << name << ": " << again.error().message;
    ASSERT_EQ(again->media.size(), sd->media.size());
    EXPECT_EQ(again->origin.address, "192.0.2.200");
    for (size_t i = 0; i < again->media.size(); ++i) {
      const auto& m = again->media[i];
      EXPECT_EQ(effectiveConnection(*again, m)->address, "192.0.2.200") << name;
      EXPECT_EQ(m.port, 20000 + 2 * i) << name;
      EXPECT_EQ(effectiveRtcpPort(m), m.rtcpMux ? m.port : m.port + 1) << name;
      EXPECT_EQ(m.attributeValues("candidate").size(), 0u);
      EXPECT_EQ(m.formats, sd->media[i].formats);
      EXPECT_EQ(effectiveDirection(*again, m), effectiveDirection(*sd, sd->media[i]));
    }
  }
}

}  // namespace
}  // namespace evosip::sdp
