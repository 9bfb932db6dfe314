#include <string>

#include <gtest/gtest.h>

#include <evosip/sip/editor.hpp>

namespace evosip::sip {
namespace {

const std::string kRequest =
    "INVITE sip:bob@b.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP c.example.com;branch=z9hG4bK2\r\n"
    "Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>\r\n"
    "Max-Forwards: 70\r\n"
    "X-Evosip-Foo: secret\r\n"
    "Call-ID: abc\r\n"
    "Content-Length: 5\r\n"
    "\r\n"
    "hello";

Message parse(const std::string& s) {
  auto m = Message::parse(s);
  EXPECT_TRUE(m) << m.error().message;
  return *m;
}

TEST(MessageEditor, NoEditsReproducesTheMessage) {
  const Message m = parse(kRequest);
  MessageEditor ed(m);
  EXPECT_EQ(ed.str(), kRequest);
  EXPECT_EQ(ed.size(), kRequest.size());
}

TEST(MessageEditor, ProxyForwardingEdits) {
  const Message m = parse(kRequest);
  MessageEditor ed(m);
  const HeaderField* via = m.find(HeaderId::kVia);
  auto top = m.topVia();
  ASSERT_TRUE(top);
  const auto viaEnd =
      static_cast<uint32_t>(top->text.data() - m.buffer().data() + top->text.size());
  ed.insertAt(viaEnd, ";received=192.0.2.9;rport=5062");
  ed.prependHeader("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp");
  ed.replaceValue(*m.find(HeaderId::kMaxForwards), "69");
  ed.prependHeader("Record-Route", "<sip:proxy.example.com;lr>");
  ed.removeHeader(*m.find("X-Evosip-Foo"));
  ed.removeFirstValue(*m.find(HeaderId::kRoute));
  ed.replaceRequestUri("sip:bob@10.0.0.1:5070");
  const std::string expected =
      "INVITE sip:bob@10.0.0.1:5070 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp\r\n"
      "Record-Route: <sip:proxy.example.com;lr>\r\n"
      "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1;received=192.0.2.9;rport=5062, "
      "SIP/2.0/UDP c.example.com;branch=z9hG4bK2\r\n"
      "Route: <sip:p2.example.com;lr>\r\n"
      "Max-Forwards: 69\r\n"
      "Call-ID: abc\r\n"
      "Content-Length: 5\r\n"
      "\r\n"
      "hello";
  EXPECT_EQ(ed.str(), expected);
  EXPECT_EQ(ed.size(), expected.size());
  EXPECT_TRUE(via != nullptr);
  auto reparsed = Message::parse(expected);
  ASSERT_TRUE(reparsed);
  EXPECT_EQ(reparsed->topVia()->host, "proxy.example.com");
}

TEST(MessageEditor, RemoveFirstValueOfSingleValueRemovesLine) {
  const std::string s =
      "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP me;branch=z9hG4bK1\r\n"
      "v: SIP/2.0/UDP you;branch=z9hG4bK2\r\nl: 0\r\n\r\n";
  const Message m = parse(s);
  MessageEditor ed(m);
  ed.removeFirstValue(*m.find(HeaderId::kVia));
  EXPECT_EQ(ed.str(), "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP you;branch=z9hG4bK2\r\nl: 0\r\n\r\n");
}

TEST(MessageEditor, RemoveFirstValueKeepsRestOfLine) {
  const std::string s = "SIP/2.0 200 OK\r\nVia: a, b\r\n\r\n";
  const Message m = parse(s);
  MessageEditor ed(m);
  ed.removeFirstValue(*m.find(HeaderId::kVia));
  EXPECT_EQ(ed.str(), "SIP/2.0 200 OK\r\nVia: b\r\n\r\n");
}

TEST(MessageEditor, AppendInsertBeforeAndReplaceRange) {
  const Message m = parse(kRequest);
  MessageEditor ed(m);
  ed.appendHeader("Path", "<sip:edge;lr>");
  ed.insertHeaderBefore(*m.find(HeaderId::kCallId), "Record-Route", "<sip:x;lr>");
  ed.appendHeader("X-A", "1");
  std::string out = "garbage";
  ed.writeTo(out);
  EXPECT_NE(out.find("X-Evosip-Foo: secret\r\nRecord-Route: <sip:x;lr>\r\nCall-ID: abc\r\n"),
            std::string::npos);
  EXPECT_NE(out.find("Content-Length: 5\r\nPath: <sip:edge;lr>\r\nX-A: 1\r\n\r\nhello"),
            std::string::npos);
  EXPECT_EQ(out.size(), ed.size());
  EXPECT_EQ(out.rfind("garbage"), std::string::npos);
}

TEST(MessageEditor, InsertBeforeRemovedHeaderAtSameOffset) {
  const Message m = parse(kRequest);
  MessageEditor ed(m);
  const HeaderField* foo = m.find("X-Evosip-Foo");
  ed.removeHeader(*foo);
  ed.insertHeaderBefore(*foo, "X-New", "1");
  EXPECT_NE(ed.str().find("Max-Forwards: 70\r\nX-New: 1\r\nCall-ID: abc\r\n"), std::string::npos);
}

TEST(MessageEditor, ReplaceBodyFixesContentLength) {
  const Message m = parse(kRequest);
  MessageEditor ed(m);
  ed.replaceBody("v=0\r\n", "application/sdp");
  const std::string out = ed.str();
  EXPECT_NE(out.find("Content-Length: 5\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"),
            std::string::npos);
  auto re = Message::parse(out);
  ASSERT_TRUE(re);
  EXPECT_EQ(re->body(), "v=0\r\n");

  const std::string noCl = "MESSAGE sip:a@b SIP/2.0\r\nContent-Type: text/plain\r\n\r\nold text";
  const Message m2 = parse(noCl);
  MessageEditor ed2(m2);
  ed2.replaceBody("");
  EXPECT_EQ(ed2.str(), "MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n");
}

TEST(MessageEditor, ExtraDatagramBytesAndLeadingCrlfAreDropped) {
  const std::string s = "\r\nOPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\njunk";
  const Message m = parse(s);
  MessageEditor ed(m);
  EXPECT_EQ(ed.str(), "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(ed.size(), ed.str().size());
}

}  // namespace
}  // namespace evosip::sip
