#pragma once
// The keys and flags of an ng offer/answer/delete/query dictionary that the relay honours, read
// once from the bencode body (rtpengine's ng_control_protocol.md). Keys are accepted with spaces
// or hyphens ("transport protocol" / "transport-protocol"); flags are compared case-insensitively
// with spaces and underscores read as hyphens ("SIP source address" = "sip-source-address").
//
// A key or flag that would change what the media does and that this relay does not implement
// (recording, SRTP/DTLS translation, transcoding, ICE termination, ...) is an error with a reason
// naming it, never silently ignored. Flags it does not know at all are ignored with a warning in
// the reply, as rtpengine does.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/base/result.hpp>
#include <evosip/bencode/bencode.hpp>
#include <evosip/sdp/session_description.hpp>

namespace evosip::media {

struct NgOptions {
  std::string callId, fromTag, toTag, viaBranch, label;
  std::string sdp;

  bool sipSourceAddress = false;  // SIP-source-address: use received-from, not the SDP address
  std::string receivedFrom;       // "received from": [family, address]
  std::string mediaAddress;       // "media address": overrides both
  bool asymmetric = false;
  bool strictSource = false;
  bool mediaHandover = false;
  bool replaceOrigin = false;
  bool replaceSessionConnection = false;  // always done: the relay's address goes everywhere
  bool removeIce = true;                  // ICE absent/default/remove: candidates removed
  bool noRtcpAttribute = false;
  bool originalSendrecv = false;
  bool fatal = false;                        // delete: unknown call -> error instead of warning
  std::optional<std::string> addressFamily;  // "IP4" / "IP6"
  std::optional<sdp::Direction> direction;   // not an rtpengine key; never set from ng
  int64_t limit = 32;                        // list

  std::vector<std::string> ignoredFlags;  // unknown flags (reported as a warning)
};

// Lower-cases ASCII and turns spaces and underscores into hyphens.
std::string normalizeFlag(std::string_view flag);

// The value of key written with hyphens or with spaces ("received-from" / "received from").
const bencode::Value* findKey(const bencode::Value& body, std::string_view hyphenated);

// Reads the options of an ng command. Error (Errc::kInvalid) with rtpengine-style reasons for
// unsupported media features, e.g. "Unsupported: record call (recording is not implemented)".
Result<NgOptions> readNgOptions(const bencode::Value& body);

}  // namespace evosip::media
