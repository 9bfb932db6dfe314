#include <string>

#include <gtest/gtest.h>

#include <evosip/sip/framing.hpp>

namespace evosip::sip {
namespace {

constexpr size_t kMax = 65535;

std::string message(std::string_view lengthHeader, std::string_view body) {
  std::string m =
      "OPTIONS sip:bob@example.com SIP/2.0\r\n"
      "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n"
      "From: <sip:alice@example.com>;tag=1928301774\r\n"
      "To: <sip:bob@example.com>\r\n"
      "Call-ID: a84b4c76e66710\r\n"
      "CSeq: 1 OPTIONS\r\n";
  m += lengthHeader;
  m += "\r\n";
  m += body;
  return m;
}

TEST(FramingTest, WholeMessageWithBody) {
  std::string m = message("Content-Length: 5\r\n", "hello");
  auto f = frameStream(m, kMax);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->frame.kind, Frame::Kind::kMessage);
  EXPECT_EQ(f->frame.length, m.size());
}

TEST(FramingTest, FirstOfTwoMessages) {
  std::string a = message("Content-Length: 0\r\n", "");
  std::string b = message("Content-Length: 3\r\n", "abc");
  auto f = frameStream(a + b, kMax);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->frame.kind, Frame::Kind::kMessage);
  EXPECT_EQ(f->frame.length, a.size());
}

TEST(FramingTest, EveryPrefixNeedsMore) {
  std::string m = message("Content-Length: 4\r\n", "body");
  for (size_t n = 1; n < m.size(); ++n) {
    auto f = frameStream(std::string_view(m).substr(0, n), kMax);
    ASSERT_TRUE(f) << n;
    EXPECT_EQ(f->frame.kind, Frame::Kind::kNeedMore) << n;
  }
}

TEST(FramingTest, CompactCaseInsensitiveAndSpacedNames) {
  for (std::string_view h :
       {"l: 2\r\n", "L:2\r\n", "content-LENGTH : 2\r\n", "Content-Length:\r\n 2\r\n"}) {
    std::string m = message(h, "ab");
    auto f = frameStream(m, kMax);
    ASSERT_TRUE(f) << h;
    EXPECT_EQ(f->frame.kind, Frame::Kind::kMessage) << h;
    EXPECT_EQ(f->frame.length, m.size()) << h;
  }
}

TEST(FramingTest, OtherHeadersEndingInLDoNotCount) {
  std::string m = message("Url: 7\r\n", "");
  auto f = frameStream(m, kMax);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, Errc::kParse);
}

TEST(FramingTest, MissingContentLengthIsAParseError) {
  auto f = frameStream(message("", ""), kMax);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, Errc::kParse);
}

TEST(FramingTest, InvalidOrConflictingContentLengthIsAParseError) {
  for (std::string_view h :
       {"Content-Length: abc\r\n", "Content-Length: -1\r\n", "Content-Length:\r\n",
        "Content-Length: 1\r\nl: 2\r\n", "Content-Length: 99999999999999999999999\r\n"}) {
    auto f = frameStream(message(h, "ab"), kMax);
    ASSERT_FALSE(f) << h;
    EXPECT_EQ(f.error().code, Errc::kParse) << h;
  }
  // The same value twice is harmless.
  auto f = frameStream(message("Content-Length: 2\r\nl: 2\r\n", "ab"), kMax);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->frame.kind, Frame::Kind::kMessage);
}

TEST(FramingTest, ContentLengthAboveLimitIsTooLarge) {
  auto f = frameStream(message("Content-Length: 70000\r\n", ""), kMax);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, Errc::kTooLarge);
  // Header block + body over the limit, even when each part alone is under it.
  std::string m = message("Content-Length: 100\r\n", "");
  auto g = frameStream(m, m.size() + 50);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, Errc::kTooLarge);
}

TEST(FramingTest, HeaderBlockAboveLimitIsTooLarge) {
  std::string m = "INVITE sip:a@b SIP/2.0\r\nSubject: " + std::string(200, 'x');
  auto f = frameStream(m, 100);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, Errc::kTooLarge);
  // Under the limit and unterminated: wait for more.
  auto g = frameStream(m, 1000);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->frame.kind, Frame::Kind::kNeedMore);
}

TEST(FramingTest, MessageOfExactlyTheLimitFits) {
  std::string m = message("Content-Length: 3\r\n", "xyz");
  auto f = frameStream(m, m.size());
  ASSERT_TRUE(f);
  EXPECT_EQ(f->frame.kind, Frame::Kind::kMessage);
}

TEST(FramingTest, DoubleCrlfIsAPingThatWantsAPong) {
  auto f = frameStream("\r\n\r\nOPTIONS", kMax);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->frame.kind, Frame::Kind::kKeepAlive);
  EXPECT_EQ(f->frame.length, 4u);
  EXPECT_TRUE(f->pong);
}

TEST(FramingTest, PartialPingNeedsMore) {
  for (std::string_view s : {"\r", "\r\n", "\r\n\r"}) {
    auto f = frameStream(s, kMax);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->frame.kind, Frame::Kind::kNeedMore) << s.size();
  }
}

TEST(FramingTest, StrayCrlfIsSkippedWithoutPong) {
  auto f = frameStream("\r\nINVITE sip:a@b SIP/2.0\r\n", kMax);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->frame.kind, Frame::Kind::kKeepAlive);
  EXPECT_EQ(f->frame.length, 2u);
  EXPECT_FALSE(f->pong);
  auto g = frameStream("\nINVITE", kMax);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->frame.kind, Frame::Kind::kKeepAlive);
  EXPECT_EQ(g->frame.length, 1u);
  EXPECT_FALSE(g->pong);
}

TEST(FramingTest, EmptyInputNeedsMore) {
  auto f = frameStream("", kMax);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->frame.kind, Frame::Kind::kNeedMore);
}

}  // namespace
}  // namespace evosip::sip
