#include <vector>

#include <gtest/gtest.h>

#include <evosip/rtp/packet.hpp>

namespace evosip::rtp {
namespace {

using Bytes = std::vector<uint8_t>;

TEST(RtpPacket, ParsesTheFixedHeader) {
  const Bytes d = {0x80, 0x88, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF,
                   0x01, 0x02, 0x03, 0x04, 0xFF, 0xFE, 0xFD};
  auto p = parseRtp(d);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_TRUE(p->header.marker);
  EXPECT_EQ(p->header.payloadType, 8);
  EXPECT_EQ(p->header.sequence, 0x1234);
  EXPECT_EQ(p->header.timestamp, 0xDEADBEEFu);
  EXPECT_EQ(p->header.ssrc, 0x01020304u);
  EXPECT_EQ(p->csrcCount, 0);
  EXPECT_FALSE(p->hasExtension);
  EXPECT_EQ(p->paddingBytes, 0);
  EXPECT_EQ(Bytes(p->payload.begin(), p->payload.end()), (Bytes{0xFF, 0xFE, 0xFD}));
  auto empty = parseRtp(std::span(d).first(12));
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->payload.empty());
}

TEST(RtpPacket, SkipsCsrcsAndExtensionAndRemovesPadding) {
  // V=2 P=1 X=1 CC=2, PT 0.
  const Bytes d = {0xB2, 0x00, 0,    1,    0,    0,    0,    160,
                   0,    0,    0,    9,    0xAA, 0xAA, 0xAA, 0x01,  // CSRC 1
                   0xBB, 0xBB, 0xBB, 0x02,                          // CSRC 2
                   0xBE, 0xDE, 0x00, 0x01,  // one-byte extension header, 1 word
                   0x10, 0x55, 0x00, 0x00,  // the word
                   0x7F, 0x7E,              // payload
                   0x00, 0x00, 0x03};       // 3 bytes padding
  auto p = parseRtp(d);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->csrcCount, 2);
  EXPECT_EQ(p->csrc(0), 0xAAAAAA01u);
  EXPECT_EQ(p->csrc(1), 0xBBBBBB02u);
  EXPECT_TRUE(p->hasExtension);
  EXPECT_EQ(p->extensionProfile, 0xBEDE);
  EXPECT_EQ(Bytes(p->extension.begin(), p->extension.end()), (Bytes{0x10, 0x55, 0, 0}));
  EXPECT_EQ(p->paddingBytes, 3);
  EXPECT_EQ(Bytes(p->payload.begin(), p->payload.end()), (Bytes{0x7F, 0x7E}));
}

TEST(RtpPacket, Rejects) {
  const Bytes base = {0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
  EXPECT_FALSE(parseRtp({}));
  EXPECT_FALSE(parseRtp(std::span(base).first(11)));
  Bytes v1 = base;
  v1[0] = 0x40;
  EXPECT_FALSE(parseRtp(v1));
  Bytes v0 = base;
  v0[0] = 0x00;
  EXPECT_FALSE(parseRtp(v0));
  Bytes csrc = base;
  csrc[0] = 0x81;  // one CSRC announced, none present
  EXPECT_FALSE(parseRtp(csrc));
  csrc.insert(csrc.end(), {1, 2, 3});
  EXPECT_FALSE(parseRtp(csrc));
  csrc.push_back(4);
  EXPECT_TRUE(parseRtp(csrc));
  Bytes ext = base;
  ext[0] = 0x90;  // extension header missing
  EXPECT_FALSE(parseRtp(ext));
  ext.insert(ext.end(), {0xBE, 0xDE, 0x00, 0x02, 1, 2, 3, 4});  // says 2 words, 1 present
  EXPECT_FALSE(parseRtp(ext));
  ext.insert(ext.end(), {5, 6, 7, 8});
  EXPECT_TRUE(parseRtp(ext));
  Bytes pad = base;
  pad[0] = 0xA0;
  pad.push_back(0);  // padding count 0
  EXPECT_FALSE(parseRtp(pad));
  pad.back() = 2;  // more padding than the 1 byte after the header
  EXPECT_FALSE(parseRtp(pad));
  pad.back() = 1;  // padding is just the count byte
  auto p = parseRtp(pad);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->payload.empty());
  Bytes padOnly = base;
  padOnly[0] = 0xA0;  // P bit, no byte after the header: the count would be in the header
  EXPECT_FALSE(parseRtp(padOnly));
}

TEST(RtpPacket, WriteThenParse) {
  RtpHeader h{true, 101, 65535, 0xFFFFFFF0u, 0xCAFEBABEu};
  const Bytes payload = {1, 2, 3, 4};
  uint8_t buf[64];
  auto n = writeRtp(h, payload, buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 16u);
  const Bytes expectedHeader = {0x80, 0xE5, 0xFF, 0xFF, 0xFF, 0xFF,
                                0xFF, 0xF0, 0xCA, 0xFE, 0xBA, 0xBE};
  EXPECT_EQ(Bytes(buf, buf + 12), expectedHeader);
  auto p = parseRtp(std::span<const uint8_t>(buf, *n));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->header.marker, h.marker);
  EXPECT_EQ(p->header.payloadType, h.payloadType);
  EXPECT_EQ(p->header.sequence, h.sequence);
  EXPECT_EQ(p->header.timestamp, h.timestamp);
  EXPECT_EQ(p->header.ssrc, h.ssrc);
  EXPECT_EQ(Bytes(p->payload.begin(), p->payload.end()), payload);

  auto small = writeRtp(h, payload, std::span<uint8_t>(buf, 15));
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().code, Errc::kTooLarge);
}

TEST(RtpPacket, RtcpIsToldApart) {
  const Bytes sr = {0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0};
  EXPECT_TRUE(looksLikeRtcp(sr));
  const Bytes rtp = {0x80, 0x00, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0};
  EXPECT_FALSE(looksLikeRtcp(rtp));
  const Bytes rtpMarkerPt8 = {0x80, 0x88, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0};
  EXPECT_FALSE(looksLikeRtcp(rtpMarkerPt8));
  EXPECT_FALSE(looksLikeRtcp(std::span(sr).first(1)));
}

}  // namespace
}  // namespace evosip::rtp
