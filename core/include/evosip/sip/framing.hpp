#pragma once
// Stream framing (RFC 3261 18.3): finds where the first message of a TCP/TLS byte stream ends.

#include <cstddef>
#include <string_view>

#include <evosip/base/result.hpp>

namespace evosip::sip {

struct Frame {
  enum class Kind { kMessage, kKeepAlive, kNeedMore } kind = Kind::kNeedMore;
  size_t length = 0;  // bytes of the message or keep-alive to consume
};

// kKeepAlive for a leading CRLF CRLF ping (RFC 5626 4.4.1; the caller answers CRLF) or for
// stray CRLFs between messages (length = number of CR/LF bytes to skip, no answer needed when
// it is not a double CRLF: `pong` says whether to answer).
// kNeedMore when the header block or the body is incomplete.
// Errors: kTooLarge when the header block or Content-Length exceeds maxSize; kParse when a
// complete header block has no valid Content-Length (mandatory on streams).
struct StreamFrame {
  Frame frame;
  bool pong = false;
};
Result<StreamFrame> frameStream(std::string_view data, size_t maxSize);

}  // namespace evosip::sip
