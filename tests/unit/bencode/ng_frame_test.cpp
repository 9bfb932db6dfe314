// The ng protocol's framing: "<cookie> <bencoded dictionary>" datagrams as Kamailio's
// rtpengine module sends them, and the replies.
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

#include <evosip/bencode/ng_frame.hpp>

namespace evosip::bencode {
namespace {

std::string readData(const std::string& name) {
  std::ifstream in(std::string(EVOSIP_TEST_DATA_DIR) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(Ng, ParseDatagram) {
  auto m = parseNgDatagram("5323_1 d7:command4:pinge");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->cookie, "5323_1");
  EXPECT_EQ(m->body.string("command"), "ping");
}

TEST(Ng, MalformedDatagrams) {
  EXPECT_EQ(parseNgDatagram("nospace").error().message, "ng: no space after the cookie");
  EXPECT_EQ(parseNgDatagram(" d7:command4:pinge").error().message, "ng: empty cookie");
  EXPECT_EQ(parseNgDatagram(std::string(129, 'c') + " de").error().message,
            "ng: cookie longer than 128 bytes");
  EXPECT_TRUE(parseNgDatagram(std::string(128, 'c') + " de"));
  // Offsets count from the start of the datagram.
  EXPECT_EQ(parseNgDatagram("abc d7:command4:pinge  ").error().message,
            "bencode: trailing bytes after the value at offset 21");
  EXPECT_EQ(parseNgDatagram("abc d7:command4:ping").error().message,
            "bencode: unterminated dictionary at offset 20");
  auto notDict = parseNgDatagram("abc l4:pinge");
  ASSERT_FALSE(notDict);
  EXPECT_EQ(notDict.error().code, Errc::kInvalid);
  EXPECT_FALSE(parseNgDatagram("abc "));
  EXPECT_FALSE(parseNgDatagram(""));
}

TEST(Ng, Replies) {
  EXPECT_EQ(formatNgReply("5323_1", ngPong()), "5323_1 d6:result4:ponge");
  EXPECT_EQ(formatNgReply("c", ngOk()), "c d6:result2:oke");
  EXPECT_EQ(formatNgReply("c", ngError("Unknown call-id")),
            "c d12:error-reason15:Unknown call-id6:result5:errore");
  Value reply = ngOk();
  reply.set("sdp", "v=0\r\n");
  EXPECT_EQ(formatNgReply("x_1", reply), "x_1 d6:result2:ok3:sdp5:v=0\r\ne");
}

TEST(Ng, KamailioOffer) {
  const std::string datagram = readData("ng/offer_kamailio.txt");
  auto m = parseNgDatagram(datagram);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->cookie, "13042_1_3");
  const Value& b = m->body;
  EXPECT_EQ(b.string("command"), "offer");
  EXPECT_EQ(b.string("call-id"), "6e3f1c2a-9b8d-4e7f-a1c2-3d4e5f6a7b8c@10.0.0.12");
  EXPECT_EQ(b.string("from-tag"), "Lp8qzUGbA");
  EXPECT_EQ(b.string("via-branch"), "z9hG4bK.Qx7Nw2xVb");
  EXPECT_EQ(b.string("to-tag"), std::nullopt);
  EXPECT_EQ(b.string("transport-protocol"), "RTP/AVP");
  EXPECT_EQ(b.stringList("flags"), (std::vector<std::string_view>{"trust-address", "symmetric"}));
  EXPECT_EQ(b.stringList("replace"),
            (std::vector<std::string_view>{"origin", "session-connection"}));
  EXPECT_EQ(b.stringList("ICE"), (std::vector<std::string_view>{"remove"}));
  EXPECT_EQ(b.stringList("received-from"), (std::vector<std::string_view>{"IP4", "198.51.100.7"}));
  EXPECT_EQ(b.stringList("supports"), (std::vector<std::string_view>{"load limit"}));
  auto sdp = b.string("sdp");
  ASSERT_TRUE(sdp);
  EXPECT_EQ(sdp->substr(0, 5), "v=0\r\n");
  EXPECT_NE(sdp->find("a=end-of-candidates\r\n"), std::string_view::npos);
  // Wire order kept: Kamailio does not sort.
  EXPECT_EQ(b.asDict().front().key, "supports");
  EXPECT_EQ(b.asDict().back().key, "command");
  // Canonical re-encoding decodes to the same entries.
  auto again = decode(encode(b));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->asDict().size(), b.asDict().size());
  for (const auto& e : b.asDict()) {
    ASSERT_NE(again->find(e.key), nullptr) << e.key;
    EXPECT_EQ(*again->find(e.key), e.value) << e.key;
  }
}

TEST(Ng, OtherCommands) {
  const std::string answerText = readData("ng/answer_kamailio.txt");  // the cookie views it
  auto answer = parseNgDatagram(answerText);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->body.string("command"), "answer");
  EXPECT_EQ(answer->body.string("to-tag"), "as5f2c4e1d");
  EXPECT_EQ(answer->body.stringList("ICE"), (std::vector<std::string_view>{"force"}));
  EXPECT_EQ(answer->body.stringList("rtcp-mux"), (std::vector<std::string_view>{"demux"}));

  const std::string spacedText =
      readData("ng/offer_received_from_space.txt");  // the cookie views it
  auto spaced = parseNgDatagram(spacedText);
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->body.stringList("received from"),
            (std::vector<std::string_view>{"IP4", "127.0.0.1"}));
  EXPECT_EQ(spaced->body.stringList("direction"),
            (std::vector<std::string_view>{"internal", "external"}));

  const std::string v6Text = readData("ng/offer_ipv6_single_flag.txt");  // the cookie views it
  auto v6 = parseNgDatagram(v6Text);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->body.stringList("flags"), (std::vector<std::string_view>{"trust-address"}));
  EXPECT_EQ(v6->body.stringList("replace"), (std::vector<std::string_view>{"origin"}));
  EXPECT_EQ(v6->body.string("address family"), "IP6");

  const std::string delText = readData("ng/delete.txt");  // the cookie views it
  auto del = parseNgDatagram(delText);
  ASSERT_TRUE(del);
  EXPECT_EQ(del->body.string("command"), "delete");
  EXPECT_EQ(del->body.integer("delete delay"), 0);

  const std::string pingText = readData("ng/ping.txt");  // the cookie views it
  auto ping = parseNgDatagram(pingText);
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->cookie, "13042_0_1");
  EXPECT_EQ(formatNgReply(ping->cookie, ngPong()), "13042_0_1 d6:result4:ponge");

  const std::string queryText = readData("ng/query.txt");  // the cookie views it
  auto query = parseNgDatagram(queryText);
  ASSERT_TRUE(query);
  EXPECT_EQ(query->body.string("call-id"), "abc@host");
}

TEST(Ng, EveryTruncationOfARealDatagramFailsCleanly) {
  const std::string datagram = readData("ng/offer_kamailio.txt");
  for (size_t n = 0; n < datagram.size(); ++n) {
    EXPECT_FALSE(parseNgDatagram(std::string_view(datagram).substr(0, n))) << n;
  }
}

}  // namespace
}  // namespace evosip::bencode
