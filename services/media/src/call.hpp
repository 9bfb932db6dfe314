#pragma once
// Private to the relay: a call, its legs, their media slots and the slots' streams (the model in
// relay.hpp). Built by the offer/answer steps (relay_offer_answer.cpp), read by the two packet
// paths (relay_epoll.cpp, relay_io_uring.cpp), reported by query and delete (relay.cpp).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/media/endpoint.hpp>
#include <evosip/media/latch.hpp>

namespace evosip::media {

struct Leg;

// One local UDP socket facing one leg's endpoint.
struct Stream {
  Stream(uint16_t port, bool isRtcp) : localPort(port), rtcp(isRtcp) {}
  int fd = -1;
  uint16_t localPort = 0;
  bool rtcp = false;
  bool closed = false;
  Leg* leg = nullptr;     // whose endpoint this socket faces (its latch policy applies)
  LatchState latch;       // where packets for the leg go
  Endpoint advertised;    // the leg's address and port from its SDP
  Stream* out = nullptr;  // packets arriving here leave from out's socket to out's destination
  uint64_t packets = 0, bytes = 0, errors = 0;
  int64_t lastPacketNs = 0;  // the relay's clock at the last packet received here (0: none)
  // io_uring path: this stream's entry in IoUringRing's table (completions name it by index and
  // generation, so a completion for a closed stream is recognised and ignored).
  uint32_t ringSlot = 0;
  uint16_t ringGen = 0;
  bool ringFixed = false;  // the socket is in the ring's registered file table at ringSlot
};

// One m= line of one leg: its RTP and RTCP streams.
struct MediaSlot {
  std::string type, protocol;
  std::shared_ptr<Stream> rtp, rtcp;
  bool rtcpMux = false;
  bool rejected = false;
  // The pair is taken in the worker's PortAllocator, to be given back when the call ends (false:
  // restored on another relay's address, or outside this worker's range).
  bool pooled = true;
};

// One SIP tag (rtpengine's monologue).
struct Leg {
  std::string tag, label, viaBranch;
  LatchPolicy policy;
  Leg* peer = nullptr;
  std::vector<MediaSlot> media;
  int64_t createdWall = 0;
  // A stream of this leg latched or moved since the call was last written to the store (set on
  // the packet path, read by the worker's tick).
  bool latchChanged = false;
};

struct Call {
  std::string callId;
  std::vector<std::unique_ptr<Leg>> legs;
  size_t pairs = 0;  // port pairs held by every leg
  int64_t createdWall = 0;
  int64_t lastSignalWall = 0;
  int64_t lastSignalNs = 0;  // the relay's clock at the last offer or answer
  // A call restored from the store (media.state takeover): the relay instance whose address it
  // lives on, that address (written into SDP) and where its sockets are bound. Empty / unknown:
  // this relay's own media.address and media.bind.
  std::string owner;
  std::string advertise;
  Endpoint bind;

  Leg* findLeg(std::string_view tag) const {
    for (const auto& l : legs) {
      if (l->tag == tag) {
        return l.get();
      }
    }
    return nullptr;
  }
  Leg* newLeg(std::string tag, int64_t wall) {
    legs.push_back(std::make_unique<Leg>());
    legs.back()->tag = std::move(tag);
    legs.back()->createdWall = wall;
    return legs.back().get();
  }
};

// A packet arriving on one leg's stream leaves from the other leg's stream of the same m= line;
// RTCP goes to the RTP stream of a leg that muxes it.
inline void connectSlots(MediaSlot& s, MediaSlot& r) {
  if (!s.rtp || !r.rtp) {
    return;
  }
  s.rtp->out = r.rtp.get();
  s.rtcp->out = r.rtcpMux ? r.rtp.get() : r.rtcp.get();
  r.rtp->out = s.rtp.get();
  r.rtcp->out = s.rtcpMux ? s.rtp.get() : s.rtcp.get();
}

}  // namespace evosip::media
