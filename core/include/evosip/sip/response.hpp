#pragma once
// Builds a response to a request (RFC 3261 8.2.6): copies Via (all), From, To (adding a tag
// when given and the To has none), Call-ID and CSeq; adds the extra header lines given and
// Content-Length: 0.

#include <string>
#include <string_view>

#include <evosip/sip/message.hpp>

namespace evosip::sip {

std::string_view defaultReason(int code) noexcept;

// extraHeaders: complete header lines, each ending with CRLF (may be empty).
// Returns false when the request has no Via (nowhere to send a response); the caller then drops
// the request. Missing From/To/Call-ID/CSeq are left out of the response (a 400 for such a request
// still reaches the sender).
bool buildResponse(const Message& request, int code, std::string_view reason,
                   std::string_view toTag, std::string_view extraHeaders, std::string& out);

}  // namespace evosip::sip
