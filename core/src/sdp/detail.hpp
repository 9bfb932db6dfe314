#pragma once
// Private pieces shared by the SDP sources.

#include <optional>
#include <string_view>

#include <evosip/sdp/session_description.hpp>

namespace evosip::sdp::detail {

// "<nettype> <addrtype> <address>[/ttl[/count]]" (c= values and the tail of a=rtcp). `text`
// becomes the given value with surrounding spaces trimmed. nullopt unless exactly three fields.
std::optional<Connection> parseConnection(std::string_view value);

AddrType addrTypeOf(std::string_view addrType);

}  // namespace evosip::sdp::detail
