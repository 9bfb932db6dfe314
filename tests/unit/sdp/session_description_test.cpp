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

std::string parseError(std::string_view text, const Limits& limits = {}) {
  auto sd = parse(text, limits);
  EXPECT_FALSE(sd) << "accepted: " << text;
  return sd ? std::string() : sd.error().message;
}

TEST(SdpParse, SippOffer) {
  const std::string text = readSdp("sipp_offer.sdp");
  auto sd = parse(text);
  ASSERT_TRUE(sd) << sd.error().message;
  EXPECT_EQ(sd->version, "0");
  EXPECT_EQ(sd->origin.username, "user1");
  EXPECT_EQ(sd->origin.sessionId, "53655765");
  EXPECT_EQ(sd->origin.sessionVersion, "2353687637");
  EXPECT_EQ(sd->origin.netType, "IN");
  EXPECT_EQ(sd->origin.addrType, "IP4");
  EXPECT_EQ(sd->origin.address, "127.0.0.1");
  EXPECT_EQ(sd->origin.type, AddrType::kIp4);
  EXPECT_EQ(sd->sessionName, "-");
  ASSERT_TRUE(sd->connection);
  EXPECT_EQ(sd->connection->address, "127.0.0.1");
  EXPECT_EQ(sd->connection->type, AddrType::kIp4);
  ASSERT_EQ(sd->times.size(), 1u);
  EXPECT_EQ(sd->times[0], "0 0");
  ASSERT_EQ(sd->media.size(), 1u);
  const auto& m = sd->media[0];
  EXPECT_EQ(m.media, "audio");
  EXPECT_EQ(m.port, 6000);
  EXPECT_EQ(m.portCount, 1);
  EXPECT_EQ(m.proto, "RTP/AVP");
  EXPECT_EQ(m.formats, (std::vector<std::string_view>{"0"}));
  EXPECT_FALSE(m.connection);
  EXPECT_TRUE(m.isRtp());
  EXPECT_EQ(effectiveConnection(*sd, m)->address, "127.0.0.1");
  EXPECT_EQ(effectiveRtcpPort(m), 6001);
  EXPECT_EQ(effectiveDirection(*sd, m), Direction::kSendRecv);
  EXPECT_FALSE(isOnHold(*sd, m));
  // Views into the input.
  EXPECT_GE(sd->origin.address.data(), text.data());
  EXPECT_LE(sd->origin.address.data() + sd->origin.address.size(), text.data() + text.size());
}

TEST(SdpParse, BaresipOfferKeepsAttributesInOrder) {
  const std::string text = readSdp("baresip_offer.sdp");
  auto sd = parse(text);
  ASSERT_TRUE(sd) << sd.error().message;
  ASSERT_EQ(sd->media.size(), 1u);
  const auto& m = sd->media[0];
  EXPECT_EQ(m.formats, (std::vector<std::string_view>{"96", "97", "9", "0", "8", "101"}));
  ASSERT_EQ(m.bandwidths.size(), 1u);
  EXPECT_EQ(m.bandwidths[0].type, "AS");
  EXPECT_EQ(m.bandwidths[0].value, 128u);
  ASSERT_EQ(m.attributes.size(), 14u);
  EXPECT_EQ(m.attributes[0].name, "rtpmap");
  EXPECT_EQ(m.attributes[0].value, "96 opus/48000/2");
  EXPECT_EQ(m.attributes[11].name, "ssrc");
  EXPECT_EQ(m.attributes[12].name, "rtcp-rsize");
  EXPECT_FALSE(m.attributes[12].hasValue);
  EXPECT_EQ(m.direction, Direction::kSendRecv);
  EXPECT_EQ(m.attributeValues("rtpmap").size(), 6u);
  EXPECT_EQ(m.attribute("ptime")->value, "20");
  EXPECT_EQ(m.attribute("nope"), nullptr);
  // The section's lines: m=, b=, 14 a=.
  ASSERT_EQ(m.lines.size(), 16u);
  EXPECT_EQ(m.lines[0].type, 'm');
  EXPECT_EQ(m.lines[1].type, 'b');
  EXPECT_EQ(sd->lines.size(), 5u);  // v o s c t

  auto opus = parseRtpmap(m.attributes[0].value);
  ASSERT_TRUE(opus);
  EXPECT_EQ(opus->payloadType, 96);
  EXPECT_EQ(opus->encoding, "opus");
  EXPECT_EQ(opus->clockRate, 48000u);
  EXPECT_EQ(opus->channels, 2u);
  auto fmtp = parseFmtp(m.attribute("fmtp")->value);
  ASSERT_TRUE(fmtp);
  EXPECT_EQ(fmtp->format, "96");
  EXPECT_EQ(fmtp->parameters, "stereo=1;sprop-stereo=1");
}

TEST(SdpParse, LinphoneIceOffer) {
  const std::string text = readSdp("linphone_ice_offer.sdp");
  auto sd = parse(text);
  ASSERT_TRUE(sd) << sd.error().message;
  EXPECT_EQ(sd->attribute("ice-ufrag")->value, "0e8f2a1b");
  EXPECT_TRUE(sd->hasAttribute("ice-pwd"));
  EXPECT_FALSE(sd->iceLite);
  const auto& m = sd->media[0];
  ASSERT_TRUE(m.connection);
  EXPECT_EQ(m.connection->address, "198.51.100.7");
  EXPECT_EQ(m.rtcpPort, 7079);
  ASSERT_TRUE(m.rtcpAddress);
  EXPECT_EQ(m.rtcpAddress->address, "198.51.100.7");
  EXPECT_EQ(effectiveRtcpPort(m), 7079);
  auto candidates = m.attributeValues("candidate");
  ASSERT_EQ(candidates.size(), 4u);
  auto host = parseCandidate(candidates[0]);
  ASSERT_TRUE(host) << host.error().message;
  EXPECT_EQ(host->foundation, "1");
  EXPECT_EQ(host->component, 1u);
  EXPECT_EQ(host->transport, "UDP");
  EXPECT_EQ(host->priority, 2130706303u);
  EXPECT_EQ(host->address, "10.0.0.12");
  EXPECT_EQ(host->port, 7078);
  EXPECT_EQ(host->type, "host");
  EXPECT_EQ(host->relatedAddress, "");
  auto srflx = parseCandidate(candidates[3]);
  ASSERT_TRUE(srflx);
  EXPECT_EQ(srflx->component, 2u);
  EXPECT_EQ(srflx->type, "srflx");
  EXPECT_EQ(srflx->relatedAddress, "10.0.0.12");
  EXPECT_EQ(srflx->relatedPort, 7079);
  EXPECT_TRUE(m.hasAttribute("end-of-candidates"));
  EXPECT_EQ(m.attribute("ice-options")->value, "trickle");
}

TEST(SdpParse, WebRtcOfferWithRtcpMux) {
  const std::string text = readSdp("webrtc_offer.sdp");
  auto sd = parse(text);
  ASSERT_TRUE(sd) << sd.error().message;
  EXPECT_FALSE(sd->connection);
  const auto& m = sd->media[0];
  EXPECT_EQ(m.proto, "UDP/TLS/RTP/SAVPF");
  EXPECT_TRUE(m.isRtp());
  EXPECT_TRUE(m.rtcpMux);
  EXPECT_EQ(m.rtcpPort, 9);
  EXPECT_EQ(effectiveRtcpPort(m), 9);
  // c=IN IP4 0.0.0.0 with ICE is the RFC 8839 placeholder, not hold.
  EXPECT_TRUE(effectiveConnection(*sd, m)->isHoldAddress());
  EXPECT_FALSE(isOnHold(*sd, m));
  auto ext = parseCandidate(m.attributeValues("candidate")[1]);
  ASSERT_TRUE(ext);
  EXPECT_EQ(ext->relatedPort, 54400);
  EXPECT_EQ(ext->extensions, "generation 0 network-id 1");
}

TEST(SdpParse, Ipv6Offer) {
  const std::string text = readSdp("ipv6_offer.sdp");
  auto sd = parse(text);
  ASSERT_TRUE(sd) << sd.error().message;
  EXPECT_EQ(sd->origin.type, AddrType::kIp6);
  EXPECT_EQ(sd->connection->type, AddrType::kIp6);
  EXPECT_EQ(sd->connection->address, "2001:db8::20");
  EXPECT_EQ(sd->sessionName, "SIP Call");
  EXPECT_EQ(sd->media[0].rtcpAddress->type, AddrType::kIp6);
  EXPECT_EQ(effectiveRtcpPort(sd->media[0]), 40377);
}

TEST(SdpParse, HoldReoffer) {
  const std::string text = readSdp("hold_reoffer.sdp");
  auto sd = parse(text);
  ASSERT_TRUE(sd) << sd.error().message;
  EXPECT_TRUE(sd->connection->isHoldAddress());
  EXPECT_EQ(sd->media[0].direction, Direction::kSendOnly);
  EXPECT_TRUE(isOnHold(*sd, sd->media[0]));
}

TEST(SdpParse, AudioVideoOffer) {
  const std::string text = readSdp("audio_video_offer.sdp");
  auto sd = parse(text);
  ASSERT_TRUE(sd) << sd.error().message;
  ASSERT_EQ(sd->media.size(), 2u);
  EXPECT_EQ(sd->bandwidths[0].type, "AS");
  EXPECT_EQ(sd->bandwidths[0].value, 2048u);
  EXPECT_EQ(sd->attribute("msid-semantic")->value, " WMS");
  EXPECT_EQ(sd->media[1].media, "video");
  EXPECT_EQ(sd->media[1].port, 8002);
  EXPECT_EQ(sd->media[1].bandwidths[0].type, "TIAS");
  EXPECT_EQ(sd->media[1].bandwidths[0].value, 1500000u);
  EXPECT_EQ(effectiveRtcpPort(sd->media[1]), 8003);
  EXPECT_EQ(effectiveConnection(*sd, sd->media[1])->address, "192.0.2.44");
}

TEST(SdpParse, LfOnlyOffer) {
  const std::string text = readSdp("lf_only_offer.sdp");
  ASSERT_EQ(text.find('\r'), std::string::npos);
  auto sd = parse(text);
  ASSERT_TRUE(sd) << sd.error().message;
  EXPECT_EQ(sd->origin.address, "172.16.0.9");
  const auto& m = sd->media[0];
  EXPECT_TRUE(m.rtcpMux);
  EXPECT_EQ(effectiveRtcpPort(m), 20000);
  EXPECT_EQ(m.direction, Direction::kRecvOnly);
  EXPECT_FALSE(isOnHold(*sd, m));
  EXPECT_EQ(m.attributes.back().name, "recvonly");
}

TEST(SdpParse, EndingsMixedMissingAndBlank) {
  auto sd = parse(
      "v=0\r\no=- 1 1 IN IP4 192.0.2.1\ns=x\r\n\r\nc=IN IP4 192.0.2.1\r\n"
      "t=0 0\nm=audio 4000 RTP/AVP 0\na=inactive");
  ASSERT_TRUE(sd) << sd.error().message;
  EXPECT_EQ(sd->media[0].direction, Direction::kInactive);
  EXPECT_TRUE(isOnHold(*sd, sd->media[0]));
  EXPECT_EQ(sd->lines.size(), 5u);
}

TEST(SdpParse, TrailingSpacesAfterVersion) {
  auto sd = parse("v=0 \r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 1 RTP/AVP 0 \r\n");
  ASSERT_TRUE(sd) << sd.error().message;
  EXPECT_EQ(sd->media[0].formats, (std::vector<std::string_view>{"0"}));
  EXPECT_FALSE(parse("v= \r\no=- 1 1 IN IP4 192.0.2.1\r\n"));
}

TEST(SdpParse, SessionLevelDirectionAndPortCount) {
  auto sd = parse(
      "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 233.252.0.1/127/3\r\n"
      "t=0 0\r\na=sendonly\r\na=ice-lite\r\nm=video 49170/2 RTP/AVP 31\r\n"
      "m=audio 0 RTP/AVP 0\r\na=recvonly\r\n");
  ASSERT_TRUE(sd) << sd.error().message;
  EXPECT_EQ(sd->connection->address, "233.252.0.1");
  EXPECT_EQ(sd->connection->text, "IN IP4 233.252.0.1/127/3");
  EXPECT_TRUE(sd->iceLite);
  EXPECT_EQ(sd->media[0].portCount, 2);
  EXPECT_EQ(effectiveDirection(*sd, sd->media[0]), Direction::kSendOnly);
  EXPECT_TRUE(isOnHold(*sd, sd->media[0]));
  EXPECT_EQ(effectiveDirection(*sd, sd->media[1]), Direction::kRecvOnly);
  EXPECT_TRUE(sd->media[1].isRejected());
  EXPECT_EQ(effectiveRtcpPort(sd->media[1]), 0);
}

TEST(SdpParse, UnknownLinesKept) {
  auto sd = parse(
      "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nx=whatever\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n"
      "y=media level\r\ni=info\r\n");
  ASSERT_TRUE(sd) << sd.error().message;
  EXPECT_EQ(sd->lines[3].type, 'x');
  EXPECT_EQ(sd->lines[3].value, "whatever");
  EXPECT_EQ(sd->media[0].lines[1].type, 'y');
  EXPECT_FALSE(effectiveConnection(*sd, sd->media[0]));
}

TEST(SdpParse, MalformedLines) {
  const std::string head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";
  EXPECT_EQ(parseError(""), "sdp: empty description (no v= line)");
  EXPECT_EQ(parseError("\r\n\r\n"), "sdp: empty description (no v= line)");
  EXPECT_EQ(parseError("o=- 1 1 IN IP4 h\r\n"), "sdp: line 1: the first line must be v=");
  EXPECT_EQ(parseError("v=0\r\n"), "sdp: no o= line");
  EXPECT_EQ(parseError("v=x\r\n"), "sdp: line 1: bad protocol version in v= line");
  EXPECT_EQ(parseError(head + "garbage\r\n"),
            "sdp: line 5: expected '<type>=' at the start of the line");
  EXPECT_EQ(parseError(head + "A=1\r\n"), "sdp: line 5: bad line type 'A'");
  EXPECT_EQ(parseError(head + "v=0\r\n"), "sdp: line 5: second v= line");
  EXPECT_EQ(parseError("v=0\r\no=- 1 1 IN IP4\r\n"), "sdp: line 2: o= needs six fields");
  EXPECT_EQ(parseError(head + "o=- 1 1 IN IP4 h\r\n"), "sdp: line 5: second o= line");
  EXPECT_EQ(parseError(head + "c=IN IP4\r\n"),
            "sdp: line 5: c= needs <nettype> <addrtype> <address>");
  EXPECT_EQ(parseError(head + "b=AS\r\n"), "sdp: line 5: b= needs <bwtype>:<bandwidth>");
  EXPECT_EQ(parseError(head + "b=AS:x\r\n"), "sdp: line 5: bad bandwidth value in b= line");
  EXPECT_EQ(parseError(head + "a=\r\n"), "sdp: line 5: a= without an attribute name");
  EXPECT_EQ(parseError(head + "m=audio 65536 RTP/AVP 0\r\n"), "sdp: line 5: bad port in m= line");
  EXPECT_EQ(parseError(head + "m=audio -1 RTP/AVP 0\r\n"), "sdp: line 5: bad port in m= line");
  EXPECT_EQ(parseError(head + "m=audio 4000/0 RTP/AVP 0\r\n"),
            "sdp: line 5: bad port count in m= line");
  EXPECT_EQ(parseError(head + "m=audio 4000\r\n"),
            "sdp: line 5: m= needs <media> <port> <proto> <fmt>...");
  EXPECT_EQ(parseError(head + "m=audio 4000 RTP/AVP\r\n"), "sdp: line 5: m= line without formats");
  EXPECT_EQ(parseError(head + "m=audio 4000 RTP/AVP 0\r\na=rtcp:x\r\n"),
            "sdp: line 6: bad a=rtcp: rtcp port is not 0..65535");
  EXPECT_EQ(parseError(head + "m=audio 4000 RTP/AVP 0\r\no=- 1 1 IN IP4 h\r\n"),
            "sdp: line 6: o= inside a media section");
  EXPECT_EQ(parseError("v=0\r\nm=audio 1 RTP/AVP 0\r\n"), "sdp: line 2: m= before the o= line");
  EXPECT_EQ(parseError(head + "s=a\rb\r\n"), "sdp: line 5: stray CR inside the line");
  EXPECT_EQ(parseError(head + std::string("s=a\0b\r\n", 7)), "sdp: line 5: NUL byte in the line");
}

TEST(SdpParse, Limits) {
  Limits l;
  l.maxMedia = 1;
  const std::string two = readSdp("audio_video_offer.sdp");
  auto sd = parse(two, l);
  ASSERT_FALSE(sd);
  EXPECT_EQ(sd.error().code, Errc::kTooLarge);
  EXPECT_EQ(sd.error().message, "sdp: line 15: more than 1 media sections");
  l = Limits{};
  l.maxLines = 4;
  EXPECT_EQ(parse(two, l).error().code, Errc::kTooLarge);
  l = Limits{};
  l.maxSize = 10;
  EXPECT_EQ(parse(two, l).error().code, Errc::kTooLarge);
  l = Limits{};
  l.maxFormats = 3;
  EXPECT_EQ(parse(two, l).error().message, "sdp: line 8: more than 3 formats in m= line");
}

TEST(SdpParse, EveryTruncationIsSafe) {
  const std::string text = readSdp("linphone_ice_offer.sdp");
  for (size_t n = 0; n <= text.size(); ++n) {
    const std::string cut = text.substr(0, n);
    auto sd = parse(cut);
    if (sd) {
      (void)rewrite(*sd, RewriteOptions{});
    }
  }
}

TEST(SdpAttributes, Rtpmap) {
  auto pcmu = parseRtpmap("0 PCMU/8000");
  ASSERT_TRUE(pcmu);
  EXPECT_EQ(pcmu->channels, 1u);
  EXPECT_FALSE(parseRtpmap("128 X/8000"));
  EXPECT_FALSE(parseRtpmap("0 PCMU"));
  EXPECT_FALSE(parseRtpmap("0 PCMU/0"));
  EXPECT_FALSE(parseRtpmap("0 /8000"));
  EXPECT_FALSE(parseRtpmap("0 PCMU/8000/"));
  EXPECT_FALSE(parseRtpmap(""));
  EXPECT_FALSE(parseFmtp(""));
  EXPECT_EQ(parseFmtp("101")->parameters, "");
}

TEST(SdpAttributes, RtcpAndCandidates) {
  auto r = parseRtcp("53020");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->port, 53020);
  EXPECT_FALSE(r->address);
  EXPECT_FALSE(parseRtcp("53020 IN IP4"));
  EXPECT_FALSE(parseRtcp(""));
  EXPECT_FALSE(parseCandidate("1 1 UDP 1 10.0.0.1 7078 host"));
  EXPECT_FALSE(parseCandidate("1 0 UDP 1 10.0.0.1 7078 typ host"));
  EXPECT_FALSE(parseCandidate("1 1 UDP 4294967296 10.0.0.1 7078 typ host"));
  EXPECT_FALSE(parseCandidate("1 1 UDP 1 10.0.0.1 7078 typ host raddr"));
  EXPECT_FALSE(parseCandidate("1 1 UDP 1 10.0.0.1 7078 typ host rport x"));
  EXPECT_TRUE(isIceAttribute("candidate"));
  EXPECT_TRUE(isIceAttribute("ice-lite"));
  EXPECT_FALSE(isIceAttribute("rtcp-mux"));
  EXPECT_EQ(toString(Direction::kInactive), "inactive");
  EXPECT_EQ(parseDirection("recvonly"), Direction::kRecvOnly);
  EXPECT_EQ(parseDirection("sendrecv "), std::nullopt);
}

}  // namespace
}  // namespace evosip::sdp
