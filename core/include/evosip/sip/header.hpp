#pragma once
// Header names: ids for the headers a role may touch, full and compact forms (RFC 3261 7.3.3).

#include <cstdint>
#include <string_view>

namespace evosip::sip {

enum class HeaderId : uint8_t {
  kOther,
  kVia,                 // v
  kFrom,                // f
  kTo,                  // t
  kCallId,              // i
  kCSeq,
  kContact,             // m
  kMaxForwards,
  kRoute,
  kRecordRoute,
  kContentLength,       // l
  kContentType,         // c
  kContentEncoding,     // e
  kExpires,
  kMinExpires,
  kPath,
  kAuthorization,
  kProxyAuthorization,
  kWwwAuthenticate,
  kProxyAuthenticate,
  kAuthenticationInfo,
  kSupported,           // k
  kRequire,
  kProxyRequire,
  kUnsupported,
  kAllow,
  kAccept,
  kEvent,               // o
  kSubject,             // s
  kReferTo,             // r
  kReferredBy,          // b
  kSessionExpires,      // x
  kUserAgent,
  kServer,
  kRetryAfter,
  kTimestamp,
  kRSeq,
  kRAck,
  kCount,
};

// Case-insensitive, accepts compact forms. kOther for anything else.
HeaderId headerIdFromName(std::string_view name) noexcept;
// Canonical full name ("Via", "Call-ID", "CSeq", ...); "" for kOther.
std::string_view headerName(HeaderId id) noexcept;

}  // namespace evosip::sip
