#include <algorithm>
#include <optional>

#include <evosip/auth/verifier.hpp>
#include <evosip/base/strings.hpp>
#include <evosip/sip/uri.hpp>

namespace evosip::auth {
namespace {

constexpr std::chrono::seconds kNonceCountMargin{2};

Verdict verdict(VerifyResult r, std::string_view reason) {
  return Verdict{r, reason, 0, {}};
}

tl::unexpected<Verdict> refused(VerifyResult r, std::string_view reason) {
  return tl::unexpected<Verdict>(verdict(r, reason));
}

tl::unexpected<Verdict> malformed(std::string_view reason) {
  return refused(VerifyResult::kMalformed, reason);
}

// Values of sip::DigestParams keep their \-escapes; the hashes use the unescaped value.
std::string unescaped(std::string_view v) {
  return v.find('\\') == std::string_view::npos ? std::string(v) : sip::unquote(v);
}

bool isHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// nc-value = 8LHEX (upper case tolerated); 0 is not a count.
std::optional<uint32_t> parseNonceCount(std::string_view nc) {
  if (nc.size() != 8) {
    return std::nullopt;
  }
  uint32_t v = 0;
  for (char c : nc) {
    if (!isHex(c)) {
      return std::nullopt;
    }
    const char l = asciiLower(c);
    v = (v << 4) | static_cast<uint32_t>(l <= '9' ? l - '0' : l - 'a' + 10);
  }
  if (v == 0) {
    return std::nullopt;
  }
  return v;
}

size_t digestHexSize(DigestAlgorithm a) {
  return a == DigestAlgorithm::kMd5 ? 32 : 64;
}

}  // namespace

std::string_view verifyResultName(VerifyResult r) {
  switch (r) {
    case VerifyResult::kOk:
      return "ok";
    case VerifyResult::kStale:
      return "stale";
    case VerifyResult::kBadNonce:
      return "bad-nonce";
    case VerifyResult::kBadResponse:
      return "bad-response";
    case VerifyResult::kReplay:
      return "replay";
    case VerifyResult::kMalformed:
      return "malformed";
    case VerifyResult::kUnavailable:
      return "unavailable";
    case VerifyResult::kQopRefused:
      return "qop";
    case VerifyResult::kAlgorithmRefused:
      return "algorithm";
  }
  return "unknown";
}

bool digestUriMatches(std::string_view digestUri, std::string_view requestUri) {
  if (digestUri == requestUri) {
    return true;
  }
  auto d = sip::parseUri(digestUri);
  auto r = sip::parseUri(requestUri);
  if (!d || !r || !d->isSip() || !r->isSip()) {
    return false;
  }
  // The port is not compared: UAs that register through an outbound proxy, and testers like
  // sipp, write the address they sent to into the digest uri. The response hash covers the uri
  // they used, so a replay to another target still needs a fresh response.
  return d->scheme == r->scheme && d->user == r->user && iequals(d->host, r->host);
}

DigestVerifier::DigestVerifier(const NonceCodec& nonces, Settings settings)
    : nonces_(nonces), settings_(std::move(settings)) {}

tl::expected<CredentialsInfo, Verdict> DigestVerifier::inspect(std::string_view method,
                                                               std::string_view requestUri,
                                                               const sip::DigestParams& c,
                                                               std::string_view realm) const {
  if (!iequals(c.scheme, "Digest")) {
    return malformed("scheme is not Digest");
  }
  if (method.empty()) {
    return malformed("request method missing");
  }
  if (!c.hasUsername || !c.hasRealm || !c.hasNonce || !c.hasUri || !c.hasResponse ||
      c.nonce.empty() || c.uri.empty() || c.response.empty()) {
    return malformed("missing username, realm, nonce, uri or response");
  }
  if (c.username.size() > kMaxFieldSize || c.realm.size() > kMaxFieldSize ||
      c.uri.size() > kMaxFieldSize || c.cnonce.size() > kMaxFieldSize) {
    return malformed("parameter too long");
  }
  if (unescaped(c.realm) != realm) {
    return malformed("realm is not ours");
  }
  if (iequals(c.userhash, "true")) {
    return malformed("userhash is not supported");
  }
  CredentialsInfo info;
  if (!c.algorithm.empty()) {
    auto a = algorithmFromName(c.algorithm);
    if (!a) {
      return refused(VerifyResult::kAlgorithmRefused, "algorithm not offered");
    }
    info.algorithm = *a;
  }
  if (std::find(settings_.algorithms.begin(), settings_.algorithms.end(), info.algorithm) ==
      settings_.algorithms.end()) {
    return refused(VerifyResult::kAlgorithmRefused, "algorithm not offered");
  }
  if (c.qop.empty()) {
    if (settings_.requireQop) {
      return refused(VerifyResult::kQopRefused, "qop missing");
    }
    if (!c.nc.empty() || !c.cnonce.empty()) {
      return malformed("nc or cnonce without qop");
    }
  } else {
    if (!iequals(c.qop, "auth")) {
      return refused(VerifyResult::kQopRefused, "unsupported qop");
    }
    if (!parseNonceCount(c.nc)) {
      return malformed("nc is not 8 hex digits or is zero");
    }
    if (c.cnonce.empty()) {
      return malformed("cnonce missing");
    }
  }
  if (c.response.size() != digestHexSize(info.algorithm) ||
      !std::all_of(c.response.begin(), c.response.end(), isHex)) {
    return malformed("response is not a hex digest of the algorithm");
  }
  if (!settings_.opaque.empty() && unescaped(c.opaque) != settings_.opaque) {
    return malformed("opaque differs from the challenge");
  }
  if (!digestUriMatches(unescaped(c.uri), requestUri)) {
    return malformed("uri differs from the Request-URI");
  }
  info.username = unescaped(c.username);
  return info;
}

tl::expected<CredentialsInfo, Verdict> DigestVerifier::precheck(std::string_view method,
                                                                std::string_view requestUri,
                                                                const sip::DigestParams& c,
                                                                std::string_view realm,
                                                                WallTime now) const {
  auto info = inspect(method, requestUri, c, realm);
  if (!info) {
    return info;
  }
  const NonceCodec::Check nonce = nonces_.check(c.nonce, realm, now);
  if (nonce.status == NonceCodec::Status::kInvalid) {
    return refused(VerifyResult::kBadNonce, "nonce not issued for this realm by us");
  }
  if (nonce.status == NonceCodec::Status::kExpired) {
    return refused(VerifyResult::kStale, "nonce expired");
  }
  info->nonceRemaining = nonce.remaining;
  return info;
}

Verdict DigestVerifier::verify(const VerifyInput& in) const {
  const sip::DigestParams& c = in.credentials;
  auto info = precheck(in.method, in.requestUri, c, in.realm, in.now);
  if (!info) {
    return info.error();
  }
  if (in.ha1.size() != digestHexSize(info->algorithm)) {
    return verdict(VerifyResult::kBadResponse, "stored HA1 does not fit the algorithm");
  }
  const std::string uri = unescaped(c.uri);
  const std::string cnonce = unescaped(c.cnonce);
  const bool withQop = !c.qop.empty();
  const std::string expected = computeResponse(ResponseInput{
      .algorithm = info->algorithm,
      .ha1 = in.ha1,
      .nonce = c.nonce,
      .method = in.method,
      .uri = uri,
      .qop = withQop ? DigestQop::kAuth : DigestQop::kNone,
      .qopText = c.qop,
      .nc = c.nc,
      .cnonce = cnonce,
  });
  std::string got(c.response);
  for (char& ch : got) {
    ch = asciiLower(ch);
  }
  if (!constantTimeEquals(expected, got)) {
    return verdict(VerifyResult::kBadResponse, "response does not match");
  }
  Verdict ok = verdict(VerifyResult::kOk, "credentials verified");
  if (withQop) {
    ok.nc = *parseNonceCount(c.nc);
    // The record must outlive the nonce: its remaining life, the clock skew the codec
    // tolerates between routers, and the rounding to whole seconds.
    ok.nonceTtl = info->nonceRemaining + nonces_.settings().maxClockSkew + kNonceCountMargin;
  }
  return ok;
}

void DigestVerifier::verify(const VerifyInput& in, NonceCountStore& counts,
                            std::function<void(Verdict)> done) const {
  Verdict v = verify(in);
  if (v.result != VerifyResult::kOk || v.nc == 0) {
    done(v);
    return;
  }
  counts.checkAndSet(
      in.credentials.nonce, v.nc, v.nonceTtl, [v, done = std::move(done)](NonceCountVerdict r) {
        switch (r) {
          case NonceCountVerdict::kFresh:
            done(v);
            return;
          case NonceCountVerdict::kReplay:
            done(verdict(VerifyResult::kReplay, "nonce count already used"));
            return;
          case NonceCountVerdict::kUnavailable:
            done(verdict(VerifyResult::kUnavailable, "nonce-count store unavailable"));
            return;
        }
      });
}

std::vector<std::string> DigestVerifier::challenge(std::string_view realm, bool stale,
                                                   WallTime now) const {
  const std::string nonce = nonces_.issue(realm, now);
  const ChallengeParams params{
      .realm = realm, .nonce = nonce, .stale = stale, .opaque = settings_.opaque};
  std::vector<std::string> out;
  out.reserve(settings_.algorithms.size());
  for (auto a : settings_.algorithms) {
    out.push_back(buildChallenge(a, params));
  }
  return out;
}

}  // namespace evosip::auth
