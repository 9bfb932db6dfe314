#pragma once
// Writes the SDP a relay sends on: the parsed description with the relay's addresses and ports
// in place of the peer's, everything else kept byte for byte and in order, every line ended
// with CRLF. This is what rtpengine does to the SDP of an offer/answer.
//
//   sdp::RewriteOptions opt;
//   opt.media.push_back({.address = "203.0.113.5", .rtpPort = 30000, .rtcpPort = 30001});
//   opt.replaceOrigin = true;
//   opt.removeIce = true;
//   auto out = sdp::rewrite(*sd, opt);   // Result<std::string>
//
// What changes (and nothing else):
// - c= lines. For each m= section with an address to write: its own c= line is rewritten to
//   "c=IN IP4 <address>" (IP6 when the address contains ':'). The session-level c= line, if
//   there is one, gets the address of the first m= section that has a rewrite; an m= section
//   without its own c= whose address differs from that gets a media-level c= inserted after
//   its m= (and i=) lines. Hold: a peer's c=0.0.0.0 is replaced with the relay address too
//   (like rtpengine); the hold stays visible through a=sendonly / a=inactive, which are kept.
// - m= ports: the RTP port is written; "/count" is kept; a rejected stream (port 0) stays 0
//   and its a=rtcp is left alone.
// - a=rtcp: rewritten to "a=rtcp:<port>" (no address: the c= line now carries the relay's) and,
//   with addRtcp, added at the end of an RTP m= section that had none. The port is rtcpPort,
//   or rtpPort + 1 when rtcpPort is 0, or rtpPort when the section has a=rtcp-mux and rtcpPort
//   is 0. rtpengine writes a=rtcp:PORT even when it is port + 1; so does this.
// - With replaceOrigin: the o= address and addrtype become those of originAddress (or, when
//   that is empty, the first media rewrite's address). With bumpOriginVersion the o=
//   sess-version is incremented (kept as is when it is not a number that fits 64 bits).
// - With removeIce: every ICE attribute (attributes.hpp isIceAttribute) at both levels goes.
// - With direction: every direction attribute (both levels) goes and each m= section gets
//   "a=<direction>" at its end.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/base/result.hpp>
#include <evosip/sdp/session_description.hpp>

namespace evosip::sdp {

// What to write for one m= section, in the order of SessionDescription::media.
struct MediaRewrite {
  std::string_view address;  // the relay's IPv4 or IPv6 address text; empty = keep c= lines
  uint16_t rtpPort = 0;      // 0 = keep the m= port as it is
  uint16_t rtcpPort = 0;     // 0 = rtpPort + 1, or rtpPort with a=rtcp-mux (see above)
};

struct RewriteOptions {
  // One entry per m= section; sections past the end of this vector are copied unchanged.
  std::vector<MediaRewrite> media;
  bool addRtcp = true;  // add a=rtcp to RTP sections with a port to write that lack one

  bool replaceOrigin = false;      // rtpengine "replace": ["origin"]
  std::string_view originAddress;  // empty = the first media rewrite's address
  bool bumpOriginVersion = false;

  bool removeIce = false;              // rtpengine "ICE": "remove"
  std::optional<Direction> direction;  // override every m= section's direction
};

// Errors (Errc::kInvalid): an address that is empty where one is needed for replaceOrigin, or
// that contains characters an address cannot have (spaces, line breaks, ...).
Result<std::string> rewrite(const SessionDescription& sd, const RewriteOptions& options);

}  // namespace evosip::sdp
