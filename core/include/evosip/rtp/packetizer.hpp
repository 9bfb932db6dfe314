#pragma once
// The sender state of one outgoing RTP stream (RFC 3550 5.1, RFC 3551 4.1): SSRC, sequence
// number and timestamp, frames of ptime, and the marker bit at the start of each talkspurt.

#include <chrono>
#include <cstdint>
#include <span>

#include <evosip/base/result.hpp>
#include <evosip/rtp/packet.hpp>

namespace evosip::rtp {

struct PacketizerSettings {
  uint8_t payloadType = 0;  // 0 PCMU, 8 PCMA
  uint32_t clockRate = 8000;
  std::chrono::milliseconds ptime{20};
};

// Where a stream starts; random in production (RFC 3550 5.1), fixed in tests.
struct StreamStart {
  uint32_t ssrc = 0;
  uint16_t sequence = 0;
  uint32_t timestamp = 0;

  static StreamStart random();  // from std::random_device
};

class Packetizer {
 public:
  Packetizer(const PacketizerSettings& settings, const StreamStart& start);
  explicit Packetizer(const PacketizerSettings& settings)
      : Packetizer(settings, StreamStart::random()) {}

  // Samples per frame at ptime: 160 for G.711 at 20 ms. Also the G.711 payload size.
  uint32_t samplesPerFrame() const { return samplesPerFrame_; }
  const PacketizerSettings& settings() const { return settings_; }

  // Header for the next packet carrying `samples` samples of audio in the stream's payload
  // type; advances the sequence number by 1 and the timestamp by `samples`. The marker is set
  // on the first packet of the stream and of each talkspurt.
  RtpHeader next(uint32_t samples);
  RtpHeader next() { return next(samplesPerFrame_); }

  // Header for a packet in another payload type at an explicit timestamp, sharing the
  // sequence space (RFC 4733 events); advances only the sequence number.
  RtpHeader nextWithTimestamp(uint8_t payloadType, uint32_t timestamp, bool marker);

  // Nothing is sent for `samples` (silence suppressed, hold, a DTMF event in its place): the
  // timestamp moves on, and the next audio packet starts a talkspurt (marker set).
  void skip(uint32_t samples);
  // The next audio packet starts a talkspurt.
  void startTalkspurt() { marker_ = true; }

  // Writes the header for `payload` (one frame of encoded audio, `samples` samples) and the
  // payload into `out`. Returns the packet size, kTooLarge if `out` is too small (then the
  // state does not change).
  Result<size_t> packetize(std::span<const uint8_t> payload, uint32_t samples,
                           std::span<uint8_t> out);
  // G.711: one byte per sample.
  Result<size_t> packetize(std::span<const uint8_t> payload, std::span<uint8_t> out) {
    return packetize(payload, static_cast<uint32_t>(payload.size()), out);
  }

  uint32_t ssrc() const { return ssrc_; }
  uint16_t sequence() const { return sequence_; }    // of the next packet
  uint32_t timestamp() const { return timestamp_; }  // of the next audio packet
  uint64_t packetsSent() const { return packets_; }

 private:
  PacketizerSettings settings_;
  uint32_t samplesPerFrame_;
  uint32_t ssrc_;
  uint16_t sequence_;
  uint32_t timestamp_;
  bool marker_ = true;
  uint64_t packets_ = 0;
};

}  // namespace evosip::rtp
