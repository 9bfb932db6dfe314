#include <random>

#include <evosip/rtp/packetizer.hpp>

namespace evosip::rtp {

StreamStart StreamStart::random() {
  std::random_device rd;
  StreamStart s;
  s.ssrc = rd();
  s.sequence = static_cast<uint16_t>(rd());
  s.timestamp = rd();
  return s;
}

Packetizer::Packetizer(const PacketizerSettings& settings, const StreamStart& start)
    : settings_(settings),
      samplesPerFrame_(static_cast<uint32_t>(settings.clockRate * settings.ptime.count() / 1000)),
      ssrc_(start.ssrc),
      sequence_(start.sequence),
      timestamp_(start.timestamp) {}

RtpHeader Packetizer::next(uint32_t samples) {
  RtpHeader h;
  h.marker = marker_;
  h.payloadType = settings_.payloadType;
  h.sequence = sequence_++;
  h.timestamp = timestamp_;
  h.ssrc = ssrc_;
  timestamp_ += samples;
  marker_ = false;
  ++packets_;
  return h;
}

RtpHeader Packetizer::nextWithTimestamp(uint8_t payloadType, uint32_t timestamp, bool marker) {
  RtpHeader h;
  h.marker = marker;
  h.payloadType = payloadType;
  h.sequence = sequence_++;
  h.timestamp = timestamp;
  h.ssrc = ssrc_;
  ++packets_;
  return h;
}

void Packetizer::skip(uint32_t samples) {
  timestamp_ += samples;
  marker_ = true;
}

Result<size_t> Packetizer::packetize(std::span<const uint8_t> payload, uint32_t samples,
                                     std::span<uint8_t> out) {
  if (out.size() < kRtpHeaderSize + payload.size()) {
    return makeError(Errc::kTooLarge, "RTP packet does not fit the output buffer");
  }
  return writeRtp(next(samples), payload, out);
}

}  // namespace evosip::rtp
