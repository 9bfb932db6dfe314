// The edge's whole request path for a typical INVITE from a UDP client: parse, sanity checks,
// rendezvous choice, Via/Record-Route/received/rport/Max-Forwards edits, serialization and the
// failover entry; and the response path (200 OK back to the client). The transport is a no-op,
// so this is the per-message CPU cost without syscalls.
#include <string>

#include <benchmark/benchmark.h>

#include <evosip/edge/edge_proxy.hpp>
#include <evosip/runtime/clock.hpp>

namespace {

using evosip::edge::EdgeProxy;
using evosip::edge::EdgeSettings;
using evosip::edge::RouterSet;
using evosip::transport::Destination;
using evosip::transport::Endpoint;
using evosip::transport::Packet;
using evosip::transport::Protocol;

Endpoint ep(const char* ip, uint16_t port) {
  return {boost::asio::ip::make_address(ip), port};
}

const std::string kInvite =
    "INVITE sip:bob@evosip.local SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK776asdhds;rport\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@evosip.local>\r\n"
    "From: Alice <sip:alice@evosip.local>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@10.1.1.1:5062>\r\n"
    "User-Agent: bench\r\n"
    "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 142\r\n\r\n"
    "v=0\r\no=alice 2890844526 2890844526 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\n"
    "t=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

struct Fixture {
  Fixture() {
    EdgeSettings s;
    s.listen = {{Protocol::kUdp, ep("127.0.0.1", 5060)}};
    s.flowSecret = "bench";
    s.maxPendingPerWorker = 1 << 20;
    proxy = std::make_unique<EdgeProxy>(
        s, *RouterSet::build({"sip:127.0.0.1:5070", "sip:127.0.0.1:5071", "sip:127.0.0.1:5072"}), 1,
        evosip::runtime::SteadyClock::instance(),
        [this](const Destination&, std::string_view bytes) {
          last.assign(bytes);
          return true;
        },
        [](size_t, std::function<void()> fn) { fn(); });
  }
  std::unique_ptr<EdgeProxy> proxy;
  std::string last;
};

void BM_EdgeForwardInvite(benchmark::State& state) {
  Fixture f;
  Packet p{kInvite, {Protocol::kUdp, ep("192.0.2.10", 5062), ep("127.0.0.1", 5060), {}}};
  for (auto _ : state) {
    f.proxy->onPacket(0, p);
    benchmark::DoNotOptimize(f.last.data());
    f.proxy->onTick(0);  // keeps the failover table at its steady size
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EdgeForwardInvite);

void BM_EdgeResponseToClient(benchmark::State& state) {
  Fixture f;
  Packet in{kInvite, {Protocol::kUdp, ep("192.0.2.10", 5062), ep("127.0.0.1", 5060), {}}};
  f.proxy->onPacket(0, in);
  // The router's 200 OK carries the Via stack it received.
  std::string forwarded = f.last;
  std::string vias = forwarded.substr(forwarded.find("Via:"));
  vias = vias.substr(0, vias.find("Max-Forwards:"));
  std::string ok = "SIP/2.0 200 OK\r\n" + vias +
                   "To: Bob <sip:bob@evosip.local>;tag=8321234356\r\n"
                   "From: Alice <sip:alice@evosip.local>;tag=1928301774\r\n"
                   "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\nCSeq: 314159 INVITE\r\n"
                   "Contact: <sip:bob@10.2.2.2:5060>\r\nContent-Length: 0\r\n\r\n";
  Packet p{ok, {Protocol::kUdp, ep("127.0.0.1", 5070), ep("127.0.0.1", 5060), {}}};
  for (auto _ : state) {
    f.proxy->onPacket(0, p);
    benchmark::DoNotOptimize(f.last.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EdgeResponseToClient);

}  // namespace
