#pragma once
// Reading and writing the raw text of a message: header lines and the whole message (private to
// the transaction layer and the proxy core).

#include <string>
#include <string_view>

#include <evosip/sip/message.hpp>

namespace evosip::transaction::text {

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

}  // namespace evosip::transaction::text
