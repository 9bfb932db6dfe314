#pragma once
// RFC 4733 telephone-events: the 4-byte event payload, a receiver that turns a stream of
// event packets into DTMF digits, and an encoder producing the packets for one digit.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <evosip/base/result.hpp>
#include <evosip/rtp/packet.hpp>

namespace evosip::rtp {

inline constexpr size_t kTelephoneEventSize = 4;

struct TelephoneEvent {
  uint8_t event = 0;      // 0-9, 10 '*', 11 '#', 12-15 'A'-'D', 16 flash, ...
  bool end = false;       // E bit
  uint8_t volume = 0;     // 0..63, power level in -dBm0
  uint16_t duration = 0;  // in RTP timestamp units since the event's timestamp
};

// Parses the first 4 bytes (more may follow under RFC 2198 redundancy; they are ignored).
// kParse if shorter. The reserved R bit is ignored as the RFC asks.
Result<TelephoneEvent> parseTelephoneEvent(std::span<const uint8_t> payload);
std::array<uint8_t, kTelephoneEventSize> writeTelephoneEvent(const TelephoneEvent& event);

// DTMF events 0..15 <-> '0'-'9', '*', '#', 'A'-'D' (lower-case a-d accepted).
std::optional<char> eventToDigit(uint8_t event);
std::optional<uint8_t> digitToEvent(char digit);

struct DtmfDigit {
  char digit = 0;
  uint8_t event = 0;
  uint32_t timestamp = 0;  // the event's RTP timestamp (its start)
};

// Turns received telephone-event packets (already demultiplexed by payload type) into digits:
// one digit per event, reported on the first packet seen of it (so a lost start packet does
// not lose the digit). Updates, the redundant end packets and retransmissions carry the same
// timestamp and are absorbed; a packet of an event older than the newest one (reordered or
// very late) is dropped rather than reported out of order. Segments of a long event (RFC
// 4733 2.5.1.3) continue it. Non-DTMF events are tracked but not reported.
class DtmfReceiver {
 public:
  struct Stats {
    uint64_t packets = 0;
    uint64_t digits = 0;
    uint64_t repeats = 0;    // updates, end repeats and duplicates of a known event
    uint64_t late = 0;       // packets of an event older than the newest
    uint64_t malformed = 0;  // payload shorter than 4 bytes
  };

  std::optional<DtmfDigit> onPacket(uint16_t sequence, uint32_t timestamp, bool marker,
                                    std::span<const uint8_t> payload);
  std::optional<DtmfDigit> onPacket(const RtpPacket& packet) {
    return onPacket(packet.header.sequence, packet.header.timestamp, packet.header.marker,
                    packet.payload);
  }

  // True while the newest event has not seen its end packet (a key is held down).
  bool eventActive() const { return haveLast_ && !lastEnded_; }
  const Stats& stats() const { return stats_; }

 private:
  static constexpr size_t kRecent = 8;

  bool recent(uint32_t timestamp) const;
  void remember(uint32_t timestamp);

  std::array<uint32_t, kRecent> recent_{};
  size_t recentCount_ = 0;
  size_t recentNext_ = 0;
  bool haveLast_ = false;
  uint32_t lastTs_ = 0;
  uint8_t lastEvent_ = 0;
  bool lastEnded_ = false;
  uint16_t lastDuration_ = 0;
  Stats stats_;
};

struct DtmfEncoderSettings {
  uint32_t clockRate = 8000;
  std::chrono::milliseconds duration{100};   // tone length
  std::chrono::milliseconds interval{50};    // between updates
  std::chrono::milliseconds endSpacing{20};  // between the end packet and its repeats
  uint8_t volume = 10;                       // -dBm0
  uint32_t endPackets = 3;                   // the end packet and its repeats
};

struct DtmfPacket {
  uint32_t sendOffset = 0;  // in timestamp units after the event's start: when to send it
  bool marker = false;      // first packet of the event
  TelephoneEvent event;
  std::array<uint8_t, kTelephoneEventSize> payload{};
};

// The packets for one digit, all to be sent with the event's timestamp (the audio timestamp
// at the start of the tone) and consecutive sequence numbers: the first (marker) after one
// interval, an update every interval, then the end packet `endPackets` times. kInvalid for a
// character that is not a DTMF digit.
Result<std::vector<DtmfPacket>> encodeDtmf(char digit, const DtmfEncoderSettings& settings = {});

}  // namespace evosip::rtp
