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

// The reply to a request whose headers are readable but whose Content-Length is not (a stream
// that cannot be framed, a datagram whose body length is wrong): the header block is parsed
// without its Content-Length lines and answered with `code`. Empty when no reply is possible
// (no complete header block, not a request, an ACK, no Via).
std::string buildUnframedResponse(std::string_view data, int code);

}  // namespace evosip::sip
