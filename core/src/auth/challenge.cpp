#include <evosip/auth/challenge.hpp>

namespace evosip::auth {
namespace {

void appendQuoted(std::string& out, std::string_view v) {
  out.push_back('"');
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace

std::string buildChallenge(DigestAlgorithm algorithm, const ChallengeParams& params) {
  std::string out;
  out.reserve(96 + params.realm.size() + params.nonce.size() + params.opaque.size());
  out.append("Digest realm=");
  appendQuoted(out, params.realm);
  out.append(", nonce=");
  appendQuoted(out, params.nonce);
  if (!params.opaque.empty()) {
    out.append(", opaque=");
    appendQuoted(out, params.opaque);
  }
  out.append(", algorithm=").append(algorithmName(algorithm));
  out.append(", qop=\"auth\"");
  if (params.stale) {
    out.append(", stale=true");
  }
  return out;
}

std::array<std::string, 2> buildChallenges(const ChallengeParams& params) {
  return {buildChallenge(DigestAlgorithm::kSha256, params),
          buildChallenge(DigestAlgorithm::kMd5, params)};
}

}  // namespace evosip::auth
