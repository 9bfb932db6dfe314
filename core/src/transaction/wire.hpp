#pragma once
// Small text helpers shared by the transaction layer and the proxy core (private).

#include <cstdint>
#include <string>
#include <string_view>

#include <evosip/sip/address.hpp>
#include <evosip/sip/message.hpp>
#include <evosip/transport/sip_transport.hpp>

namespace evosip::transaction::wire {

void appendHex(std::string& out, uint64_t v, int digits = 16);

// "Name: value\r\n"
inline void appendLine(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

// The header line of `h` as written (with its CRLF).
inline std::string_view lineOf(const sip::Message& msg, const sip::HeaderField& h) {
  return msg.buffer().substr(h.begin, h.end - h.begin);
}

// The whole message (from the start line to the end of the body).
inline std::string_view wholeMessage(const sip::Message& msg) {
  return msg.buffer().substr(msg.startOffset(), msg.size() - msg.startOffset());
}

inline uint32_t offsetOf(const sip::Message& msg, std::string_view part) {
  return static_cast<uint32_t>(part.data() - msg.buffer().data());
}

// The To tag of a message ("" when none or unreadable).
std::string_view toTag(const sip::Message& msg);
std::string_view fromTag(const sip::Message& msg);

// Where the responses to a request received from `src` with top Via `via` go (RFC 3261 18.2.2,
// RFC 3581): the connection of a stream; over UDP the source address, with the sent-by port
// (5060 when absent) unless rport was asked for.
transport::Destination responseDestination(const transport::Source& src, const sip::Via& via);

}  // namespace evosip::transaction::wire
