// The test message builder writes what the parser reads: each default and override lands in the
// header a test expects.

#include <sip_message_builder.hpp>

#include <gtest/gtest.h>

#include <evosip/sip/message.hpp>

namespace evosip::sip {
namespace {

using test::SipMessageBuilder;

Message parsedOrFail(const std::string& text) {
  auto m = Message::parse(text);
  EXPECT_TRUE(m.has_value()) << text;
  return m.has_value() ? *m : *Message::parse("SIP/2.0 500 Unparsable\r\n\r\n");
}

TEST(SipMessageBuilderTest, RequestDefaultsAreAValidRequest) {
  const std::string text = SipMessageBuilder::request("OPTIONS").str();
  Message m = parsedOrFail(text);
  EXPECT_TRUE(m.isRequest());
  EXPECT_EQ(m.method(), Method::kOptions);
  EXPECT_EQ(m.requestUri(), "sip:bob@example.com");
  ASSERT_TRUE(m.topVia());
  EXPECT_TRUE(m.topVia()->rfc3261Branch());
  EXPECT_EQ(m.maxForwards(), 70u);
  ASSERT_TRUE(m.from());
  EXPECT_EQ(m.from()->tag(), "1928301774");
  ASSERT_TRUE(m.to());
  EXPECT_FALSE(m.to()->tag());
  EXPECT_FALSE(m.callId().empty());
  ASSERT_TRUE(m.cseq());
  EXPECT_EQ(m.cseq()->number, 1u);
  EXPECT_EQ(m.cseq()->method, Method::kOptions);
  EXPECT_EQ(m.contentLength(), 0u);
  EXPECT_EQ(text.substr(text.size() - 4), "\r\n\r\n");
}

TEST(SipMessageBuilderTest, OverridesLandInTheirHeaders) {
  const std::string text = SipMessageBuilder::request("INVITE", "sip:carol@10.0.0.22:5070")
                               .via("SIP/2.0/TCP 10.0.0.9:5061;branch=z9hG4bK-x;rport")
                               .addVia("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-y")
                               .route("<sip:10.0.0.1;lr>")
                               .route("<sip:10.0.0.2;lr>")
                               .recordRoute("<sip:10.0.0.3;lr>")
                               .maxForwards(3)
                               .fromTag("f1")
                               .toTag("t1")
                               .callId("call-1@test")
                               .cseq(7)
                               .contact("<sip:alice@192.0.2.1:5062>")
                               .header("X-Probe", "yes")
                               .body("v=0\r\n")
                               .str();
  Message m = parsedOrFail(text);
  EXPECT_EQ(m.requestUri(), "sip:carol@10.0.0.22:5070");
  ASSERT_TRUE(m.topVia());
  EXPECT_EQ(m.topVia()->host, "10.0.0.9");
  EXPECT_EQ(m.topVia()->port, 5061);
  EXPECT_EQ(m.count(HeaderId::kVia), 2u);
  EXPECT_EQ(m.count(HeaderId::kRoute), 2u);
  EXPECT_EQ(m.count(HeaderId::kRecordRoute), 1u);
  EXPECT_EQ(m.maxForwards(), 3u);
  EXPECT_EQ(m.from()->tag(), "f1");
  EXPECT_EQ(m.to()->tag(), "t1");
  EXPECT_EQ(m.callId(), "call-1@test");
  EXPECT_EQ(m.cseq()->number, 7u);
  EXPECT_EQ(m.cseq()->method, Method::kInvite);
  ASSERT_NE(m.find(HeaderId::kContact), nullptr);
  EXPECT_EQ(m.find(HeaderId::kContact)->value, "<sip:alice@192.0.2.1:5062>");
  ASSERT_NE(m.find("X-Probe"), nullptr);
  EXPECT_EQ(m.find("X-Probe")->value, "yes");
  ASSERT_NE(m.find(HeaderId::kContentType), nullptr);
  EXPECT_EQ(m.find(HeaderId::kContentType)->value, "application/sdp");
  EXPECT_EQ(m.body(), "v=0\r\n");
  EXPECT_EQ(m.contentLength(), 5u);
}

TEST(SipMessageBuilderTest, ATagIsReplacedNotAdded) {
  const std::string text = SipMessageBuilder::request("BYE").fromTag("a").fromTag("b").str();
  EXPECT_EQ(text.find(";tag=a"), std::string::npos) << text;
  EXPECT_EQ(parsedOrFail(text).from()->tag(), "b");
}

TEST(SipMessageBuilderTest, ResponseToCopiesTheDialogHeadersOfTheRequest) {
  const std::string invite = SipMessageBuilder::request("INVITE")
                                 .via("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-top")
                                 .addVia("SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-bottom")
                                 .recordRoute("<sip:10.0.0.1;lr>")
                                 .callId("c-2")
                                 .cseq(42)
                                 .str();
  const std::string ok = SipMessageBuilder::responseTo(invite, 200).toTag("callee").str();
  Message m = parsedOrFail(ok);
  EXPECT_TRUE(m.isResponse());
  EXPECT_EQ(m.statusCode(), 200);
  EXPECT_EQ(m.reasonPhrase(), "OK");
  EXPECT_EQ(m.count(HeaderId::kVia), 2u);
  EXPECT_EQ(m.topVia()->branch(), "z9hG4bK-top");
  EXPECT_EQ(m.count(HeaderId::kRecordRoute), 1u);
  EXPECT_EQ(m.callId(), "c-2");
  EXPECT_EQ(m.cseq()->number, 42u);
  EXPECT_EQ(m.cseq()->method, Method::kInvite);
  EXPECT_EQ(m.from()->tag(), "1928301774");
  EXPECT_EQ(m.to()->tag(), "callee");
  EXPECT_EQ(m.find(HeaderId::kMaxForwards), nullptr) << "a response carries no Max-Forwards";
}

TEST(SipMessageBuilderTest, ContentLengthCanLieOrBeLeftOut) {
  const std::string lie =
      SipMessageBuilder::request("MESSAGE").body("hi", "text/plain").contentLength(9).str();
  EXPECT_NE(lie.find("Content-Length: 9\r\n"), std::string::npos) << lie;
  const std::string none = SipMessageBuilder::request("MESSAGE").contentLength(std::nullopt).str();
  EXPECT_EQ(none.find("Content-Length"), std::string::npos) << none;
}

}  // namespace
}  // namespace evosip::sip
