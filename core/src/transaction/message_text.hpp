#pragma once
// Reading and writing the raw text of a message: header lines, the whole message, tags, hex
// tokens for branches and tags (private to the transaction layer and the proxy core).

#include <cstdint>
#include <string>
#include <string_view>

#include <evosip/sip/address.hpp>
#include <evosip/sip/message.hpp>

namespace evosip::transaction::text {

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

// The To tag of a message ("" when none or unreadable).
std::string_view toTag(const sip::Message& msg);
std::string_view fromTag(const sip::Message& msg);

}  // namespace evosip::transaction::text
