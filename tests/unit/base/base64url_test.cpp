#include <string>

#include <gtest/gtest.h>

#include <evosip/base/base64url.hpp>

namespace evosip {
namespace {

TEST(Base64UrlTest, Rfc4648VectorsWithoutPadding) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"},
  };
  for (const auto& [raw, text] : vectors) {
    std::string out;
    base64urlEncode(reinterpret_cast<const unsigned char*>(raw.data()), raw.size(), out);
    EXPECT_EQ(out, text);
    unsigned char back[16];
    ASSERT_EQ(base64urlDecode(text, back, sizeof back), static_cast<int>(raw.size())) << text;
    EXPECT_EQ(std::string(reinterpret_cast<char*>(back), raw.size()), raw);
  }
}

TEST(Base64UrlTest, RejectsBadCharactersOverflowAndNonZeroPaddingBits) {
  unsigned char out[4];
  EXPECT_EQ(base64urlDecode("Zm9v+", out, sizeof out), -1);     // '+' is not base64url
  EXPECT_EQ(base64urlDecode("Zm9vYmFy", out, sizeof out), -1);  // 6 bytes into 4
  EXPECT_EQ(base64urlDecode("Zh", out, sizeof out), -1);        // "Zg" with a padding bit set
}

}  // namespace
}  // namespace evosip
