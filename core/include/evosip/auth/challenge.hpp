#pragma once
// Digest challenges (RFC 3261 22.1-22.3, RFC 8760): a registrar answers 401 with
// WWW-Authenticate and reads Authorization; a proxy answers 407 with Proxy-Authenticate and
// reads Proxy-Authorization. Both algorithms are offered, SHA-256 first (RFC 8760 2.4: the
// client uses the first one it supports), with the same nonce.

#include <array>
#include <string>
#include <string_view>

#include <evosip/auth/digest.hpp>
#include <evosip/sip/method.hpp>

namespace evosip::auth {

enum class ChallengeKind {
  kWww,    // 401 Unauthorized, WWW-Authenticate / Authorization (REGISTER)
  kProxy,  // 407 Proxy Authentication Required, Proxy-Authenticate / Proxy-Authorization
};

// REGISTER is challenged by the registrar (401); every other request by the proxy (407).
constexpr ChallengeKind challengeKindFor(sip::Method m) {
  return m == sip::Method::kRegister ? ChallengeKind::kWww : ChallengeKind::kProxy;
}
constexpr int challengeStatus(ChallengeKind k) {
  return k == ChallengeKind::kWww ? 401 : 407;
}
constexpr std::string_view challengeReason(ChallengeKind k) {
  return k == ChallengeKind::kWww ? "Unauthorized" : "Proxy Authentication Required";
}
constexpr std::string_view challengeHeaderName(ChallengeKind k) {
  return k == ChallengeKind::kWww ? "WWW-Authenticate" : "Proxy-Authenticate";
}
constexpr std::string_view credentialsHeaderName(ChallengeKind k) {
  return k == ChallengeKind::kWww ? "Authorization" : "Proxy-Authorization";
}

struct ChallengeParams {
  std::string_view realm;
  std::string_view nonce;
  bool stale = false;       // the previous nonce expired but the credentials were right
  std::string_view opaque;  // omitted when empty
};

// One header value: Digest realm="...", nonce="...", [opaque="...", ]algorithm=A, qop="auth"
// [, stale=true]. realm and opaque are escaped as quoted-strings.
std::string buildChallenge(DigestAlgorithm algorithm, const ChallengeParams& params);

// The two header values in the order they must appear: SHA-256, then MD5.
std::array<std::string, 2> buildChallenges(const ChallengeParams& params);

}  // namespace evosip::auth
