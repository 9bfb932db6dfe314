// Parse and forward cost of a typical INVITE (881 bytes, 12 headers, 313-byte SDP body).
#include <cstdint>
#include <string>
#include <string_view>

#include <benchmark/benchmark.h>

#include <evosip/sip/editor.hpp>
#include <evosip/sip/message.hpp>

namespace {

using namespace evosip::sip;

const std::string kInvite =
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.example.com;transport=udp>\r\n"
    "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, INFO, UPDATE\r\n"
    "Supported: replaces, timer, 100rel\r\n"
    "X-Evosip-Foo: must-not-pass\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 313\r\n"
    "\r\n"
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n"
    "s=Session SDP\r\n"
    "c=IN IP4 192.0.2.101\r\n"
    "t=0 0\r\n"
    "m=audio 49172 RTP/AVP 0 8 9 18 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:18 G729/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n";

void BM_ParseInvite(benchmark::State& state) {
  for (auto _ : state) {
    auto m = Message::parse(kInvite);
    benchmark::DoNotOptimize(m);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kInvite.size()));
}
BENCHMARK(BM_ParseInvite);

// What a forwarding proxy does: parse, read the values it needs, and splice its edits.
void BM_ParseAndForwardInvite(benchmark::State& state) {
  std::string out;
  out.reserve(2048);
  for (auto _ : state) {
    auto m = Message::parse(kInvite);
    if (!m) {
      state.SkipWithError("parse failed");
      break;
    }
    auto top = m->topVia();
    auto mf = m->maxForwards();
    auto cseq = m->cseq();
    benchmark::DoNotOptimize(m->callId());
    if (!top || !mf || !cseq) {
      state.SkipWithError("value parse failed");
      break;
    }
    MessageEditor ed(*m);
    const auto viaEnd =
        static_cast<uint32_t>(top->text.data() - m->buffer().data() + top->text.size());
    ed.insertAt(viaEnd, ";received=198.51.100.7;rport=5060");
    ed.prependHeader("Via", "SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK-evosip-1a2b3c");
    ed.prependHeader("Record-Route", "<sip:203.0.113.1:5060;lr>");
    ed.replaceValue(*m->find(HeaderId::kMaxForwards), "69");
    ed.removeHeader(*m->find("X-Evosip-Foo"));
    ed.writeTo(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kInvite.size()));
}
BENCHMARK(BM_ParseAndForwardInvite);

}  // namespace
