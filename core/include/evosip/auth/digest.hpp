#pragma once
// HTTP Digest for SIP (RFC 3261 22, RFC 7616, RFC 8760): the hashes shared by the registrar,
// which verifies credentials, and the API, which stores only HA1 values.

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

}  // namespace evosip::auth
