#pragma once
// The RTP side of one call: one socket on an even port of the worker's range (RTCP, muxed or
// not, is never bound), where our packets go and which received packets count. Sending starts
// at the SDP address and latches to the source of the peer's first RTP (or RTCP) packet
// (symmetric RTP, NAT); after the latch only that source's packets count. The outgoing stream
// (SSRC, sequence, timestamps, marker) is the packetizer's.
//
// A datagram is received in named steps: readDatagram -> isMedia -> admitSource; what passes
// them is the call's (RTP: audio or digits; RTCP: a sign of life).

#include <optional>
#include <span>
#include <string>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include <evosip/app/pacing_thread.hpp>
#include <evosip/app/sdp_answer.hpp>
#include <evosip/base/result.hpp>
#include <evosip/rtp/packetizer.hpp>
#include <evosip/rtp/port_allocator.hpp>

namespace evosip::app {

class MediaSession {
 public:
  explicit MediaSession(boost::asio::io_context& io) : sock_(io) {}

  // Binds a port from `ports` on `address` (ports another process holds are skipped).
  Result<void> open(const std::string& address, rtp::PortAllocator& ports);
  boost::asio::ip::udp::socket& socket() { return sock_; }
  uint16_t port() const { return port_; }
  int fd() const { return fd_; }

  // ---- receiving ----
  // The next datagram that passes every step, read into `buffer`: nullopt when nothing more is
  // waiting; an empty span for a datagram dropped by a step.
  std::optional<std::span<const uint8_t>> receive(std::span<uint8_t> buffer);
  // A packet from the latched peer came since the answer (or since the address moved).
  bool heard() const { return heard_; }

  // ---- sending ----
  // The stream starts (the application runs): packets from now on latch the session.
  void start();
  bool started() const { return started_; }
  // The offer's address, unless latched.
  void aimAtOffer();
  // A re-offer: a new codec starts a new stream; a new address un-latches and must answer.
  // Returns whether the address moved.
  bool update(const Negotiated& n);
  // The next packet starts a talkspurt (marker bit).
  void markTalkspurt() { marker_ = true; }
  bool hasDestination() const { return destLen_ != 0; }
  // One frame now (sendto); false when the kernel refused it.
  enum class Sent : uint8_t { kNothing, kSent, kFailed };
  Sent sendNow(std::span<const uint8_t> payload, uint32_t samples);
  // One frame into a prepared pacing tick; false when it does not fit.
  bool addTo(PacingThread::Tick& tick, std::span<const uint8_t> payload, uint32_t samples);
  // Time passes without a packet: the RTP timestamps move on, the next packet has the marker.
  void skip(uint32_t samples, bool newTalkspurt);
  // Every packet of this session is in a pacing tick below this one.
  uint64_t sentBelow() const { return sentBelow_; }

  // Closes the socket now (returns the port), or hands its descriptor over while packets of
  // the session still wait in ticks the sender has not passed (`senderBelow`): the descriptor
  // must not be reused meanwhile. nullopt: closed.
  struct Pending {
    int fd;
    uint16_t port;
    uint64_t sentBelow;
  };
  std::optional<Pending> close(uint64_t senderBelow, rtp::PortAllocator& ports);

  Negotiated negotiated;

 private:
  // The steps of a received datagram.
  std::optional<std::span<const uint8_t>> readDatagram(std::span<uint8_t> buffer,
                                                       sockaddr_storage& from, socklen_t& len);
  static bool isMedia(std::span<const uint8_t> datagram);
  bool admitSource(const sockaddr_storage& from, socklen_t len);
  std::optional<size_t> packetize(std::span<const uint8_t> payload, uint32_t samples,
                                  std::span<uint8_t> out);

  boost::asio::ip::udp::socket sock_;
  int fd_ = -1;
  uint16_t port_ = 0;
  sockaddr_storage dest_{};
  socklen_t destLen_ = 0;
  bool latched_ = false;
  bool heard_ = false;
  bool started_ = false;
  bool marker_ = false;
  std::optional<rtp::Packetizer> packetizer_;
  uint64_t sentBelow_ = 0;
};

}  // namespace evosip::app
