#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <evosip/control/http_message.hpp>

namespace evosip::control {
namespace {

HttpRequest withAuthorization(std::string value) {
  HttpRequest req;
  req.headers.emplace_back("Authorization", std::move(value));
  return req;
}

TEST(BearerTokenTest, OnlyTheExactTokenMatches) {
  const std::string token = "s3cret-token";
  EXPECT_TRUE(bearerTokenMatches(withAuthorization("Bearer s3cret-token"), token));
  EXPECT_TRUE(bearerTokenMatches(withAuthorization("bearer  s3cret-token "), token));
  for (const char* wrong :
       {"Bearer s3cret-toke", "Bearer s3cret-token2", "Bearer S3CRET-TOKEN", "Bearer ", "Bearer",
        "Basic czNjcmV0LXRva2Vu", "s3cret-token", "Bearers3cret-token", ""}) {
    EXPECT_FALSE(bearerTokenMatches(withAuthorization(wrong), token)) << wrong;
  }
  EXPECT_FALSE(bearerTokenMatches(HttpRequest{}, token));
  // No token configured: open (allowed on loopback listeners only).
  EXPECT_TRUE(bearerTokenMatches(HttpRequest{}, ""));
}

TEST(BearerTokenTest, The401RepeatsNothingOfWhatWasSent) {
  HttpResponse none = unauthorizedResponse(HttpRequest{});
  EXPECT_EQ(none.status, 401u);
  EXPECT_EQ(none.body, "unauthorized\n");
  EXPECT_EQ(none.header("www-authenticate"), "Bearer realm=\"evosip\"");
  HttpResponse tried = unauthorizedResponse(withAuthorization("Bearer guess-0123456789"));
  EXPECT_EQ(tried.status, 401u);
  EXPECT_EQ(tried.body, "unauthorized\n");
  EXPECT_EQ(tried.header("www-authenticate"), "Bearer realm=\"evosip\", error=\"invalid_token\"");
  for (const auto& [name, value] : tried.headers) {
    EXPECT_THAT(value, ::testing::Not(::testing::HasSubstr("guess"))) << name;
  }
}

}  // namespace
}  // namespace evosip::control
