#pragma once
// Symmetric latching (rtpengine's endpoint learning), as a pure decision on one packet so that it
// is unit-tested without sockets.
//
// A stream's destination starts as the address signalling named (its SDP address, or the SIP
// source address with the SIP-source-address flag, or media-address). Unless the leg is
// `asymmetric`, the first packet that arrives on the stream latches the destination to the
// packet's real source (a NATed phone sends from a port, or an address, other than the one in
// its SDP). After that:
//   - packets from the latched address and port are forwarded;
//   - packets from any other address are still forwarded (the source is ignored, the destination
//     stays) - unless `strict-source` is set (dropped, counted as drop reason strict_source) or
//     `media-handover` is set (the destination moves to the new source);
// With `strict-source`, learning is strict too when the address is one signalling vouches for
// (received-from with SIP-source-address, or media-address; rtpengine's heuristic endpoint
// learning, without its fallback to other addresses): only a packet from that address (any port:
// NAT) may latch; packets from other addresses are dropped before the latch as after it. So
// whoever sends first cannot take the stream over. An address taken from the SDP restricts
// nothing before the latch: a phone behind NAT names its private address there and sends from
// its public one, so the first packet latches from any source and strict source applies after
// it. Without a named address (c=0.0.0.0, an ICE placeholder, no SDP address) the first packet
// latches too.
// `asymmetric` never latches and never checks sources: the destination stays the SDP address.
// A new SDP address for the leg (re-offer) un-latches the stream.

#include <evosip/media/endpoint.hpp>

namespace evosip::media {

struct LatchPolicy {
  bool asymmetric = false;
  bool strictSource = false;
  bool mediaHandover = false;
};

struct LatchState {
  Endpoint destination;           // where packets for this leg go
  Endpoint signalled;             // the address signalling named (unknown or 0.0.0.0: none)
  bool signalledFromSip = false;  // `signalled` is received-from or media-address, not the SDP's
  bool latched = false;           // learned from a packet ("confirmed" in rtpengine's query)
};

enum class LatchVerdict { kForward, kLatched, kMoved, kDropStrict };

inline LatchVerdict latchOnPacket(LatchState& s, const LatchPolicy& p, const sockaddr* src,
                                  socklen_t srcLen) {
  if (p.asymmetric) {
    return LatchVerdict::kForward;
  }
  if (!s.latched) {
    if (p.strictSource && s.signalledFromSip && s.signalled.known() &&
        !s.signalled.isUnspecified() && !s.signalled.sameAddressAs(src, srcLen)) {
      return LatchVerdict::kDropStrict;
    }
    s.destination.assign(src, srcLen);
    s.latched = true;
    return LatchVerdict::kLatched;
  }
  if (s.destination.sameAs(src, srcLen)) {
    return LatchVerdict::kForward;
  }
  if (p.strictSource) {
    return LatchVerdict::kDropStrict;
  }
  if (p.mediaHandover) {
    s.destination.assign(src, srcLen);
    return LatchVerdict::kMoved;
  }
  return LatchVerdict::kForward;
}

}  // namespace evosip::media
