#include <gtest/gtest.h>

#include <evosip/router/router.hpp>

namespace evosip::router {
namespace {

TEST(RouterSharedTest, DomainAndAliasesWithAndWithoutPort) {
  RouterSettings s;
  s.domain = "evosip.local";
  s.aliases = {"10.0.0.1", "127.0.0.1:5060", "[::1]:5062"};
  auth::NonceCodec::Settings nonces;
  nonces.secret = "0123456789abcdef0123";
  RouterShared shared(s, nonces, Dialplan{}, *role::TargetSet::build({}));
  auto local = [&](const char* uri) { return shared.isLocal(*sip::parseUri(uri)); };
  EXPECT_TRUE(local("sip:alice@EVOSIP.local"));
  EXPECT_TRUE(local("sip:alice@evosip.local:5080"));
  EXPECT_TRUE(local("sip:alice@10.0.0.1:7000"));  // host alias: any port
  EXPECT_TRUE(local("sip:alice@127.0.0.1"));      // no port = 5060
  EXPECT_TRUE(local("sip:alice@127.0.0.1:5060"));
  EXPECT_FALSE(local("sip:alice@127.0.0.1:5090"));  // another UA on the same IP
  EXPECT_TRUE(local("sip:alice@[::1]:5062"));
  EXPECT_FALSE(local("sip:alice@[::1]"));
  EXPECT_FALSE(local("sip:alice@example.com"));
}

}  // namespace
}  // namespace evosip::router
