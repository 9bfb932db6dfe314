#include <gtest/gtest.h>

#include <evosip/sip/message.hpp>
#include <evosip/sip/via_value.hpp>

namespace evosip::sip {
namespace {

TEST(ViaValueTest, SentByAndBranch) {
  std::string v;
  appendVia(v, "UDP", "192.0.2.1:5060", "z9hG4bK-1");
  EXPECT_EQ(v, "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1");
}

TEST(ViaValueTest, HostAndPortApartAskingForRport) {
  std::string v = "x";
  appendVia(v, "TCP", "[2001:db8::1]", 5070, "z9hG4bK-2", AskRport::kYes);
  EXPECT_EQ(v, "xSIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK-2;rport");
}

TEST(ViaValueTest, ReadsBackAsTheViaItWrites) {
  std::string via;
  appendVia(via, "UDP", "[2001:db8::1]", 5070, "z9hG4bKabc", AskRport::kYes);
  const std::string text = "OPTIONS sip:a@example.com SIP/2.0\r\nVia: " + via +
                           "\r\nFrom: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\n"
                           "Call-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                           "Content-Length: 0\r\n\r\n";
  auto msg = Message::parse(text);
  ASSERT_TRUE(msg);
  auto top = msg->topVia();
  ASSERT_TRUE(top);
  EXPECT_EQ(top->transport, "UDP");
  EXPECT_EQ(top->port, 5070);
  EXPECT_EQ(top->branch(), "z9hG4bKabc");
  ASSERT_TRUE(top->rport());
  EXPECT_TRUE(top->rport()->empty());
}

}  // namespace
}  // namespace evosip::sip
