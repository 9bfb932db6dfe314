#include <manual_clock.hpp>
#include <map>
#include <optional>

#include <gtest/gtest.h>

#include <evosip/auth/authenticator.hpp>

namespace evosip::auth {
namespace {

using std::chrono::seconds;

constexpr std::string_view kRealm = "evosip.local";
const WallTime kT0{seconds(1'700'000'000)};

// The credential source (the api): answers at once from a table and counts every lookup.
struct CountingSource {
  std::map<std::string, std::string> passwords;  // user -> password
  bool down = false;
  int lookups = 0;

  CredentialCache::Fetcher fetcher() {
    return [this](const std::string&, const std::string& user,
                  std::function<void(CredentialLookup)> done) {
      ++lookups;
      if (down) {
        done({CredentialStatus::kUnavailable, {}});
        return;
      }
      auto it = passwords.find(user);
      if (it == passwords.end()) {
        done({CredentialStatus::kUnknownUser, {}});
        return;
      }
      done({CredentialStatus::kFound,
            Credentials(computeHa1(DigestAlgorithm::kMd5, user, kRealm, it->second),
                        computeHa1(DigestAlgorithm::kSha256, user, kRealm, it->second))});
    };
  }
};

struct Answer {
  std::string user = "alice";
  std::string password = "right-pw";
  std::string method = "REGISTER";
  std::string uri = "sip:evosip.local";
  std::string nonce;
  std::string algorithm = "SHA-256";  // "" omits the parameter (= MD5)
  std::string qop = "auth";
  std::string nc = "00000001";

  std::string header() const {
    const auto a =
        algorithmFromName(algorithm.empty() ? "MD5" : algorithm).value_or(DigestAlgorithm::kMd5);
    const std::string ha1 = computeHa1(a, user, kRealm, password);
    const std::string response =
        computeResponse({.algorithm = a,
                         .ha1 = ha1,
                         .nonce = nonce,
                         .method = method,
                         .uri = uri,
                         .qop = qop.empty() ? DigestQop::kNone : DigestQop::kAuth,
                         .qopText = qop,
                         .nc = nc,
                         .cnonce = "c0ffee"});
    std::string h = "Digest username=\"" + user + "\", realm=\"evosip.local\", nonce=\"" + nonce +
                    "\", uri=\"" + uri + "\", response=\"" + response + "\"";
    if (!algorithm.empty()) {
      h += ", algorithm=" + algorithm;
    }
    if (!qop.empty()) {
      h += ", qop=" + qop + ", nc=" + nc + ", cnonce=\"c0ffee\"";
    }
    return h;
  }
};

class AuthenticatorTest : public ::testing::Test {
 protected:
  AuthenticatorTest() { source_.passwords["alice"] = "right-pw"; }

  AuthOutcome run(const Answer& a, WallTime now = kT0 + seconds(1),
                  std::string identity = "alice") {
    return run(verifier_, a, now, std::move(identity));
  }
  AuthOutcome run(const DigestVerifier& verifier, const Answer& a, WallTime now,
                  std::string identity = "alice") {
    Authenticator auth(verifier, cache_, counts_, std::string(kRealm));
    std::optional<AuthOutcome> out;
    auth.authenticate(
        AuthAttempt{a.method, a.uri, a.nonce.empty() ? "" : a.header(), std::move(identity)}, now,
        [&](const AuthOutcome& o) { out = o; });
    EXPECT_TRUE(out.has_value());
    return out.value_or(AuthOutcome{});
  }
  Answer answer() {
    Answer a;
    a.nonce = codec_.issue(kRealm, kT0);
    return a;
  }

  test::ManualClock clock_;
  CountingSource source_;
  CredentialCache cache_{{}, clock_, source_.fetcher()};
  NonceCodec codec_{{.secret = "shared-by-all-routers-0123456789"}};
  DigestVerifier verifier_{codec_};
  MemoryNonceCountStore counts_{{}, clock_};
};

TEST_F(AuthenticatorTest, RightAnswerIsLookedUpOnceAndProceeds) {
  const AuthOutcome o = run(answer());
  EXPECT_EQ(o.decision, AuthDecision::kProceed) << o.reason;
  EXPECT_FALSE(o.failure.has_value());
  EXPECT_EQ(source_.lookups, 1);
}

TEST_F(AuthenticatorTest, NoCredentialsIsAChallengeWithoutFailure) {
  Answer a;  // no nonce: the request carries no credentials
  const AuthOutcome o = run(a);
  EXPECT_EQ(o.decision, AuthDecision::kChallenge);
  EXPECT_FALSE(o.stale);
  EXPECT_FALSE(o.failure.has_value());
  EXPECT_EQ(source_.lookups, 0);
}

TEST_F(AuthenticatorTest, ForgedNonceCostsNoLookup) {
  Answer a = answer();
  // Forged: a nonce of the right shape that we never signed, and another cluster's nonce.
  NonceCodec other({.secret = "another-cluster-secret-0123456789"});
  for (const std::string& nonce :
       {std::string(NonceCodec::kEncodedSize, 'A'), other.issue(kRealm, kT0)}) {
    for (const char* user : {"alice", "bob", "mallory"}) {
      a.nonce = nonce;
      a.user = user;
      const AuthOutcome o = run(a, kT0 + seconds(1), user);
      EXPECT_EQ(o.decision, AuthDecision::kChallenge);
      EXPECT_FALSE(o.stale);
      EXPECT_EQ(o.failure, VerifyResult::kBadNonce);
    }
  }
  EXPECT_EQ(source_.lookups, 0);
}

TEST_F(AuthenticatorTest, ExpiredNonceIsStaleWithoutLookup) {
  Answer a = answer();
  a.password = "not-even-the-right-one";
  const AuthOutcome o = run(a, kT0 + seconds(301));
  EXPECT_EQ(o.decision, AuthDecision::kChallenge);
  EXPECT_TRUE(o.stale);
  EXPECT_EQ(o.failure, VerifyResult::kStale);
  EXPECT_EQ(source_.lookups, 0);
}

TEST_F(AuthenticatorTest, QopLessAnswerIsChallengedWithoutLookup) {
  Answer a = answer();
  a.qop = "";
  const AuthOutcome o = run(a);
  EXPECT_EQ(o.decision, AuthDecision::kChallenge);
  EXPECT_EQ(o.failure, VerifyResult::kQopRefused);
  EXPECT_EQ(source_.lookups, 0);
  // Accepted only where qop is explicitly not required.
  DigestVerifier lenient(codec_, {.requireQop = false});
  EXPECT_EQ(run(lenient, a, kT0 + seconds(1)).decision, AuthDecision::kProceed);
  EXPECT_EQ(source_.lookups, 1);
}

TEST_F(AuthenticatorTest, AlgorithmNotConfiguredIsChallengedNeverVerified) {
  DigestVerifier shaOnly(codec_, {.algorithms = {DigestAlgorithm::kSha256}});
  Answer a = answer();
  a.algorithm = "MD5";  // right password, wrong algorithm
  AuthOutcome o = run(shaOnly, a, kT0 + seconds(1));
  EXPECT_EQ(o.decision, AuthDecision::kChallenge);
  EXPECT_EQ(o.failure, VerifyResult::kAlgorithmRefused);
  a.algorithm = "";  // omitted = MD5
  o = run(shaOnly, a, kT0 + seconds(1));
  EXPECT_EQ(o.failure, VerifyResult::kAlgorithmRefused);
  EXPECT_EQ(source_.lookups, 0);
  a.algorithm = "SHA-256";
  EXPECT_EQ(run(shaOnly, a, kT0 + seconds(1)).decision, AuthDecision::kProceed);
}

TEST_F(AuthenticatorTest, IdentityMismatchIsForbiddenWithoutLookup) {
  const AuthOutcome o = run(answer(), kT0 + seconds(1), "bob");
  EXPECT_EQ(o.decision, AuthDecision::kForbidden);
  EXPECT_EQ(source_.lookups, 0);
}

TEST_F(AuthenticatorTest, MalformedIsBadRequestWithoutLookup) {
  Answer a = answer();
  a.uri = "sip:elsewhere.example";  // the digest uri is not the Request-URI
  Authenticator auth(verifier_, cache_, counts_, std::string(kRealm));
  std::optional<AuthOutcome> out;
  auth.authenticate(AuthAttempt{"REGISTER", "sip:evosip.local", a.header(), "alice"},
                    kT0 + seconds(1), [&](const AuthOutcome& r) { out = r; });
  ASSERT_TRUE(out);
  EXPECT_EQ(out->decision, AuthDecision::kBadRequest);
  EXPECT_EQ(out->failure, VerifyResult::kMalformed);
  out.reset();
  auth.authenticate(AuthAttempt{"REGISTER", "sip:evosip.local", "Digest username=\"a", "a"}, kT0,
                    [&](const AuthOutcome& r) { out = r; });
  ASSERT_TRUE(out);
  EXPECT_EQ(out->decision, AuthDecision::kBadRequest);
  EXPECT_EQ(source_.lookups, 0);
}

TEST_F(AuthenticatorTest, WrongPasswordAndUnknownUserLookLikeEachOther) {
  Answer a = answer();
  a.password = "guess";
  AuthOutcome o = run(a);
  EXPECT_EQ(o.decision, AuthDecision::kChallenge);
  EXPECT_EQ(o.failure, VerifyResult::kBadResponse);
  a = answer();
  a.user = "nobody";
  o = run(a, kT0 + seconds(1), "nobody");
  EXPECT_EQ(o.decision, AuthDecision::kChallenge);
  EXPECT_EQ(o.failure, VerifyResult::kBadResponse);
  EXPECT_FALSE(o.stale);
}

TEST_F(AuthenticatorTest, ReplayedCountIsChallengedStale) {
  const Answer a = answer();
  EXPECT_EQ(run(a).decision, AuthDecision::kProceed);
  const AuthOutcome o = run(a);
  EXPECT_EQ(o.decision, AuthDecision::kChallenge);
  EXPECT_TRUE(o.stale);
  EXPECT_EQ(o.failure, VerifyResult::kReplay);
}

TEST_F(AuthenticatorTest, SourceDownIsUnavailableNotAChallenge) {
  source_.down = true;
  const AuthOutcome o = run(answer());
  EXPECT_EQ(o.decision, AuthDecision::kCredentialsUnavailable);
  EXPECT_EQ(source_.lookups, 1);
}

}  // namespace
}  // namespace evosip::auth
