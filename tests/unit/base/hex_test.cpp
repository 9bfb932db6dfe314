#include <array>
#include <string>

#include <gtest/gtest.h>

#include <evosip/base/hex.hpp>

namespace evosip {
namespace {

TEST(HexTest, FixedWidthNumbersArePaddedAndTruncatedToTheirDigits) {
  std::string s;
  appendHex(s, 0x2a, 4);
  EXPECT_EQ(s, "002a");
  s.clear();
  appendHex(s, 0x0123456789abcdefULL);
  EXPECT_EQ(s, "0123456789abcdef");
  s.clear();
  appendHex(s, 0xfedcba9876543210ULL, 8);  // the low 8 digits only
  EXPECT_EQ(s, "76543210");
  s = "z9hG4bK";
  appendHex(s, 0, 0);
  EXPECT_EQ(s, "z9hG4bK");
}

TEST(HexTest, BytesInEitherCase) {
  const std::array<unsigned char, 4> bytes{0xde, 0xad, 0x01, 0xf0};
  EXPECT_EQ(hexEncode(bytes), "dead01f0");
  std::string upper = "%";
  appendHexBytes(upper, std::span(bytes).first(1), HexCase::kUpper);
  EXPECT_EQ(upper, "%DE");
  EXPECT_EQ(hexEncode({}), "");
}

TEST(HexTest, EscapeOfAByte) {
  EXPECT_EQ(hexEscape(0x1b), "\\x1b");
  EXPECT_EQ(hexEscape(0), "\\x00");
  EXPECT_EQ(hexEscape(0xff), "\\xff");
}

TEST(HexTest, ParseReadsBackWhatAppendWrites) {
  for (uint64_t v : {0ULL, 1ULL, 0xabcULL, 0xffffffffffffffffULL, 0x8000000000000000ULL}) {
    std::string s;
    appendHex(s, v);
    auto back = parseHex(s);
    ASSERT_TRUE(back) << s;
    EXPECT_EQ(*back, v);
  }
  EXPECT_EQ(parseHex("0"), 0u);
  EXPECT_EQ(parseHex("ff"), 255u);
}

TEST(HexTest, ParseRefusesAnythingElse) {
  for (const char* bad : {"", "A", "0x1", "12g", " 1", "1 ", "-1", "00000000000000000"}) {
    EXPECT_FALSE(parseHex(bad)) << bad;
  }
}

}  // namespace
}  // namespace evosip
