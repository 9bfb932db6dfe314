#pragma once
// Private to the relay: a leg, its media slots and their streams (the model in relay.hpp), shared
// by the two packet paths (relay.cpp: epoll + recvmmsg/sendmmsg; packet_ring.cpp: io_uring).

#include <cstdint>
#include <memory>
#include <string>
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
  int64_t lastPacketNs = 0;
  // io_uring path: this stream's entry in PacketRing's table (completions name it by index and
  // generation, so a completion for a closed stream is recognised and ignored).
  uint32_t ringSlot = 0;
  uint16_t ringGen = 0;
  bool ringFixed = false;  // the socket is in the ring's registered file table at ringSlot
};

struct MediaSlot {
  std::string type, protocol;
  std::shared_ptr<Stream> rtp, rtcp;
  bool rtcpMux = false;
  bool rejected = false;
};

struct Leg {
  std::string tag, label, viaBranch;
  LatchPolicy policy;
  Leg* peer = nullptr;
  std::vector<MediaSlot> media;
  int64_t createdWall = 0;
};

}  // namespace evosip::media
