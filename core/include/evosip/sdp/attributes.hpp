#pragma once
// Parsers for the values of individual SDP attributes, as views into the attribute value.
// Pass Attribute::value (the text after "a=name:"). Never throw, never crash.

#include <cstdint>
#include <optional>
#include <string_view>

#include <evosip/base/result.hpp>
#include <evosip/sdp/session_description.hpp>

namespace evosip::sdp {

// a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]
// e.g. "0 PCMU/8000", "111 opus/48000/2".
struct Rtpmap {
  uint8_t payloadType = 0;  // 0..127
  std::string_view encoding;
  uint32_t clockRate = 0;
  uint32_t channels = 1;  // the encoding parameters for audio; 1 when absent
};
Result<Rtpmap> parseRtpmap(std::string_view value);

// a=fmtp:<format> <format specific parameters>, e.g. "101 0-16".
struct Fmtp {
  std::string_view format;
  std::string_view parameters;
};
Result<Fmtp> parseFmtp(std::string_view value);

// a=rtcp:<port> [<nettype> <addrtype> <connection-address>] (RFC 3605).
struct RtcpAttribute {
  uint16_t port = 0;
  std::optional<Connection> address;
};
Result<RtcpAttribute> parseRtcp(std::string_view value);

// a=candidate:<foundation> <component-id> <transport> <priority> <connection-address> <port>
//   typ <cand-type> [raddr <addr>] [rport <port>] *(<extension-name> <extension-value>)
// (RFC 8839 5.1).
struct Candidate {
  std::string_view foundation;
  uint32_t component = 0;      // 1 = RTP, 2 = RTCP
  std::string_view transport;  // "UDP" / "udp" / "TCP"
  uint32_t priority = 0;
  std::string_view address;
  uint16_t port = 0;
  std::string_view type;            // "host", "srflx", "prflx", "relay"
  std::string_view relatedAddress;  // raddr, empty when absent
  uint16_t relatedPort = 0;         // rport, 0 when absent
  std::string_view extensions;      // the rest after typ/raddr/rport, as written
};
Result<Candidate> parseCandidate(std::string_view value);

// The ICE attributes "ICE remove" strips (RFC 8839): candidate, remote-candidates, ice-ufrag,
// ice-pwd, ice-options, ice-lite, ice-mismatch, ice-pacing, end-of-candidates.
bool isIceAttribute(std::string_view name);

}  // namespace evosip::sdp
