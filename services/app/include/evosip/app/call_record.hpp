#pragma once
// One established call of the app as it is kept in the shared store (app.state), so that a peer
// app can go on with it after this one dies: the dialog (Call-ID, tags, CSeqs, route set, remote
// target), the caller's last SDP, our o= line, and the application with its parameters and the
// time it started (where its prompt is). A compact JSON object (readable with redis-cli);
// decoding treats the stored text as hostile: every field is checked for type, size and range,
// and a record that does not decode is refused whole.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <evosip/base/result.hpp>

namespace evosip::app {

struct CallRecord {
  std::string callId, localTag, remoteTag;
  std::string fromValue;  // the caller's From (their tag): To of our requests
  std::string toValue;    // the caller's To with our tag: From of our requests
  std::string remoteTarget;
  std::vector<std::string> routeSet;
  std::string sourceHost;  // where the INVITE came from: our requests' last resort
  uint16_t sourcePort = 0;
  uint32_t localCseq = 0, remoteCseq = 0;
  std::string remoteSdp;  // the caller's last offer or answer, as the app received it
  uint64_t sessionId = 0, sdpVersion = 1;
  std::string action;  // X-Evosip-Action
  std::vector<std::pair<std::string, std::string>> params;
  int64_t startedMs = 0;  // the application started (Unix ms): the position of its prompt
};

// What a decoded record may hold at most.
struct CallRecordLimits {
  size_t maxBytes = 16384;
  size_t maxText = 1024;  // every header value, URI and tag
  size_t maxSdp = 4096;
  size_t maxRoutes = 16;
  size_t maxParams = 32;
};

std::string encodeCallRecord(const CallRecord& record);
Result<CallRecord> decodeCallRecord(std::string_view json, const CallRecordLimits& limits);

}  // namespace evosip::app
