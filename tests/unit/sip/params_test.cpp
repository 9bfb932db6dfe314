#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/sip/params.hpp>

namespace evosip::sip {
namespace {

std::vector<std::string> split(std::string_view v, bool* ok = nullptr) {
  std::vector<std::string> out;
  ValueSplitter s(v);
  while (auto e = s.next()) {
    out.emplace_back(*e);
  }
  if (ok != nullptr) {
    *ok = s.ok();
  }
  return out;
}

TEST(ValueSplitter, SplitsOnTopLevelCommasOnly) {
  EXPECT_EQ(split("a, b ,c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(split("\"Doe, John\" <sip:j@x>, <sip:a@b;x=1,2>"),
            (std::vector<std::string>{"\"Doe, John\" <sip:j@x>", "<sip:a@b;x=1,2>"}));
  EXPECT_EQ(split("\"a \\\" , b\" <sip:x>"), (std::vector<std::string>{"\"a \\\" , b\" <sip:x>"}));
  EXPECT_EQ(split(" , a,,b, "), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(split("a,\r\n b"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(split("").empty());
}

TEST(ValueSplitter, ReportsUnterminatedQuoteAndAngle) {
  bool ok = true;
  split("a, \"b, c", &ok);
  EXPECT_FALSE(ok);
  ok = true;
  auto v = split("a, <sip:b, c", &ok);
  EXPECT_FALSE(ok);
  EXPECT_EQ(v, (std::vector<std::string>{"a"}));
}

TEST(ParamList, GetHasAndForEach) {
  ParamList p("branch=z9hG4bK1; RPORT ;received=1.2.3.4;q = 0.5;x=\"a;b\"");
  EXPECT_EQ(p.get("branch"), "z9hG4bK1");
  EXPECT_TRUE(p.has("rport"));
  EXPECT_EQ(p.get("rport"), "");
  EXPECT_EQ(p.get("Received"), "1.2.3.4");
  EXPECT_EQ(p.get("q"), "0.5");
  EXPECT_EQ(p.get("x"), "\"a;b\"");
  EXPECT_FALSE(p.get("b"));
  int n = 0;
  p.forEach([&](const ParamList::Param& param) {
    ++n;
    return param.name != "received";
  });
  EXPECT_EQ(n, 3);
  EXPECT_TRUE(ParamList().empty());
  EXPECT_FALSE(ParamList(";;").has(""));
}

TEST(StripQuotes, RemovesOnlySurroundingQuotes) {
  EXPECT_EQ(stripQuotes("\"abc\""), "abc");
  EXPECT_EQ(stripQuotes("abc"), "abc");
  EXPECT_EQ(stripQuotes("\""), "\"");
  EXPECT_EQ(stripQuotes("\"\""), "");
}

}  // namespace
}  // namespace evosip::sip
