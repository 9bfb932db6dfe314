#include <gtest/gtest.h>

#include <evosip/api/validation.hpp>

namespace evosip::api {
namespace {

TEST(NormalizeDomainTest, LowerCasesValidNames) {
  EXPECT_EQ(*normalizeDomain("Example.COM"), "example.com");
  EXPECT_EQ(*normalizeDomain("evosip.local"), "evosip.local");
  EXPECT_EQ(*normalizeDomain("a-b.c1"), "a-b.c1");
  EXPECT_EQ(*normalizeDomain(std::string(63, 'a') + ".com"), std::string(63, 'a') + ".com");
}

TEST(NormalizeDomainTest, RejectsBadNamesNamingTheField) {
  for (const char* bad : {"", ".example.com", "example..com", "example.com.", "-a.com", "a-.com",
                          "exa mple.com", "ex_ample.com", "exämple.com", "a/b"}) {
    auto r = normalizeDomain(bad, "domain");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().field, "domain");
    EXPECT_EQ(r.error().message.rfind("domain: ", 0), 0u) << r.error().message;
  }
  EXPECT_FALSE(normalizeDomain(std::string(64, 'a') + ".com"));
  std::string longName;
  while (longName.size() < 260) {
    longName += "abcdefgh.";
  }
  longName += "com";
  EXPECT_FALSE(normalizeDomain(longName));
}

TEST(ValidateUsernameTest, AcceptsSipUserCharacters) {
  for (const char* good : {"alice", "Bob", "1001", "a.b-c_d", "x!~*'()&=+$,;"}) {
    EXPECT_TRUE(validateUsername(good)) << good;
  }
  EXPECT_TRUE(validateUsername(std::string(64, 'u')));
}

TEST(ValidateUsernameTest, RejectsOthers) {
  for (const char* bad : {"", "a b", "a@b", "a:b", "a/b", "a?b", "a%41", "a\"b", "a<b"}) {
    auto r = validateUsername(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().field, "username");
  }
  EXPECT_FALSE(validateUsername(std::string(65, 'u')));
}

TEST(ValidatePasswordTest, LengthAndControlCharacters) {
  EXPECT_TRUE(validatePassword("secret"));
  EXPECT_TRUE(validatePassword("pässwörd with spaces"));
  EXPECT_TRUE(validatePassword(std::string(128, 'p')));
  EXPECT_FALSE(validatePassword("short"));
  EXPECT_FALSE(validatePassword(std::string(129, 'p')));
  auto r = validatePassword("line\nbreak");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "password");
  EXPECT_FALSE(validatePassword(std::string("nul\0char", 8)));
}

TEST(ParsePagingTest, DefaultsBoundsAndOffset) {
  auto d = parsePaging("", "");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->page, 1);
  EXPECT_EQ(d->perPage, kDefaultPerPage);
  EXPECT_EQ(d->offset(), 0);
  auto p = parsePaging("3", "100");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->offset(), 200);
  EXPECT_EQ(parsePaging("", "1000")->perPage, 1000);
  for (auto [page, perPage, field] :
       std::initializer_list<std::tuple<const char*, const char*, const char*>>{
           {"0", "", "page"},
           {"-1", "", "page"},
           {"x", "", "page"},
           {"1.5", "", "page"},
           {"1", "0", "per_page"},
           {"1", "1001", "per_page"},
           {"1", "ten", "per_page"}}) {
    auto r = parsePaging(page, perPage);
    ASSERT_FALSE(r) << page << " " << perPage;
    EXPECT_EQ(r.error().field, field);
  }
}

}  // namespace
}  // namespace evosip::api
