// libFuzzer target: the edge's whole message path (sanity, header hygiene, route hygiene and the
// in-dialog check with flow tokens, next hop, loop check, rewrite; responses, probes, bans) on
// arbitrary input. The first byte picks the sender (a client over UDP or TCP, or a router); the
// text "@TOKEN@" becomes a valid flow token of that client, so the fuzzer reaches the paths of
// our own Record-Route. Properties: nothing a client sends goes anywhere but to a router or back
// to that client; nothing goes to the edge itself; every message sent parses.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/edge/edge_proxy.hpp>
#include <evosip/edge/flow_token.hpp>
#include <evosip/sip/message.hpp>

#include "fuzz_check.hpp"

using evosip::fuzz::check;
using namespace evosip;
using transport::Destination;
using transport::Endpoint;
using transport::Protocol;

namespace {

Endpoint ep(const char* ip, uint16_t port) {
  return {boost::asio::ip::make_address(ip), port};
}

class FuzzClock final : public runtime::Clock {
 public:
  time_point now() const override { return now_; }
  void advance(std::chrono::nanoseconds d) { now_ += d; }

 private:
  time_point now_{std::chrono::seconds(1000)};
};

struct Sent {
  Destination to;
  std::string bytes;
};

const Endpoint kEdge = ep("127.0.0.1", 5060);
const Endpoint kRouterA = ep("127.0.0.1", 5070);
const Endpoint kRouterB = ep("127.0.0.1", 5071);
const Endpoint kClient = ep("192.0.2.10", 5062);

edge::EdgeSettings settings() {
  edge::EdgeSettings s;
  s.listen = {{Protocol::kUdp, kEdge}, {Protocol::kTcp, kEdge}};
  s.egressPorts = {{40001, 0}};
  s.flowSecret = "fuzz";
  s.rateLimitPerSecond = 0;
  s.authBan.failures = 2;
  s.authBan.slots = 64;
  return s;
}

std::string withToken(std::string_view input, const Destination& flow) {
  static const edge::FlowTokenCodec codec("fuzz");
  std::string token;
  codec.encode(flow, token);
  std::string out(input);
  for (size_t at = out.find("@TOKEN@"); at != std::string::npos; at = out.find("@TOKEN@", at)) {
    out.replace(at, 7, token);
    at += token.size();
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  const uint8_t mode = data[0] % 3;
  transport::Source src{Protocol::kUdp, kClient, kEdge, {}};
  if (mode == 1) {
    src = transport::Source{Protocol::kTcp, ep("192.0.2.10", 40000), kEdge, {0, 5}};
  } else if (mode == 2) {
    src = transport::Source{Protocol::kUdp, kRouterA, kEdge, {}};
  }
  const std::string input =
      withToken(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1),
                Destination{src.protocol, src.remote, src.connection});

  FuzzClock clock;
  std::vector<Sent> sent;
  auto routers = edge::RouterSet::build({"sip:127.0.0.1:5070", "sip:127.0.0.1:5071"});
  check(routers.has_value());
  edge::EdgeProxy proxy(
      settings(), *routers, 2, clock,
      [&](const Destination& to, std::string_view bytes) {
        sent.push_back({to, std::string(bytes)});
        return true;
      },
      [](size_t, std::function<void()> fn) { fn(); });

  proxy.onPacket(0, transport::Packet{input, src});
  proxy.onPacket(1, transport::Packet{input, src});  // a retransmission, on the other worker
  clock.advance(std::chrono::seconds(1));
  proxy.onTick(0);
  proxy.onTick(1);

  sip::ParseLimits big;
  big.maxSize = 1 << 20;
  big.maxHeaders = 4096;
  const bool fromRouter = mode == 2;
  for (const auto& s : sent) {
    check(!(s.to.protocol == Protocol::kUdp && s.to.remote == kEdge));
    check(!(s.to.protocol == Protocol::kUdp && s.to.remote.port == 40001 &&
            s.to.remote.ip == kEdge.ip));
    if (!fromRouter) {
      const bool toRouter = s.to.remote == kRouterA || s.to.remote == kRouterB;
      const bool toSender = s.to.remote.ip == src.remote.ip;
      check(toRouter || toSender);
    }
    auto m = sip::Message::parse(s.bytes, big);
    check(m.has_value());
    if (m->isRequest() && !fromRouter && m->maxForwards()) {
      check(*m->maxForwards() <= 20);
    }
  }
  return 0;
}
