#pragma once
// SDP session descriptions (RFC 4566 / RFC 8866) parsed into views over the input text, with
// what an RTP relay needs: connection addresses, ports, RTCP (RFC 3605, RFC 5761), directions
// and hold (RFC 3264), ICE attributes (RFC 8839).
//
// Every string_view points into the text given to parse(); keep that text alive (and
// unmodified) as long as the SessionDescription is used. Parsing never throws and never
// crashes on any input.
//
//   auto sd = sdp::parse(body);
//   if (!sd) { ... sd.error().message ... }
//   for (const auto& m : sd->media) {
//     const sdp::Connection* c = sdp::effectiveConnection(*sd, m);   // may be nullptr
//     uint16_t rtcp = sdp::effectiveRtcpPort(m);
//     bool held = sdp::isOnHold(*sd, m);
//   }

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include <evosip/base/result.hpp>

namespace evosip::sdp {

enum class AddrType : uint8_t { kIp4, kIp6, kOther };

// RFC 3264 6.1 directions. The default when no attribute is present is kSendRecv.
enum class Direction : uint8_t { kSendRecv, kSendOnly, kRecvOnly, kInactive };

std::string_view toString(Direction d);  // "sendrecv", "sendonly", "recvonly", "inactive"
std::optional<Direction> parseDirection(std::string_view attributeName);

// One line "<type>=<value>" as written, without its line ending. `value` may be empty.
struct Line {
  char type = 0;
  std::string_view value;
};

// c=<nettype> <addrtype> <connection-address>, e.g. "IN IP4 192.0.2.1" or "IN IP4 233.252.0.1/127".
struct Connection {
  std::string_view netType;   // "IN"
  std::string_view addrType;  // "IP4" / "IP6" as written
  std::string_view address;   // without any "/ttl" or "/count" suffix
  std::string_view text;      // the whole value after "c="
  AddrType type = AddrType::kOther;

  // RFC 2543 / RFC 3264 8.4 legacy hold: c=IN IP4 0.0.0.0 (only this exact IPv4 form).
  bool isHoldAddress() const { return address == "0.0.0.0"; }
};

// o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>
struct Origin {
  std::string_view username;
  std::string_view sessionId;
  std::string_view sessionVersion;  // as written (digits; may exceed 64 bits in the wild)
  std::string_view netType;
  std::string_view addrType;
  std::string_view address;
  AddrType type = AddrType::kOther;
};

// b=<bwtype>:<bandwidth>, e.g. "AS:64", "TIAS:64000".
struct Bandwidth {
  std::string_view type;
  uint64_t value = 0;
};

// a=<name> or a=<name>:<value>. Unknown attributes are kept verbatim, in order.
struct Attribute {
  std::string_view name;
  std::string_view value;  // empty for property attributes (a=rtcp-mux)
  bool hasValue = false;   // "a=x:" has a value (empty); "a=x" does not
};

// One m= section: the m= line and everything up to the next m= line.
struct MediaDescription {
  std::string_view media;  // "audio", "video", "application", "image", ...
  uint16_t port = 0;       // 0 = rejected / disabled stream (RFC 3264 6)
  uint16_t portCount = 1;  // "m=video 49170/2 ..." -> 2; 1 when not given
  std::string_view proto;  // "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "udptl", ...
  std::vector<std::string_view> formats;  // payload types or other format tokens, in order

  std::optional<Connection> connection;  // media-level c= (the first one if several)
  std::vector<Bandwidth> bandwidths;
  std::vector<Attribute> attributes;  // every a= of this section, in order

  // Derived from the attributes while parsing.
  std::optional<Direction> direction;     // last direction attribute of this section, if any
  uint16_t rtcpPort = 0;                  // a=rtcp:PORT, 0 when absent
  std::optional<Connection> rtcpAddress;  // a=rtcp:PORT IN IP4 addr
  bool rtcpMux = false;                   // a=rtcp-mux

  std::vector<Line> lines;  // every line of the section in order, starting with the m= line

  bool isRejected() const { return port == 0; }
  // proto contains "RTP" (RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVP, ...).
  bool isRtp() const;
  // The first attribute with this name (case-sensitive, as RFC 4566 attribute names are
  // compared in practice), or nullptr.
  const Attribute* attribute(std::string_view name) const;
  bool hasAttribute(std::string_view name) const { return attribute(name) != nullptr; }
  // The values of every attribute with this name, in order (e.g. all "candidate" lines).
  std::vector<std::string_view> attributeValues(std::string_view name) const;
};

struct SessionDescription {
  std::string_view version;  // "0"
  Origin origin;
  std::string_view sessionName;          // s= (may be empty or absent: some devices omit it)
  std::optional<Connection> connection;  // session-level c=
  std::vector<Bandwidth> bandwidths;
  std::vector<std::string_view> times;  // t= values as written
  std::vector<Attribute> attributes;    // session-level a=, in order
  std::optional<Direction> direction;   // session-level direction attribute, if any
  bool iceLite = false;                 // session-level a=ice-lite

  std::vector<Line> lines;  // every session-level line in order (v= first), before the first m=
  std::vector<MediaDescription> media;
  std::string_view text;  // the whole input

  const Attribute* attribute(std::string_view name) const;
  bool hasAttribute(std::string_view name) const { return attribute(name) != nullptr; }
};

struct Limits {
  size_t maxSize = 65536;  // bytes of SDP text
  size_t maxLines = 2048;
  size_t maxMedia = 32;     // m= sections
  size_t maxFormats = 128;  // formats on one m= line
};

// Parses an SDP body. Lines end in CRLF or a bare LF (both are common from real phones); a
// missing final line ending and blank lines are accepted (blank lines are dropped). Errors
// (Errc::kParse, kTooLarge for a limit) name the line number, e.g.
// "sdp: line 7: bad port in m= line". Required: v= as the first line, one o= line with six
// fields; every m= needs media, port[/count], proto and at least one format. Lines with an
// unknown type letter (a-z) are kept as they are.
Result<SessionDescription> parse(std::string_view text, const Limits& limits = {});

// --- What a relay wants to know per m= section. ---

// Media-level c= if present, else session-level c=, else nullptr.
const Connection* effectiveConnection(const SessionDescription& sd, const MediaDescription& m);

// The RTCP port the peer uses: a=rtcp port if given, else the RTP port with a=rtcp-mux,
// else port + 1 (0 for a rejected stream).
uint16_t effectiveRtcpPort(const MediaDescription& m);

// Media-level direction, else session-level direction, else kSendRecv.
Direction effectiveDirection(const SessionDescription& sd, const MediaDescription& m);

// On hold: the effective direction is sendonly or inactive (RFC 3264 8.4, RFC 6337 5.3), or
// the effective connection is 0.0.0.0 in a section without ICE. With ICE (a=ice-ufrag at either
// level), 0.0.0.0 and port 9 are the RFC 8839/8840 placeholders browsers always send, not hold.
bool isOnHold(const SessionDescription& sd, const MediaDescription& m);

}  // namespace evosip::sdp
