// Digest authentication and drain, on the manual clock: a nonce answered within its lifetime
// registers, the same nonce after it is answered stale=true; a draining router refuses new
// registrations and calls but keeps serving the dialogs it knows.
#include <evosip/auth/digest.hpp>
#include <evosip/sip/auth.hpp>

#include "router_fixture.hpp"

namespace evosip::router {
namespace {

using namespace fixture;
using namespace std::chrono_literals;

class AuthenticationTest : public RouterFixture {
 protected:
  AuthenticationTest() {
    // alice's credentials, as the api would answer them.
    auth::CredentialLookup alice;
    alice.status = auth::CredentialStatus::kFound;
    alice.credentials = auth::Credentials(
        auth::computeHa1(auth::DigestAlgorithm::kMd5, "alice", "evosip.local", "secret"),
        auth::computeHa1(auth::DigestAlgorithm::kSha256, "alice", "evosip.local", "secret"));
    auto& table = shared_->credentialTable();
    table.put("evosip.local", "alice", alice, table.generation());
  }

  std::string registerRequest(int cseq, const std::string& authorization = {}) {
    return "REGISTER sip:evosip.local SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-reg-" +
           std::to_string(cseq) +
           "\r\n"
           "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-ua-" +
           std::to_string(cseq) +
           ";received=198.51.100.7\r\n"
           "Max-Forwards: 70\r\nTo: <sip:alice@evosip.local>\r\n"
           "From: <sip:alice@evosip.local>;tag=reg\r\nCall-ID: reg-1@test\r\n"
           "CSeq: " +
           std::to_string(cseq) + " REGISTER\r\nContact: <sip:alice@198.51.100.7:5062>\r\n" +
           authorization + "Content-Length: 0\r\n\r\n";
  }

  // The value of the last response's header `name` sent back to the edge.
  std::string lastHeader(std::string_view name) const {
    auto sent = to("10.0.0.5");
    if (sent.empty()) {
      return {};
    }
    auto m = sip::Message::parse(sent.back());
    const auto* h = m ? m->find(name) : nullptr;
    return h ? std::string(h->value) : std::string();
  }

  // An Authorization header line answering `challenge` for alice with nonce count `nc`.
  static std::string answer(const std::string& challenge, const char* nc) {
    auto d = sip::parseDigest(challenge);
    EXPECT_TRUE(d.has_value()) << challenge;
    const std::string nonce(d->nonce);
    const std::string ha1 =
        auth::computeHa1(auth::DigestAlgorithm::kMd5, "alice", "evosip.local", "secret");
    const std::string response = auth::computeResponse({.algorithm = auth::DigestAlgorithm::kMd5,
                                                        .ha1 = ha1,
                                                        .nonce = nonce,
                                                        .method = "REGISTER",
                                                        .uri = "sip:evosip.local",
                                                        .nc = nc,
                                                        .cnonce = "c0ffee"});
    return "Authorization: Digest username=\"alice\", realm=\"evosip.local\", nonce=\"" + nonce +
           "\", uri=\"sip:evosip.local\", response=\"" + response +
           "\", algorithm=MD5, qop=auth, nc=" + nc + ", cnonce=\"c0ffee\"\r\n";
  }
};

TEST_F(AuthenticationTest, ANonceAnsweredWithinItsLifetimeRegistersAndIsStaleAfter) {
  receive(registerRequest(1));
  ASSERT_EQ(finals(), (std::vector<int>{401}));
  const std::string challenge = lastHeader("WWW-Authenticate");
  ASSERT_FALSE(challenge.empty());

  pass(299s);
  receive(registerRequest(2, answer(challenge, "00000001")));
  ASSERT_EQ(finals(), (std::vector<int>{401, 200})) << "within nonce_lifetime_s (300 s)";

  pass(2s);
  receive(registerRequest(3, answer(challenge, "00000002")));
  ASSERT_EQ(finals(), (std::vector<int>{401, 200, 401}));
  EXPECT_NE(lastHeader("WWW-Authenticate").find("stale=true"), std::string::npos)
      << "an expired nonce is stale, the client answers the new one without asking the user";
}

class DrainTest : public RouterFixture {};

TEST_F(DrainTest, ADrainingRouterRefusesNewCallsButServesKnownDialogs) {
  storeDialog("call-1@test", "ft1", "tt1", {"<sip:tok@10.0.0.5:5060;lr>"});
  shared_->draining = true;
  Req invite;
  invite.callId = "call-2@test";
  invite.uri = "sip:100@evosip.local";
  receive(text(invite));
  EXPECT_EQ(finals(), (std::vector<int>{503}));
  EXPECT_TRUE(to("10.0.0.8").empty());

  Req bye = inDialog("BYE", "call-1@test", "tt1");
  bye.branch = "z9hG4bK-edge-bye";
  receive(text(bye));
  bool forwarded = false;
  for (const auto& m : to("10.0.0.5")) {
    forwarded = forwarded || m.starts_with("BYE sip:bob@10.0.0.30:5090 SIP/2.0");
  }
  EXPECT_TRUE(forwarded) << "the BYE of a known dialog goes on";

  shared_->draining = false;
  invite.callId = "call-3@test";
  invite.branch = "z9hG4bK-edge-3";
  receive(text(invite));
  EXPECT_EQ(to("10.0.0.8").size(), 1u) << "undrained: new calls go on again";
}

}  // namespace
}  // namespace evosip::router
