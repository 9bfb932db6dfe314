#include <string>

#include <gtest/gtest.h>

#include <evosip/sip/response.hpp>

namespace evosip::sip {
namespace {

const std::string kRequest =
    "INVITE sip:bob@b.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1;rport=5060;received=192.0.2.1\r\n"
    "v: SIP/2.0/UDP c.example.com;branch=z9hG4bK2\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:bob@b.example.com> \r\n"
    "f: Alice <sip:alice@a.example.com>;tag=88\r\n"
    "Call-ID: abc\r\n"
    "Timestamp: 54\r\n"
    "CSeq: 1 INVITE\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

TEST(BuildResponse, CopiesHeadersAndAddsToTag) {
  auto req = Message::parse(kRequest);
  ASSERT_TRUE(req);
  std::string out = "old";
  ASSERT_TRUE(buildResponse(*req, 486, "", "xyz", "Retry-After: 30\r\n", out));
  EXPECT_EQ(out,
            "SIP/2.0 486 Busy Here\r\n"
            "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1;rport=5060;received=192.0.2.1\r\n"
            "v: SIP/2.0/UDP c.example.com;branch=z9hG4bK2\r\n"
            "f: Alice <sip:alice@a.example.com>;tag=88\r\n"
            "To: <sip:bob@b.example.com>;tag=xyz \r\n"
            "Call-ID: abc\r\n"
            "CSeq: 1 INVITE\r\n"
            "Retry-After: 30\r\n"
            "Content-Length: 0\r\n\r\n");
  auto resp = Message::parse(out);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->to()->tag(), "xyz");
  EXPECT_EQ(resp->count(HeaderId::kVia), 2u);
}

TEST(BuildResponse, TryingCopiesTimestampAndNoTag) {
  auto req = Message::parse(kRequest);
  ASSERT_TRUE(req);
  std::string out;
  ASSERT_TRUE(buildResponse(*req, 100, "", "xyz", "", out));
  auto resp = Message::parse(out);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->reasonPhrase(), "Trying");
  EXPECT_FALSE(resp->to()->tag());
  ASSERT_NE(resp->find(HeaderId::kTimestamp), nullptr);
  EXPECT_EQ(resp->find(HeaderId::kTimestamp)->value, "54");
}

TEST(BuildResponse, KeepsExistingToTagAndCustomReason) {
  const std::string s =
      "BYE sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
      "To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n";
  auto req = Message::parse(s);
  ASSERT_TRUE(req);
  std::string out;
  ASSERT_TRUE(buildResponse(*req, 200, "Fine", "zzz", "", out));
  EXPECT_EQ(out.substr(0, 17), "SIP/2.0 200 Fine\r");
  EXPECT_NE(out.find("To: <sip:b@h>;tag=2\r\n"), std::string::npos);
  EXPECT_EQ(out.find("zzz"), std::string::npos);
}

TEST(BuildResponse, AnswersIncompleteRequestsButNotViaLessOnes) {
  // A request missing From/To/CSeq still gets its 400: the response copies what is there.
  auto req = Message::parse("OPTIONS sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCall-ID: c\r\n\r\n");
  ASSERT_TRUE(req);
  std::string out;
  ASSERT_TRUE(buildResponse(*req, 400, "Missing CSeq", "t1", "", out));
  EXPECT_EQ(out,
            "SIP/2.0 400 Missing CSeq\r\nVia: SIP/2.0/UDP h\r\nCall-ID: c\r\n"
            "Content-Length: 0\r\n\r\n");
  auto noVia = Message::parse("OPTIONS sip:b SIP/2.0\r\nCall-ID: c\r\n\r\n");
  ASSERT_TRUE(noVia);
  EXPECT_FALSE(buildResponse(*noVia, 400, "", "", "", out));
}

TEST(BuildResponse, RefusesResponsesAndBadCodes) {
  std::string out;
  auto full = Message::parse(kRequest);
  EXPECT_FALSE(buildResponse(*full, 99, "", "", "", out));
  EXPECT_FALSE(buildResponse(*full, 700, "", "", "", out));
  auto resp = Message::parse("SIP/2.0 200 OK\r\n\r\n");
  EXPECT_FALSE(buildResponse(*resp, 200, "", "", "", out));
}

TEST(DefaultReason, CommonCodes) {
  EXPECT_EQ(defaultReason(200), "OK");
  EXPECT_EQ(defaultReason(404), "Not Found");
  EXPECT_EQ(defaultReason(483), "Too Many Hops");
  EXPECT_EQ(defaultReason(503), "Service Unavailable");
  EXPECT_EQ(defaultReason(299), "");
}

}  // namespace
}  // namespace evosip::sip
