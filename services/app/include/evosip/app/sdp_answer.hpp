#pragma once
// The app's side of the RFC 3264 offer/answer: reads an offer (with the sdp parser), picks
// the codec (the first PCMU or PCMA format of the offer's first usable audio m= line) and
// telephone-event when offered, and writes the answer. Every other m= line is refused
// (port 0), as RFC 3264 6 asks. No usable audio line: the caller answers 488.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <evosip/audio/g711.hpp>
#include <evosip/base/result.hpp>
#include <evosip/sdp/session_description.hpp>

namespace evosip::app {

struct Negotiated {
  audio::G711Law law = audio::G711Law::kUlaw;
  uint8_t payloadType = 0;                // as the offer numbers it (0 / 8 or dynamic)
  std::optional<uint8_t> telephoneEvent;  // RFC 4733 payload type, when offered
  std::string remoteAddress;              // the offer's effective c= address
  uint16_t remotePort = 0;
  bool remoteIpv6 = false;
  sdp::Direction remoteDirection = sdp::Direction::kSendRecv;
  bool hold = false;     // sendonly/inactive or c=0.0.0.0 (sdp::isOnHold)
  bool rtcpMux = false;  // offered a=rtcp-mux: we answer it
  size_t audioIndex = 0;
  // Every m= line of the offer in order, for the refused lines of the answer.
  struct Line {
    std::string media, proto, format;
  };
  std::vector<Line> lines;

  // We may send: the offer lets us (sendrecv/recvonly) and gave a real address and port.
  bool canSend() const;
};

// Errors: kParse (not SDP), kInvalid (no audio line with PCMU/PCMA over RTP/AVP(F): 488).
// `keep` (a re-offer in a call): that law wins when the offer still has it, so a call does not
// change codec because the other one comes first.
Result<Negotiated> negotiate(std::string_view offer,
                             std::optional<audio::G711Law> keep = std::nullopt);

// The direction we answer: the mirror of the offer's (sendonly -> recvonly, recvonly ->
// sendonly, inactive -> inactive); c=0.0.0.0 counts as sendonly.
sdp::Direction answerDirection(const Negotiated& n);

struct AnswerAddress {
  std::string address;  // app.rtp_address
  bool ipv6 = false;
  uint16_t port = 0;
  uint64_t sessionId = 0;
  uint64_t version = 1;  // o= version: increases with every new answer in the dialog
};

std::string buildAnswer(const Negotiated& n, const AnswerAddress& a);

}  // namespace evosip::app
