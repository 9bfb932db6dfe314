#include <string>

#include <gtest/gtest.h>

#include <evosip/edge/header_hygiene.hpp>

namespace evosip::edge {
namespace {

std::string request(const std::string& extra) {
  return "INVITE sip:bob@example.com SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK1\r\n"
         "From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
         "Call-ID: c1\r\nCSeq: 1 INVITE\r\n" +
         extra + "Content-Length: 0\r\n\r\n";
}

std::optional<std::string> offender(const std::string& text) {
  auto m = sip::Message::parse(text);
  EXPECT_TRUE(m) << text;
  if (!m) {
    return "unparsable";
  }
  auto where = findControlCharacter(*m);
  return where ? std::optional<std::string>(std::string(*where)) : std::nullopt;
}

TEST(HeaderHygieneTest, CleanMessagesPass) {
  EXPECT_EQ(offender(request("")), std::nullopt);
  EXPECT_EQ(offender(request("Subject: tab\there\r\n")), std::nullopt);
  // A folded line (RFC 3261 7.3.1: CRLF followed by white space) is part of the value.
  EXPECT_EQ(offender(request("Subject: one\r\n two\r\n\tthree\r\n")), std::nullopt);
  EXPECT_EQ(offender(request("Subject: caf\xc3\xa9\r\n")), std::nullopt);  // UTF-8 text
}

TEST(HeaderHygieneTest, ControlCharactersNameTheirHeader) {
  EXPECT_EQ(offender(request(std::string("Subject: a\0b\r\n", 14))), "Subject");
  EXPECT_EQ(offender(request("Subject: a\rb\r\n")), "Subject");  // a lone CR
  EXPECT_EQ(offender(request("X-Foo: \x1b[31mred\r\n")), "X-Foo");
  EXPECT_EQ(offender(request("X-Foo: del\x7f\r\n")), "X-Foo");
  EXPECT_EQ(offender(request("X-Foo: bell\x07\r\n")), "X-Foo");
  std::string viaNul = request("");
  viaNul.replace(viaNul.find("branch=z9hG4bK1"), 15, std::string("branch=z9\0G4bK1", 15));
  EXPECT_EQ(offender(viaNul), "Via");
}

TEST(HeaderHygieneTest, TheStartLineIsCheckedToo) {
  auto m = sip::Message::parse(
      "SIP/2.0 200 O\x01K\r\nVia: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK1\r\n"
      "Content-Length: 0\r\n\r\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(findControlCharacter(*m), "start line");
}

TEST(HeaderHygieneTest, TheBodyMayCarryAnything) {
  std::string body("\0\x01\x02\r\x1b", 5);
  auto text =
      "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK1\r\n"
      "Content-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\n" +
      body;
  auto m = sip::Message::parse(text);
  ASSERT_TRUE(m);
  EXPECT_EQ(findControlCharacter(*m), std::nullopt);
}

}  // namespace
}  // namespace evosip::edge
