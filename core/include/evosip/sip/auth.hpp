#pragma once
// Authorization / WWW-Authenticate / Proxy-* parameters (RFC 3261 22, RFC 7616, RFC 8760).

#include <string>
#include <string_view>

#include <evosip/base/result.hpp>

namespace evosip::sip {

struct DigestParams {
  std::string_view scheme;  // "Digest" (case-insensitive compare)
  // Values with their quotes removed (escapes kept as written; see unquote()).
  std::string_view username, realm, nonce, uri, response, algorithm, cnonce, opaque, qop, nc,
      stale, domain, userhash;
  bool hasUsername = false, hasRealm = false, hasNonce = false, hasUri = false,
       hasResponse = false;
};

// Parses "Digest k=v, k="v", ..." in a credentials or challenge header value. Unknown
// parameters are skipped; duplicates are an error; unterminated quotes are an error.
Result<DigestParams> parseDigest(std::string_view value);

// Resolves \-escapes of a quoted-string body.
std::string unquote(std::string_view quotedBody);

}  // namespace evosip::sip
