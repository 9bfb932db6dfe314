#pragma once
// RTP fixed header (RFC 3550 5.1): parsing into a view over the datagram, and writing into a
// caller buffer.

#include <cstddef>
#include <cstdint>
#include <span>

#include <evosip/base/result.hpp>

namespace evosip::rtp {

inline constexpr size_t kRtpHeaderSize = 12;
inline constexpr uint8_t kRtpVersion = 2;

// The header fields a sender sets.
struct RtpHeader {
  bool marker = false;
  uint8_t payloadType = 0;  // 0..127
  uint16_t sequence = 0;
  uint32_t timestamp = 0;
  uint32_t ssrc = 0;
};

struct RtpPacket {
  RtpHeader header;
  uint8_t csrcCount = 0;
  std::span<const uint8_t> csrcs;  // csrcCount big-endian 32-bit identifiers
  bool hasExtension = false;
  uint16_t extensionProfile = 0;       // "defined by profile" (0xBEDE one-byte, 0x100x two-byte)
  std::span<const uint8_t> extension;  // the extension body, without its 4-byte header
  uint8_t paddingBytes = 0;            // removed from the payload; 0 without the P bit
  std::span<const uint8_t> payload;

  uint32_t csrc(size_t i) const;  // i < csrcCount
};

// Parses one RTP datagram: version 2, CSRC list and header extension skipped, padding removed.
// Errors (kParse): shorter than 12 bytes, version not 2, CSRC list/extension/padding running
// past the end, padding count 0. Never throws, never reads out of range.
Result<RtpPacket> parseRtp(std::span<const uint8_t> datagram);

// True if the datagram looks like RTCP multiplexed on the RTP port (RFC 5761 4: packet type
// 192..223 in the second byte), which parseRtp would otherwise read as RTP with PT 64..95.
bool looksLikeRtcp(std::span<const uint8_t> datagram);

// Writes a 12-byte header (no CSRCs, no extension, no padding) followed by `payload` into
// `out`. Returns the packet size, or kTooLarge if `out` is too small.
Result<size_t> writeRtp(const RtpHeader& header, std::span<const uint8_t> payload,
                        std::span<uint8_t> out);
// Writes just the 12-byte header; `out` must hold kRtpHeaderSize bytes (debug-checked).
void writeRtpHeader(const RtpHeader& header, std::span<uint8_t> out);

}  // namespace evosip::rtp
