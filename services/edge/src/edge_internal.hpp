#pragma once
// Constants and functions shared by the edge's request, response and liveness code. Private to
// evosip_edge.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>

#include <evosip/base/hex.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/edge/edge_proxy.hpp>
#include <evosip/sip/editor.hpp>
#include <evosip/sip/via_value.hpp>
#include <evosip/transport/address.hpp>
#include <evosip/transport/response_destination.hpp>

namespace evosip::edge::detail {

constexpr std::string_view kBranchPrefix = "z9hG4bK-e";  // RFC 3261 cookie + our marker
constexpr size_t kBranchHexLen = 16 + 8;                 // transaction hash + loop hash
// CANCEL shares its INVITE's branch; its failover entry is kept apart from the INVITE's.
constexpr uint64_t kCancelKey = 0x63616e63656cULL;
// Branch of a liveness probe: cookie + marker, then a sequence number, the router's index and a
// keyed hash of both (a response that did not see our probe cannot forge it).
constexpr std::string_view kProbePrefix = "z9hG4bK-p";
constexpr size_t kProbeHexLen = 16 + 8 + 16;
// Our Via carries this parameter when the request from outside had credentials: the router's
// 401/407 to it is an authentication failure of its source.
constexpr std::string_view kCredentialsParam = "cr";
// A local reply to a UDP source (which may be spoofed) is at most this many bytes larger than
// the request it answers: the edge never amplifies.
constexpr size_t kUnverifiedReplySlack = 64;

inline bool isEvosipHeader(std::string_view name) {
  return istartsWith(name, "x-evosip-");
}

// Offset of a view into the message buffer.
inline uint32_t offsetOf(const sip::Message& msg, std::string_view part) {
  return static_cast<uint32_t>(part.data() - msg.buffer().data());
}

inline size_t dropSlot(DropReason r) {
  return static_cast<size_t>(r);
}

}  // namespace evosip::edge::detail
