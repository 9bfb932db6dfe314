#include <manual_clock.hpp>
#include <optional>

#include <gtest/gtest.h>

#include <evosip/auth/verifier.hpp>

namespace evosip::auth {
namespace {

using std::chrono::seconds;

constexpr std::string_view kRealm = "evosip.local";
constexpr std::string_view kPassword = "s3cret-Pw";
constexpr std::string_view kSecret = "shared-by-all-routers-0123456789";
const WallTime kT0{seconds(1'700'000'000)};

NonceCodec::Settings codecSettings(std::string_view secret = kSecret) {
  NonceCodec::Settings s;
  s.secret = std::string(secret);
  return s;
}

// What a phone puts in its Authorization header after a challenge.
struct ClientAuth {
  DigestAlgorithm algorithm = DigestAlgorithm::kSha256;
  std::string user = "alice";
  std::string realm = std::string(kRealm);
  std::string password = std::string(kPassword);
  std::string method = "REGISTER";
  std::string uri = "sip:evosip.local";
  std::string nonce;
  std::string nc = "00000001";
  std::string cnonce = "0a4f113b";
  std::string qop = "auth";
  std::string algorithmText;  // defaults to algorithmName(algorithm); "-" omits it
  std::string extra;          // appended parameters

  std::string header() const {
    const std::string ha1 = computeHa1(algorithm, user, realm, password);
    const std::string response =
        computeResponse({.algorithm = algorithm,
                         .ha1 = ha1,
                         .nonce = nonce,
                         .method = method,
                         .uri = uri,
                         .qop = qop.empty() ? DigestQop::kNone : DigestQop::kAuth,
                         .qopText = qop,
                         .nc = nc,
                         .cnonce = cnonce});
    std::string h = "Digest username=\"" + user + "\", realm=\"" + realm + "\", nonce=\"" + nonce +
                    "\", uri=\"" + uri + "\", response=\"" + response + "\"";
    const std::string alg =
        algorithmText.empty() ? std::string(algorithmName(algorithm)) : algorithmText;
    if (alg != "-") {
      h += ", algorithm=" + alg;
    }
    if (!qop.empty()) {
      h += ", qop=" + qop + ", nc=" + nc + ", cnonce=\"" + cnonce + "\"";
    }
    return h + extra;
  }
};

class VerifierTest : public ::testing::Test {
 protected:
  std::string ha1(DigestAlgorithm a) const { return computeHa1(a, "alice", kRealm, kPassword); }

  // Parses the header and runs the whole verification, nonce count included.
  Verdict verify(const ClientAuth& client, WallTime now, std::string_view requestUri = {},
                 std::optional<std::string> storedHa1 = std::nullopt) {
    const std::string header = client.header();
    auto params = sip::parseDigest(header);
    EXPECT_TRUE(params) << header;
    if (!params) {
      return {};
    }
    const std::string h = storedHa1 ? *storedHa1 : ha1(client.algorithm);
    std::optional<Verdict> out;
    verifier_.verify(
        VerifyInput{.method = client.method,
                    .requestUri = requestUri.empty() ? std::string_view(client.uri) : requestUri,
                    .credentials = *params,
                    .realm = kRealm,
                    .ha1 = h,
                    .now = now},
        counts_, [&](Verdict v) { out = v; });
    EXPECT_TRUE(out.has_value());
    return out.value_or(Verdict{});
  }

  ClientAuth challenged(DigestAlgorithm a = DigestAlgorithm::kSha256) {
    ClientAuth c;
    c.algorithm = a;
    c.nonce = codec_.issue(kRealm, kT0);
    return c;
  }

  test::ManualClock clock_;
  NonceCodec codec_{codecSettings()};
  DigestVerifier verifier_{codec_};
  MemoryNonceCountStore counts_{{}, clock_};
};

TEST_F(VerifierTest, RegisterWithSha256AndMd5) {
  for (auto a : {DigestAlgorithm::kSha256, DigestAlgorithm::kMd5}) {
    const Verdict v = verify(challenged(a), kT0 + seconds(1));
    EXPECT_EQ(v.result, VerifyResult::kOk) << v.reason;
    EXPECT_EQ(v.nc, 1u);
    EXPECT_EQ(v.nonceTtl, seconds(299 + 30 + 2));
  }
}

TEST_F(VerifierTest, FlowFromTheChallengeHeaders) {
  // One challenge per configured algorithm, in the configured order, with one nonce.
  const auto values = verifier_.challenge(kRealm, false, kT0);
  ASSERT_EQ(values.size(), 2u);
  auto md5 = sip::parseDigest(values[0]);
  auto sha = sip::parseDigest(values[1]);
  ASSERT_TRUE(md5 && sha);
  EXPECT_EQ(md5->algorithm, "MD5");
  EXPECT_EQ(sha->algorithm, "SHA-256");
  EXPECT_EQ(md5->nonce, sha->nonce);
  ClientAuth c;
  c.nonce = std::string(sha->nonce);
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kOk);

  DigestVerifier shaOnly(codec_, {.algorithms = {DigestAlgorithm::kSha256}});
  const auto one = shaOnly.challenge(kRealm, false, kT0);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_NE(one[0].find("algorithm=SHA-256"), std::string::npos) << one[0];
}

TEST_F(VerifierTest, NonceFromRouterAAcceptedByRouterB) {
  NonceCodec codecA(codecSettings());
  NonceCodec codecB(codecSettings());
  DigestVerifier routerA(codecA);
  DigestVerifier routerB(codecB);
  const auto values = routerA.challenge(kRealm, false, kT0);
  auto challenge = sip::parseDigest(values[0]);
  ASSERT_TRUE(challenge);
  ClientAuth c;
  c.nonce = std::string(challenge->nonce);
  const std::string header = c.header();
  auto params = sip::parseDigest(header);
  ASSERT_TRUE(params);
  const std::string h = ha1(DigestAlgorithm::kSha256);
  const Verdict v = routerB.verify(VerifyInput{.method = "REGISTER",
                                               .requestUri = "sip:evosip.local",
                                               .credentials = *params,
                                               .realm = kRealm,
                                               .ha1 = h,
                                               .now = kT0 + seconds(5)});
  EXPECT_EQ(v.result, VerifyResult::kOk) << v.reason;

  // A router of another cluster (other secret) does not accept it.
  NonceCodec foreign(codecSettings("a-different-secret-0123456789"));
  const Verdict f = DigestVerifier(foreign).verify(VerifyInput{.method = "REGISTER",
                                                               .requestUri = "sip:evosip.local",
                                                               .credentials = *params,
                                                               .realm = kRealm,
                                                               .ha1 = h,
                                                               .now = kT0 + seconds(5)});
  EXPECT_EQ(f.result, VerifyResult::kBadNonce);
}

TEST_F(VerifierTest, ExpiredNonceIsStaleBeforeTheResponseIsChecked) {
  EXPECT_EQ(verify(challenged(), kT0 + seconds(301)).result, VerifyResult::kStale);
  // The age is decided without the HA1 (no credential lookup for an old nonce), so a wrong
  // password with an expired nonce is stale too.
  ClientAuth wrong = challenged();
  wrong.password = "guess";
  EXPECT_EQ(verify(wrong, kT0 + seconds(301)).result, VerifyResult::kStale);
  const std::string header = wrong.header();
  auto params = sip::parseDigest(header);
  ASSERT_TRUE(params);
  auto pre = verifier_.precheck("REGISTER", wrong.uri, *params, kRealm, kT0 + seconds(301));
  ASSERT_FALSE(pre);
  EXPECT_EQ(pre.error().result, VerifyResult::kStale);
}

TEST_F(VerifierTest, PrecheckDecidesEverythingButTheResponse) {
  ClientAuth c = challenged();
  c.password = "guess";  // precheck cannot know
  const std::string header = c.header();
  auto params = sip::parseDigest(header);
  ASSERT_TRUE(params);
  auto pre = verifier_.precheck("REGISTER", c.uri, *params, kRealm, kT0 + seconds(100));
  ASSERT_TRUE(pre) << pre.error().reason;
  EXPECT_EQ(pre->username, "alice");
  EXPECT_EQ(pre->algorithm, DigestAlgorithm::kSha256);
  EXPECT_EQ(pre->nonceRemaining, seconds(200));
  c.nonce[5] = c.nonce[5] == 'a' ? 'b' : 'a';
  const std::string forged = c.header();
  params = sip::parseDigest(forged);
  ASSERT_TRUE(params);
  pre = verifier_.precheck("REGISTER", c.uri, *params, kRealm, kT0);
  ASSERT_FALSE(pre);
  EXPECT_EQ(pre.error().result, VerifyResult::kBadNonce);
}

TEST_F(VerifierTest, TamperedNonceIsBadNonce) {
  ClientAuth c = challenged();
  c.nonce[20] = c.nonce[20] == 'x' ? 'y' : 'x';
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kBadNonce);
  c.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";  // not ours at all
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kBadNonce);
}

TEST_F(VerifierTest, NonceForAnotherRealmIsBadNonce) {
  ClientAuth c = challenged();
  c.nonce = codec_.issue("other.example", kT0);
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kBadNonce);
}

TEST_F(VerifierTest, WrongPasswordIsBadResponse) {
  ClientAuth c = challenged();
  c.password = "s3cret-pw";
  const Verdict v = verify(c, kT0);
  EXPECT_EQ(v.result, VerifyResult::kBadResponse);
  EXPECT_EQ(v.nc, 0u);
}

TEST_F(VerifierTest, ReplayedNonceCountIsRefused) {
  ClientAuth c = challenged();
  EXPECT_EQ(verify(c, kT0 + seconds(1)).result, VerifyResult::kOk);
  EXPECT_EQ(verify(c, kT0 + seconds(2)).result, VerifyResult::kReplay);
  c.nc = "00000003";
  EXPECT_EQ(verify(c, kT0 + seconds(3)).result, VerifyResult::kOk);
  c.nc = "00000002";  // lower than the last accepted one
  EXPECT_EQ(verify(c, kT0 + seconds(4)).result, VerifyResult::kReplay);
  c.nc = "0000000A";
  EXPECT_EQ(verify(c, kT0 + seconds(5)).result, VerifyResult::kOk);
}

TEST_F(VerifierTest, ForgedRequestsDoNotAdvanceTheCount) {
  ClientAuth forged = challenged();
  forged.password = "guess";
  forged.nc = "00000009";
  EXPECT_EQ(verify(forged, kT0).result, VerifyResult::kBadResponse);
  ClientAuth real = forged;
  real.password = std::string(kPassword);
  real.nc = "00000001";
  EXPECT_EQ(verify(real, kT0).result, VerifyResult::kOk);
}

TEST_F(VerifierTest, UriMustMatchTheRequestUri) {
  ClientAuth c = challenged();
  c.uri = "sip:bob@evosip.local";
  const Verdict v = verify(c, kT0, "sip:evosip.local");
  EXPECT_EQ(v.result, VerifyResult::kMalformed);
  EXPECT_EQ(v.reason, "uri differs from the Request-URI");
  // Same target written differently: parameters, host case, default port.
  c.uri = "sip:EVOSIP.local;transport=tcp";
  EXPECT_EQ(verify(c, kT0, "sip:evosip.local:5060").result, VerifyResult::kOk);
  c.uri = "sips:evosip.local";
  c.nc = "00000002";
  EXPECT_EQ(verify(c, kT0, "sip:evosip.local").result, VerifyResult::kMalformed);
}

TEST_F(VerifierTest, UnsupportedAlgorithmOrQopIsRefused) {
  ClientAuth c = challenged(DigestAlgorithm::kMd5);
  c.algorithmText = "MD5-sess";
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kAlgorithmRefused);
  c.algorithmText = "SHA-512-256";
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kAlgorithmRefused);
  c.algorithmText = "";
  c.qop = "auth-int";
  const Verdict v = verify(c, kT0);
  EXPECT_EQ(v.result, VerifyResult::kQopRefused);
  EXPECT_EQ(v.reason, "unsupported qop");
}

TEST_F(VerifierTest, OnlyTheConfiguredAlgorithmsAreAccepted) {
  DigestVerifier shaOnly(codec_, {.algorithms = {DigestAlgorithm::kSha256}});
  auto run = [&](const DigestVerifier& v, const ClientAuth& c) {
    const std::string header = c.header();
    auto params = sip::parseDigest(header);
    EXPECT_TRUE(params);
    const std::string h = ha1(c.algorithm);
    return v
        .verify(VerifyInput{.method = c.method,
                            .requestUri = c.uri,
                            .credentials = *params,
                            .realm = kRealm,
                            .ha1 = h,
                            .now = kT0})
        .result;
  };
  // A right MD5 answer is refused unverified when only SHA-256 is configured...
  ClientAuth md5 = challenged(DigestAlgorithm::kMd5);
  EXPECT_EQ(run(shaOnly, md5), VerifyResult::kAlgorithmRefused);
  md5.algorithmText = "-";  // no algorithm parameter means MD5
  EXPECT_EQ(run(shaOnly, md5), VerifyResult::kAlgorithmRefused);
  EXPECT_EQ(run(shaOnly, challenged(DigestAlgorithm::kSha256)), VerifyResult::kOk);
  // ...and the other way round.
  DigestVerifier md5Only(codec_, {.algorithms = {DigestAlgorithm::kMd5}});
  EXPECT_EQ(run(md5Only, challenged(DigestAlgorithm::kSha256)), VerifyResult::kAlgorithmRefused);
  EXPECT_EQ(run(md5Only, challenged(DigestAlgorithm::kMd5)), VerifyResult::kOk);
}

TEST_F(VerifierTest, AlgorithmOmittedMeansMd5) {
  ClientAuth c = challenged(DigestAlgorithm::kMd5);
  c.algorithmText = "-";
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kOk);
  auto info = verifier_.inspect("REGISTER", c.uri, *sip::parseDigest(c.header()), kRealm);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->algorithm, DigestAlgorithm::kMd5);
  EXPECT_EQ(info->username, "alice");
}

TEST_F(VerifierTest, MissingOrBadFieldsAreMalformed) {
  const ClientAuth ok = challenged();
  const std::string h = ha1(DigestAlgorithm::kSha256);
  auto check = [&](const std::string& header) {
    auto params = sip::parseDigest(header);
    EXPECT_TRUE(params) << header;
    return verifier_
        .verify(VerifyInput{.method = "REGISTER",
                            .requestUri = "sip:evosip.local",
                            .credentials = *params,
                            .realm = kRealm,
                            .ha1 = h,
                            .now = kT0})
        .result;
  };
  const std::string full = ok.header();
  EXPECT_EQ(check(full), VerifyResult::kOk);
  for (std::string_view field : {"username=", "realm=", "nonce=", "uri=", "response="}) {
    std::string header = full;
    const size_t at = header.find(field);
    const size_t end = header.find(", ", at);
    header.erase(at, end + 2 - at);
    EXPECT_EQ(check(header), VerifyResult::kMalformed) << header;
  }
  std::string basic = full;
  basic.replace(0, 6, "Basic ");
  EXPECT_EQ(check(basic), VerifyResult::kMalformed);

  ClientAuth c = ok;
  c.nc = "1";
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kMalformed);
  c.nc = "00000000";
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kMalformed);
  c.nc = "0000000g";
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kMalformed);
  c = ok;
  c.cnonce = "";
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kMalformed);
  c = ok;
  c.realm = "other.example";
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kMalformed);
  c = ok;
  c.extra = ", userhash=true";
  EXPECT_EQ(verify(c, kT0).result, VerifyResult::kMalformed);
  // An MD5-sized response while SHA-256 is claimed.
  c = ok;
  c.algorithm = DigestAlgorithm::kMd5;
  c.algorithmText = "SHA-256";
  EXPECT_EQ(verify(c, kT0, {}, ha1(DigestAlgorithm::kSha256)).result, VerifyResult::kMalformed);
}

TEST_F(VerifierTest, Rfc2069ResponsesWithoutQopRefusedByDefault) {
  ClientAuth c = challenged(DigestAlgorithm::kMd5);
  c.qop = "";
  const Verdict refused = verify(c, kT0);
  EXPECT_EQ(refused.result, VerifyResult::kQopRefused) << refused.reason;
  EXPECT_EQ(refused.reason, "qop missing");

  DigestVerifier lenient(codec_, {.requireQop = false});
  const std::string header = c.header();
  auto params = sip::parseDigest(header);
  ASSERT_TRUE(params);
  const std::string h = ha1(DigestAlgorithm::kMd5);
  const Verdict v = lenient.verify(VerifyInput{.method = "REGISTER",
                                               .requestUri = c.uri,
                                               .credentials = *params,
                                               .realm = kRealm,
                                               .ha1 = h,
                                               .now = kT0});
  EXPECT_EQ(v.result, VerifyResult::kOk) << v.reason;
  EXPECT_EQ(v.nc, 0u);  // nothing to count
  EXPECT_EQ(counts_.size(), 0u);

  // nc and cnonce make no sense without qop.
  c.extra = ", nc=00000001";
  const std::string withNc = c.header();
  params = sip::parseDigest(withNc);
  ASSERT_TRUE(params);
  EXPECT_EQ(lenient
                .verify(VerifyInput{.method = "REGISTER",
                                    .requestUri = c.uri,
                                    .credentials = *params,
                                    .realm = kRealm,
                                    .ha1 = h,
                                    .now = kT0})
                .result,
            VerifyResult::kMalformed);
}

TEST_F(VerifierTest, OpaqueMustComeBackUnchanged) {
  DigestVerifier withOpaque(codec_, {.opaque = "5ccc069c403ebaf9"});
  const auto values = withOpaque.challenge(kRealm, true, kT0);
  EXPECT_NE(values[0].find("opaque=\"5ccc069c403ebaf9\""), std::string::npos);
  EXPECT_NE(values[0].find("stale=true"), std::string::npos);
  ClientAuth c = challenged();
  const std::string h = ha1(DigestAlgorithm::kSha256);
  auto run = [&](const std::string& extra) {
    c.extra = extra;
    const std::string header = c.header();
    auto params = sip::parseDigest(header);
    EXPECT_TRUE(params);
    return withOpaque
        .verify(VerifyInput{.method = "REGISTER",
                            .requestUri = c.uri,
                            .credentials = *params,
                            .realm = kRealm,
                            .ha1 = h,
                            .now = kT0})
        .result;
  };
  EXPECT_EQ(run(", opaque=\"5ccc069c403ebaf9\""), VerifyResult::kOk);
  EXPECT_EQ(run(", opaque=\"other\""), VerifyResult::kMalformed);
  EXPECT_EQ(run(""), VerifyResult::kMalformed);
}

TEST_F(VerifierTest, UnusableStoredHa1IsBadResponse) {
  const Verdict v = verify(challenged(), kT0, {}, std::string("not-a-ha1"));
  EXPECT_EQ(v.result, VerifyResult::kBadResponse);
  // A user without a SHA-256 HA1 in the API answering with SHA-256.
  EXPECT_EQ(verify(challenged(), kT0, {}, std::string()).result, VerifyResult::kBadResponse);
}

TEST_F(VerifierTest, UpperCaseResponseHexIsAccepted) {
  ClientAuth c = challenged();
  std::string header = c.header();
  const size_t at = header.find("response=\"") + 10;
  for (size_t i = at; header[i] != '"'; ++i) {
    header[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(header[i])));
  }
  auto params = sip::parseDigest(header);
  ASSERT_TRUE(params);
  const std::string h = ha1(DigestAlgorithm::kSha256);
  EXPECT_EQ(verifier_
                .verify(VerifyInput{.method = "REGISTER",
                                    .requestUri = c.uri,
                                    .credentials = *params,
                                    .realm = kRealm,
                                    .ha1 = h,
                                    .now = kT0})
                .result,
            VerifyResult::kOk);
}

TEST_F(VerifierTest, MethodIsPartOfTheResponse) {
  ClientAuth c = challenged();
  c.method = "INVITE";
  c.uri = "sip:bob@evosip.local";
  const std::string header = c.header();
  auto params = sip::parseDigest(header);
  ASSERT_TRUE(params);
  const std::string h = ha1(DigestAlgorithm::kSha256);
  auto run = [&](std::string_view method) {
    return verifier_
        .verify(VerifyInput{.method = method,
                            .requestUri = c.uri,
                            .credentials = *params,
                            .realm = kRealm,
                            .ha1 = h,
                            .now = kT0})
        .result;
  };
  EXPECT_EQ(run("INVITE"), VerifyResult::kOk);
  EXPECT_EQ(run("BYE"), VerifyResult::kBadResponse);
}

// A store that answers later, like the shared store would.
class DeferredStore final : public NonceCountStore {
 public:
  void checkAndSet(std::string_view nonce, uint32_t nc, seconds ttl, Callback done) override {
    nonce_ = std::string(nonce);
    nc_ = nc;
    ttl_ = ttl;
    done_ = std::move(done);
  }
  std::string nonce_;
  uint32_t nc_ = 0;
  seconds ttl_{0};
  Callback done_;
};

TEST_F(VerifierTest, StoreBackedCountAnswersLater) {
  DeferredStore store;
  ClientAuth c = challenged();
  c.nc = "00000007";
  const std::string header = c.header();
  auto params = sip::parseDigest(header);
  ASSERT_TRUE(params);
  const std::string h = ha1(DigestAlgorithm::kSha256);
  std::vector<VerifyResult> results;
  for (int i = 0; i < 3; ++i) {
    verifier_.verify(VerifyInput{.method = "REGISTER",
                                 .requestUri = c.uri,
                                 .credentials = *params,
                                 .realm = kRealm,
                                 .ha1 = h,
                                 .now = kT0 + seconds(100)},
                     store, [&](Verdict v) { results.push_back(v.result); });
    EXPECT_EQ(store.nonce_, c.nonce);
    EXPECT_EQ(store.nc_, 7u);
    EXPECT_EQ(store.ttl_, seconds(200 + 30 + 2));
    EXPECT_TRUE(results.size() == static_cast<size_t>(i));
    store.done_(i == 0   ? NonceCountVerdict::kFresh
                : i == 1 ? NonceCountVerdict::kReplay
                         : NonceCountVerdict::kUnavailable);
  }
  EXPECT_EQ(results, (std::vector<VerifyResult>{VerifyResult::kOk, VerifyResult::kReplay,
                                                VerifyResult::kUnavailable}));
}

TEST_F(VerifierTest, ReasonsNeverCarryCredentials) {
  ClientAuth c = challenged();
  c.password = "hunter2-secret";
  for (auto& uri : {std::string("sip:evosip.local"), std::string("sip:x@elsewhere")}) {
    c.uri = uri;
    const Verdict v = verify(c, kT0, "sip:evosip.local");
    EXPECT_NE(v.result, VerifyResult::kOk);
    const std::string reason(v.reason);
    EXPECT_EQ(reason.find("hunter2"), std::string::npos);
    EXPECT_EQ(reason.find(ha1(DigestAlgorithm::kSha256)), std::string::npos);
    EXPECT_EQ(reason.find("alice"), std::string::npos);
    EXPECT_EQ(reason.find(c.nonce), std::string::npos);
  }
  EXPECT_EQ(verifyResultName(VerifyResult::kBadNonce), "bad-nonce");
  EXPECT_EQ(verifyResultName(VerifyResult::kReplay), "replay");
  EXPECT_EQ(verifyResultName(VerifyResult::kQopRefused), "qop");
  EXPECT_EQ(verifyResultName(VerifyResult::kAlgorithmRefused), "algorithm");
}

}  // namespace
}  // namespace evosip::auth
