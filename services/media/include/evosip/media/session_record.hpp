#pragma once
// A call's media session as the relay keeps it in the shared store (media.state), so that another
// relay can serve the call after this one dies: the call's address and ports, each leg's tags,
// latch policy and the addresses it sends from and to. A compact JSON object (readable with
// redis-cli); decoding treats the stored text as hostile: every field is checked for type, size
// and range, and a record that does not decode is refused whole.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/base/result.hpp>
#include <evosip/media/endpoint.hpp>
#include <evosip/media/latch.hpp>

namespace evosip::media {

// One stream (an RTP or RTCP socket facing one leg).
struct StreamRecord {
  uint16_t port = 0;  // the local port
  Endpoint destination;
  Endpoint signalled;
  Endpoint advertised;
  bool signalledFromSip = false;
  bool latched = false;
};

// One m= line of one leg.
struct SlotRecord {
  std::string type, protocol;
  bool rtcpMux = false;
  bool rejected = false;
  bool open = false;  // has its two streams (a rejected line has none)
  StreamRecord rtp, rtcp;
};

struct LegRecord {
  std::string tag, label, viaBranch;
  LatchPolicy policy;
  int32_t peer = -1;  // index of the peer leg in SessionRecord::legs; -1: none
  int64_t createdWall = 0;
  std::vector<SlotRecord> media;
};

struct SessionRecord {
  std::string callId;
  std::string address;  // the address in the SDP the parties received (media.address)
  std::string bind;     // where the call's sockets are bound
  int64_t createdWall = 0;
  int64_t lastSignalWall = 0;
  std::vector<LegRecord> legs;
};

// What a decoded record may hold at most.
struct RecordLimits {
  size_t maxBytes = 65536;
  size_t maxLegs = 8;     // 2 x media.max_streams
  size_t maxStreams = 4;  // m= lines per leg (media.max_streams)
  size_t maxText = 1024;  // Call-ID, tags, labels, branch, types
};

std::string encodeSessionRecord(const SessionRecord& record);
Result<SessionRecord> decodeSessionRecord(std::string_view json, const RecordLimits& limits);

// A relay address's heartbeat: which relay serves it now, the address and its ng address; or
// "stopped" (the relay ended with no call up: nobody needs to take it over).
struct Heartbeat {
  bool stopped = false;
  std::string by;       // the instance serving the address
  std::string address;  // media.address
  std::string ng;       // media.ng_listen, ADDRESS:PORT
};

std::string encodeHeartbeat(const Heartbeat& hb);
Result<Heartbeat> decodeHeartbeat(std::string_view json);

}  // namespace evosip::media
