#include <string>

#include <gtest/gtest.h>

#include <evosip/sip/message.hpp>

namespace evosip::sip {
namespace {

const std::string kInvite =
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP "
    "p2.example.com;branch=z9hG4bKabc\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: \"Alice, A.\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "v=0\n";

TEST(MessageParse, RequestFieldsAndHeaderIndex) {
  auto m = Message::parse(kInvite);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_TRUE(m->isRequest());
  EXPECT_EQ(m->method(), Method::kInvite);
  EXPECT_EQ(m->methodText(), "INVITE");
  EXPECT_EQ(m->requestUri(), "sip:bob@biloxi.example.com");
  EXPECT_EQ(kInvite.substr(m->requestUriOffset(), m->requestUri().size()), m->requestUri());
  ASSERT_EQ(m->headers().size(), 9u);
  EXPECT_EQ(m->headers()[1].id, HeaderId::kMaxForwards);
  EXPECT_EQ(m->headers()[1].value, "70");
  EXPECT_EQ(kInvite.substr(m->headers()[1].begin, m->headers()[1].end - m->headers()[1].begin),
            "Max-Forwards: 70\r\n");
  EXPECT_EQ(m->callId(), "a84b4c76e66710@pc33.atlanta.example.com");
  EXPECT_EQ(m->body(), "v=0\n");
  EXPECT_EQ(m->size(), kInvite.size());
  EXPECT_EQ(m->maxForwards(), 70u);
  EXPECT_EQ(m->contentLength(), 4u);
  auto via = m->topVia();
  ASSERT_TRUE(via);
  EXPECT_EQ(via->host, "pc33.atlanta.example.com");
  EXPECT_EQ(via->branch(), "z9hG4bK776asdhds");
  auto cseq = m->cseq();
  ASSERT_TRUE(cseq);
  EXPECT_EQ(cseq->number, 314159u);
  EXPECT_EQ(cseq->method, Method::kInvite);
  auto from = m->from();
  ASSERT_TRUE(from);
  EXPECT_EQ(from->tag(), "1928301774");
  EXPECT_EQ(from->displayName, "\"Alice, A.\"");
  auto to = m->to();
  ASSERT_TRUE(to);
  EXPECT_FALSE(to->tag());
  EXPECT_EQ(to->uri.user, "bob");
}

TEST(MessageParse, Response) {
  const std::string r =
      "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";
  auto m = Message::parse(r);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->isResponse());
  EXPECT_EQ(m->statusCode(), 180);
  EXPECT_EQ(m->reasonPhrase(), "Ringing");
  EXPECT_EQ(m->body(), "");
  auto empty = Message::parse("SIP/2.0 100 \r\nVia: SIP/2.0/UDP h\r\n\r\n");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->reasonPhrase(), "");
}

TEST(MessageParse, CaseInsensitiveAndCompactNames) {
  const std::string s =
      "OPTIONS sip:a@b SIP/2.0\r\n"
      "v: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
      "i: abc\r\nf: <sip:a@b>;tag=1\r\nt: sip:c@d\r\nCSEQ: 1 OPTIONS\r\nl: 0\r\n"
      "m: *\r\nmax-forwards: 10\r\nX-Foo: bar\r\n\r\n";
  auto m = Message::parse(s);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->callId(), "abc");
  EXPECT_NE(m->find("Via"), nullptr);
  EXPECT_NE(m->find("call-id"), nullptr);
  EXPECT_EQ(m->find("x-foo")->value, "bar");
  EXPECT_EQ(m->find("X-Bar"), nullptr);
  EXPECT_EQ(m->contentLength(), 0u);
  EXPECT_EQ(m->maxForwards(), 10u);
  EXPECT_EQ(m->count(HeaderId::kContact), 1u);
  auto c = parseNameAddr(m->find(HeaderId::kContact)->value);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->star);
  EXPECT_EQ(m->to()->uri.host, "d");
}

TEST(MessageParse, FoldedLinesStayInValueAndRange) {
  const std::string s =
      "OPTIONS sip:a@b SIP/2.0\r\n"
      "Via: SIP/2.0/UDP h1;branch=z9hG4bK1,\r\n SIP/2.0/UDP h2;branch=z9hG4bK2\r\n"
      "Subject:\r\n\tlunch\r\n"
      "Call-ID: x\r\n\r\n";
  auto m = Message::parse(s);
  ASSERT_TRUE(m) << m.error().message;
  ASSERT_EQ(m->headers().size(), 3u);
  const HeaderField& via = m->headers()[0];
  EXPECT_EQ(via.value, "SIP/2.0/UDP h1;branch=z9hG4bK1,\r\n SIP/2.0/UDP h2;branch=z9hG4bK2");
  EXPECT_EQ(s.substr(via.end, 8), "Subject:");
  EXPECT_EQ(m->headers()[1].value, "lunch");
  ValueSplitter split(via.value);
  EXPECT_EQ(split.next(), "SIP/2.0/UDP h1;branch=z9hG4bK1");
  auto second = split.next();
  ASSERT_TRUE(second);
  EXPECT_EQ(parseVia(*second)->host, "h2");
}

TEST(MessageParse, DatagramWithoutContentLengthTakesRest) {
  auto m = Message::parse("MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\nhello");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->body(), "hello");
  EXPECT_FALSE(m->contentLength());
  EXPECT_FALSE(m->expires());
}

TEST(MessageParse, Expires) {
  auto m = Message::parse("REGISTER sip:a SIP/2.0\r\nExpires: 3600\r\n\r\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->expires(), 3600u);
  auto big = Message::parse("REGISTER sip:a SIP/2.0\r\nExpires: 4294967296\r\n\r\n");
  ASSERT_TRUE(big);
  EXPECT_FALSE(big->expires());
}

TEST(MessageParse, ExtraBytesAfterBodyAreIgnored) {
  const std::string s = "MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 2\r\n\r\nhello";
  auto m = Message::parse(s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->body(), "he");
  EXPECT_EQ(m->size(), s.size() - 3);
}

TEST(MessageParse, LeadingCrlfsAreSkipped) {
  const std::string s = "\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n";
  auto m = Message::parse(s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->startOffset(), 4u);
  EXPECT_EQ(m->methodText(), "OPTIONS");
}

struct Bad {
  const char* name;
  std::string text;
  Errc code;
};

class MessageReject : public ::testing::TestWithParam<Bad> {};

TEST_P(MessageReject, IsRejected) {
  auto m = Message::parse(GetParam().text);
  ASSERT_FALSE(m) << GetParam().name;
  EXPECT_EQ(m.error().code, GetParam().code) << m.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MessageReject,
    ::testing::Values(
        Bad{"empty", "", Errc::kParse}, Bad{"no_crlf", "OPTIONS sip:a@b SIP/2.0", Errc::kParse},
        Bad{"two_spaces", "OPTIONS  sip:a@b SIP/2.0\r\n\r\n", Errc::kParse},
        Bad{"trailing_space", "OPTIONS sip:a@b SIP/2.0 \r\n\r\n", Errc::kParse},
        Bad{"uri_with_space", "OPTIONS sip:a@b; lr SIP/2.0\r\n\r\n", Errc::kParse},
        Bad{"no_uri", "OPTIONS SIP/2.0\r\n\r\n", Errc::kParse},
        Bad{"bad_method", "OPT<IONS sip:a@b SIP/2.0\r\n\r\n", Errc::kParse},
        Bad{"version_request", "OPTIONS sip:a@b SIP/7.0\r\n\r\n", Errc::kInvalid},
        Bad{"version_response", "SIP/3.0 200 OK\r\n\r\n", Errc::kInvalid},
        Bad{"not_sip", "GET / HTTP/1.1\r\n\r\n", Errc::kParse},
        Bad{"big_code", "SIP/2.0 4294967301 better\r\n\r\n", Errc::kParse},
        Bad{"code_range", "SIP/2.0 099 x\r\n\r\n", Errc::kParse},
        Bad{"no_colon", "OPTIONS sip:a@b SIP/2.0\r\nVia SIP/2.0/UDP h\r\n\r\n", Errc::kParse},
        Bad{"bad_name", "OPTIONS sip:a@b SIP/2.0\r\nV(a): x\r\n\r\n", Errc::kParse},
        Bad{"fold_first", "OPTIONS sip:a@b SIP/2.0\r\n x: y\r\n\r\n", Errc::kParse},
        Bad{"no_blank", "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n", Errc::kParse},
        Bad{"unterminated", "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x", Errc::kParse},
        Bad{"bare_lf", "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\n\r\n", Errc::kParse},
        Bad{"cl_too_big", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc", Errc::kParse},
        Bad{"cl_negative", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n", Errc::kParse},
        Bad{"cl_twice", "OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\nContent-Length: 0\r\n\r\n",
            Errc::kParse}));

TEST(MessageParse, Limits) {
  std::string s = "OPTIONS sip:a@b SIP/2.0\r\n";
  for (int i = 0; i < 30; ++i) {
    s += "X-H: " + std::to_string(i) + "\r\n";
  }
  s += "\r\n";
  ASSERT_TRUE(Message::parse(s));
  ParseLimits few;
  few.maxHeaders = 29;
  auto m = Message::parse(s, few);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::kTooLarge);
  ParseLimits small;
  small.maxSize = 100;
  auto big = Message::parse(s, small);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Errc::kTooLarge);
  EXPECT_EQ(Message::parse(s)->headers().size(), 30u);
}

TEST(MessageParse, AccessorsOnMissingOrBadHeaders) {
  auto m = Message::parse("OPTIONS sip:a@b SIP/2.0\r\nMax-Forwards: 256\r\nVia: junk\r\n\r\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->callId(), "");
  EXPECT_FALSE(m->maxForwards());
  EXPECT_FALSE(m->topVia());
  EXPECT_EQ(m->cseq().error().code, Errc::kNotFound);
  EXPECT_FALSE(m->from());
  EXPECT_FALSE(m->to());
  EXPECT_FALSE(m->contentLength());
}

}  // namespace
}  // namespace evosip::sip
