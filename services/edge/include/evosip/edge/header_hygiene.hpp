#pragma once
// Header hygiene: the edge refuses a message whose start line or header fields carry a control
// character. RFC 3261 allows none in header text except HTAB and the CRLF of a folded line
// (CRLF followed by SP or HTAB); a NUL, a lone CR or LF, ESC or DEL inside a value only ever
// serves to confuse the next parser (header injection, truncated logs, split values).

#include <optional>
#include <string_view>

#include <evosip/sip/message.hpp>

namespace evosip::edge {

// "start line" or the name of the first header field (as written) that carries a C0 control
// character other than HTAB, or DEL; nullopt when the message is clean. The body is not looked
// at (bodies may be binary).
std::optional<std::string_view> findControlCharacter(const sip::Message& msg);

}  // namespace evosip::edge
