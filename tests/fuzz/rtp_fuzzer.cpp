// libFuzzer target: RTP header parsing, telephone-event parsing, and the DTMF receiver and
// receive statistics fed a stream of packets cut from the input.
#include <algorithm>
#include <cstdint>
#include <span>

#include <evosip/rtp/packet.hpp>
#include <evosip/rtp/receive_stats.hpp>
#include <evosip/rtp/telephone_event.hpp>

#include "fuzz_check.hpp"

using namespace evosip::rtp;
using evosip::fuzz::check;

namespace {

bool inside(std::span<const uint8_t> part, std::span<const uint8_t> whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  if (auto p = parseRtp(in)) {
    check(inside(p->payload, in) && inside(p->csrcs, in) && inside(p->extension, in));
    check(p->csrcs.size() == 4u * p->csrcCount);
    check(kRtpHeaderSize + p->csrcs.size() + (p->hasExtension ? 4 : 0) + p->extension.size() +
              p->payload.size() + p->paddingBytes ==
          size);
    for (size_t i = 0; i < p->csrcCount; ++i) {
      (void)p->csrc(i);
    }
    // Writing the header back and parsing it again gives the same fields.
    uint8_t buf[1600];
    if (auto n =
            writeRtp(p->header, p->payload.first(std::min<size_t>(p->payload.size(), 1500)), buf)) {
      auto again = parseRtp(std::span<const uint8_t>(buf, *n));
      check(again && again->header.sequence == p->header.sequence &&
            again->header.timestamp == p->header.timestamp &&
            again->header.ssrc == p->header.ssrc && again->header.marker == p->header.marker &&
            again->header.payloadType == p->header.payloadType);
    }
  }
  (void)looksLikeRtcp(in);
  if (auto e = parseTelephoneEvent(in)) {
    const auto w = writeTelephoneEvent(*e);
    auto back = parseTelephoneEvent(w);
    check(back && back->event == e->event && back->end == e->end && back->volume == e->volume &&
          back->duration == e->duration);
  }
  // The input as a stream: records of [len][bytes], each an RTP packet whose payload is a
  // telephone-event (the receiver ignores payload type, as the caller demultiplexes).
  DtmfReceiver dtmf;
  ReceiveStats stats;
  size_t pos = 0;
  uint64_t digits = 0;
  uint64_t fed = 0;
  while (pos < size) {
    const size_t len = std::min<size_t>(data[pos], size - pos - 1);
    const auto pkt = in.subspan(pos + 1, len);
    pos += 1 + len;
    if (auto p = parseRtp(pkt)) {
      if (dtmf.onPacket(*p)) {
        ++digits;
      }
      (void)stats.onPacket(p->header.sequence, p->header.timestamp);
      ++fed;
    } else if (pkt.size() >= 6) {
      // Also as raw (seq, timestamp) pairs so the receivers see arbitrary orderings.
      const uint16_t seq = static_cast<uint16_t>((pkt[0] << 8) | pkt[1]);
      const uint32_t ts =
          (static_cast<uint32_t>(pkt[2]) << 24) | (pkt[3] << 16) | (pkt[4] << 8) | pkt[5];
      if (dtmf.onPacket(seq, ts, (pkt[0] & 1) != 0, pkt.subspan(6))) {
        ++digits;
      }
      (void)stats.onPacket(seq, ts);
      ++fed;
    }
  }
  check(digits == dtmf.stats().digits && digits <= dtmf.stats().packets);
  check(stats.received() <= fed && stats.received() + stats.duplicates() <= fed);
  return 0;
}
