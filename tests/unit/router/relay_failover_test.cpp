// Failover between media relays: an offer a relay refuses because it takes no new sessions
// (its drain) goes to the next relay of the call's rendezvous order; the refusing relay is held
// out of new calls until router.media.hold_down_s passed on the manual clock. Two UDP sockets
// on 127.0.0.1 play the relays.
#include <evosip/bencode/bencode.hpp>

#include "router_fixture.hpp"

namespace evosip::router {
namespace {

using namespace fixture;
using namespace std::chrono_literals;
using boost::asio::ip::udp;

class RelayFailoverTest : public RouterFixture {
 protected:
  RelayFailoverTest()
      : draining_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}),
        working_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    adjust_ = [](RouterSettings& s) { s.relayHoldDown = 10s; };
    make(MediaMode::kAlways);
    addresses_ = {address(draining_), address(working_)};
    shared_->setMedia(*role::TargetSet::buildAddresses(addresses_, 2223));
  }

  static std::string address(const udp::socket& s) {
    return "udp:127.0.0.1:" + std::to_string(s.local_endpoint().port());
  }

  // A Call-ID whose first choice among the two relays (both up) is the draining one.
  std::string callPickingDraining(int from) {
    return callPicking(**role::TargetSet::buildAddresses(addresses_, 2223), 0, from);
  }

  void call(const std::string& callId) {
    callService(callId,
                "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n"
                "m=audio 4000 RTP/AVP 0\r\n");
  }

  // One ng command received by `relay` within a bounded number of polls: its cookie and body.
  std::optional<std::pair<std::string, std::string>> command(udp::socket& relay,
                                                             udp::endpoint& from) {
    std::array<char, 8192> buf{};
    for (int i = 0; i < 200; ++i) {
      settle();
      if (relay.available() > 0) {
        const size_t n = relay.receive_from(boost::asio::buffer(buf), from);
        const std::string datagram(buf.data(), n);
        const auto space = datagram.find(' ');
        return std::make_pair(datagram.substr(0, space), datagram.substr(space + 1));
      }
    }
    return std::nullopt;
  }

  void reply(udp::socket& relay, const udp::endpoint& to, const std::string& cookie,
             const bencode::Value& body) {
    relay.send_to(boost::asio::buffer(cookie + " " + bencode::encode(body)), to);
  }

  // The INVITE the app got for this Call-ID, after bounded polls.
  std::string inviteToApp(const std::string& callId) {
    for (int i = 0; i < 200; ++i) {
      settle();
      for (const auto& bytes : to("10.0.0.8")) {
        if (bytes.find("Call-ID: " + callId) != std::string::npos) {
          return bytes;
        }
      }
    }
    return {};
  }

  std::vector<std::string> addresses_;
  udp::socket draining_;
  udp::socket working_;
};

TEST_F(RelayFailoverTest, ADrainingRelaysRefusalSendsTheOfferToTheNextRelayAndHoldsItDown) {
  const std::string first = callPickingDraining(0);
  call(first);
  udp::endpoint router;
  auto refused = command(draining_, router);
  ASSERT_TRUE(refused.has_value());
  EXPECT_NE(refused->second.find("5:offer"), std::string::npos);
  bencode::Value error = bencode::Value::makeDict();
  error.set("result", "error").set("error-reason", "draining");
  reply(draining_, router, refused->first, error);

  auto offer = command(working_, router);
  ASSERT_TRUE(offer.has_value()) << "the next relay";
  bencode::Value ok = bencode::Value::makeDict();
  ok.set("result", "ok").set("sdp", "v=0\r\nc=IN IP4 203.0.113.50\r\nm=audio 30000 RTP/AVP 0\r\n");
  reply(working_, router, offer->first, ok);
  const std::string invite = inviteToApp(first);
  EXPECT_NE(invite.find("c=IN IP4 203.0.113.50"), std::string::npos) << invite;
  EXPECT_TRUE(finals().empty());
  EXPECT_EQ(router_->counters().relayFailovers.load(), 1u);

  // Held down: the next call that would pick the draining relay asks the other one at once.
  const std::string second = callPickingDraining(1000);
  call(second);
  offer = command(working_, router);
  ASSERT_TRUE(offer.has_value());
  EXPECT_NE(offer->second.find(second), std::string::npos);
  EXPECT_EQ(draining_.available(), 0u);

  // After the hold-down, it is asked again.
  pass(10s);
  const std::string third = callPickingDraining(2000);
  call(third);
  auto again = command(draining_, router);
  ASSERT_TRUE(again.has_value()) << ::testing::PrintToString(finals()) << " "
                                 << working_.available();
  EXPECT_NE(again->second.find(third), std::string::npos);
}

TEST_F(RelayFailoverTest, AnOfferTheRelayFindsMalformedIsNotRetriedNorHeldDown) {
  const std::string first = callPickingDraining(0);
  call(first);
  udp::endpoint router;
  auto refused = command(draining_, router);
  ASSERT_TRUE(refused.has_value());
  bencode::Value error = bencode::Value::makeDict();
  error.set("result", "error").set("error-reason", "Failed to parse SDP: bad");
  reply(draining_, router, refused->first, error);
  for (int i = 0; i < 50 && finals().empty(); ++i) {
    settle();
  }
  EXPECT_EQ(finals(), (std::vector<int>{503}));
  EXPECT_EQ(working_.available(), 0u) << "a caller's bad SDP takes no relay out";
  const std::string second = callPickingDraining(1000);
  call(second);
  EXPECT_TRUE(command(draining_, router).has_value());
}

}  // namespace
}  // namespace evosip::router
