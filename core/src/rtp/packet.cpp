#include <cstring>

#include <evosip/base/assert.hpp>
#include <evosip/rtp/packet.hpp>

namespace evosip::rtp {
namespace {

uint16_t be16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
uint32_t be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | p[3];
}

}  // namespace

uint32_t RtpPacket::csrc(size_t i) const {
  EVOSIP_ASSERT(i < csrcCount, "csrc index out of range");
  return be32(csrcs.data() + 4 * i);
}

Result<RtpPacket> parseRtp(std::span<const uint8_t> d) {
  if (d.size() < kRtpHeaderSize) {
    return makeError(Errc::kParse, "RTP packet shorter than 12 bytes");
  }
  const uint8_t* p = d.data();
  if ((p[0] >> 6) != kRtpVersion) {
    return makeError(Errc::kParse, "RTP version is not 2");
  }
  RtpPacket pkt;
  const bool padding = (p[0] & 0x20) != 0;
  pkt.hasExtension = (p[0] & 0x10) != 0;
  pkt.csrcCount = p[0] & 0x0F;
  pkt.header.marker = (p[1] & 0x80) != 0;
  pkt.header.payloadType = p[1] & 0x7F;
  pkt.header.sequence = be16(p + 2);
  pkt.header.timestamp = be32(p + 4);
  pkt.header.ssrc = be32(p + 8);

  size_t pos = kRtpHeaderSize;
  const size_t csrcBytes = 4 * static_cast<size_t>(pkt.csrcCount);
  if (d.size() - pos < csrcBytes) {
    return makeError(Errc::kParse, "RTP CSRC list runs past the end of the packet");
  }
  pkt.csrcs = d.subspan(pos, csrcBytes);
  pos += csrcBytes;
  if (pkt.hasExtension) {
    if (d.size() - pos < 4) {
      return makeError(Errc::kParse, "RTP header extension runs past the end of the packet");
    }
    pkt.extensionProfile = be16(p + pos);
    const size_t extBytes = 4 * static_cast<size_t>(be16(p + pos + 2));
    pos += 4;
    if (d.size() - pos < extBytes) {
      return makeError(Errc::kParse, "RTP header extension runs past the end of the packet");
    }
    pkt.extension = d.subspan(pos, extBytes);
    pos += extBytes;
  }
  size_t end = d.size();
  if (padding) {
    const uint8_t count = p[end - 1];
    if (count == 0 || count > end - pos) {
      return makeError(Errc::kParse, "RTP padding count is 0 or larger than the payload");
    }
    pkt.paddingBytes = count;
    end -= count;
  }
  pkt.payload = d.subspan(pos, end - pos);
  return pkt;
}

bool looksLikeRtcp(std::span<const uint8_t> d) {
  return d.size() >= 2 && (d[0] >> 6) == kRtpVersion && d[1] >= 192 && d[1] <= 223;
}

void writeRtpHeader(const RtpHeader& h, std::span<uint8_t> out) {
  EVOSIP_ASSERT(out.size() >= kRtpHeaderSize, "writeRtpHeader: buffer too small");
  uint8_t* p = out.data();
  p[0] = kRtpVersion << 6;
  p[1] = static_cast<uint8_t>((h.marker ? 0x80 : 0) | (h.payloadType & 0x7F));
  p[2] = static_cast<uint8_t>(h.sequence >> 8);
  p[3] = static_cast<uint8_t>(h.sequence);
  p[4] = static_cast<uint8_t>(h.timestamp >> 24);
  p[5] = static_cast<uint8_t>(h.timestamp >> 16);
  p[6] = static_cast<uint8_t>(h.timestamp >> 8);
  p[7] = static_cast<uint8_t>(h.timestamp);
  p[8] = static_cast<uint8_t>(h.ssrc >> 24);
  p[9] = static_cast<uint8_t>(h.ssrc >> 16);
  p[10] = static_cast<uint8_t>(h.ssrc >> 8);
  p[11] = static_cast<uint8_t>(h.ssrc);
}

Result<size_t> writeRtp(const RtpHeader& h, std::span<const uint8_t> payload,
                        std::span<uint8_t> out) {
  const size_t total = kRtpHeaderSize + payload.size();
  if (out.size() < total) {
    return makeError(Errc::kTooLarge, "RTP packet does not fit the output buffer");
  }
  writeRtpHeader(h, out);
  if (!payload.empty()) {
    std::memcpy(out.data() + kRtpHeaderSize, payload.data(), payload.size());
  }
  return total;
}

}  // namespace evosip::rtp
