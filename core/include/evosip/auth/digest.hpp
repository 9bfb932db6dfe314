#pragma once
// HTTP Digest for SIP (RFC 3261 22, RFC 2617, RFC 7616, RFC 8760): the hashes shared by the
// registrar, which verifies credentials, and the API, which stores only HA1 values.

#include <optional>
#include <string>
#include <string_view>

namespace evosip::auth {

enum class DigestAlgorithm { kMd5, kSha256 };

// "MD5" / "SHA-256" (case-insensitive; "-sess" variants are not supported) -> algorithm.
std::optional<DigestAlgorithm> algorithmFromName(std::string_view name);
std::string_view algorithmName(DigestAlgorithm a);  // "MD5", "SHA-256"

// Lower-case hex digest of `data` with the algorithm's hash.
std::string hexDigest(DigestAlgorithm a, std::string_view data);

// HA1 = H(username ":" realm ":" password), lower-case hex.
std::string computeHa1(DigestAlgorithm a, std::string_view username, std::string_view realm,
                       std::string_view password);

// Quality of protection of a response: qop=auth (RFC 2617/7616) or none (RFC 2069 legacy).
// auth-int is not supported.
enum class DigestQop { kNone, kAuth };

// The inputs of the request-digest. Strings are used exactly as the client sent them (after
// removing quotes): nc as its 8 hex digits, qop as written.
struct ResponseInput {
  DigestAlgorithm algorithm = DigestAlgorithm::kMd5;
  std::string_view ha1;  // lower-case hex HA1 for `algorithm`
  std::string_view nonce;
  std::string_view method;  // request method, e.g. "REGISTER"
  std::string_view uri;     // digest-uri
  DigestQop qop = DigestQop::kAuth;
  std::string_view qopText = "auth";  // the qop value as sent (hashed verbatim)
  std::string_view nc;                // qop=auth only
  std::string_view cnonce;            // qop=auth only
};

// request-digest, lower-case hex:
//   qop=auth: H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" H(method ":" uri))
//   no qop:   H(HA1 ":" nonce ":" H(method ":" uri))
std::string computeResponse(const ResponseInput& in);

// Compares two equal-length-or-not byte strings in time that depends only on their lengths
// (lengths are not secret: digests have a fixed size per algorithm).
bool constantTimeEquals(std::string_view a, std::string_view b);

}  // namespace evosip::auth
