#include <algorithm>

#include <fmt/format.h>

#include <evosip/rtp/telephone_event.hpp>

namespace evosip::rtp {
namespace {

constexpr char kDigits[] = "0123456789*#ABCD";

// A new segment of a long event starts at most this far after the previous one (the maximum
// duration plus slack for a lost update).
constexpr uint32_t kMaxSegmentGap = 0xFFFF + 1600;
// An event this far behind the newest is taken as a restarted stream, not a late packet.
constexpr uint32_t kMaxLateness = 8000 * 30;

}  // namespace

Result<TelephoneEvent> parseTelephoneEvent(std::span<const uint8_t> p) {
  if (p.size() < kTelephoneEventSize) {
    return makeError(Errc::kParse, "telephone-event payload shorter than 4 bytes");
  }
  TelephoneEvent e;
  e.event = p[0];
  e.end = (p[1] & 0x80) != 0;
  e.volume = p[1] & 0x3F;
  e.duration = static_cast<uint16_t>((p[2] << 8) | p[3]);
  return e;
}

std::array<uint8_t, kTelephoneEventSize> writeTelephoneEvent(const TelephoneEvent& e) {
  return {e.event, static_cast<uint8_t>((e.end ? 0x80 : 0) | (e.volume & 0x3F)),
          static_cast<uint8_t>(e.duration >> 8), static_cast<uint8_t>(e.duration)};
}

std::optional<char> eventToDigit(uint8_t event) {
  if (event < 16) {
    return kDigits[event];
  }
  return std::nullopt;
}

std::optional<uint8_t> digitToEvent(char digit) {
  if (digit >= 'a' && digit <= 'd') {
    digit = static_cast<char>(digit - 'a' + 'A');
  }
  for (uint8_t i = 0; i < 16; ++i) {
    if (kDigits[i] == digit) {
      return i;
    }
  }
  return std::nullopt;
}

bool DtmfReceiver::recent(uint32_t timestamp) const {
  return std::find(recent_.begin(), recent_.begin() + recentCount_, timestamp) !=
         recent_.begin() + recentCount_;
}

void DtmfReceiver::remember(uint32_t timestamp) {
  recent_[recentNext_] = timestamp;
  recentNext_ = (recentNext_ + 1) % kRecent;
  recentCount_ = std::min(recentCount_ + 1, kRecent);
}

std::optional<DtmfDigit> DtmfReceiver::onPacket(uint16_t /*sequence*/, uint32_t timestamp,
                                                bool marker, std::span<const uint8_t> payload) {
  ++stats_.packets;
  auto ev = parseTelephoneEvent(payload);
  if (!ev) {
    ++stats_.malformed;
    return std::nullopt;
  }
  if (recent(timestamp)) {
    ++stats_.repeats;
    if (haveLast_ && timestamp == lastTs_) {
      lastEnded_ = lastEnded_ || ev->end;
      lastDuration_ = std::max(lastDuration_, ev->duration);
    }
    return std::nullopt;
  }
  if (haveLast_) {
    const uint32_t behind = lastTs_ - timestamp;
    if (behind != 0 && behind <= kMaxLateness) {
      ++stats_.late;
      return std::nullopt;
    }
    const uint32_t ahead = timestamp - lastTs_;
    if (!lastEnded_ && !marker && ev->event == lastEvent_ && lastDuration_ >= 0x8000 &&
        ahead <= kMaxSegmentGap) {
      // The next segment of a long event.
      ++stats_.repeats;
      remember(timestamp);
      lastTs_ = timestamp;
      lastEnded_ = ev->end;
      lastDuration_ = ev->duration;
      return std::nullopt;
    }
  }
  remember(timestamp);
  haveLast_ = true;
  lastTs_ = timestamp;
  lastEvent_ = ev->event;
  lastEnded_ = ev->end;
  lastDuration_ = ev->duration;
  auto digit = eventToDigit(ev->event);
  if (!digit) {
    return std::nullopt;
  }
  ++stats_.digits;
  return DtmfDigit{*digit, ev->event, timestamp};
}

Result<std::vector<DtmfPacket>> encodeDtmf(char digit, const DtmfEncoderSettings& s) {
  auto event = digitToEvent(digit);
  if (!event) {
    return makeError(Errc::kInvalid, fmt::format("'{}' is not a DTMF digit", digit));
  }
  const auto samples = [&](std::chrono::milliseconds ms) {
    return static_cast<uint32_t>(static_cast<uint64_t>(s.clockRate) * ms.count() / 1000);
  };
  const uint32_t total = std::clamp<uint32_t>(samples(s.duration), 1, 0xFFFF);
  const uint32_t interval = std::max<uint32_t>(samples(s.interval), 1);
  const uint32_t spacing = samples(s.endSpacing);
  std::vector<DtmfPacket> out;
  for (uint32_t t = std::min(interval, total);; t = std::min(t + interval, total)) {
    DtmfPacket p;
    p.sendOffset = t;
    p.marker = out.empty();
    p.event = TelephoneEvent{*event, t == total, s.volume, static_cast<uint16_t>(t)};
    p.payload = writeTelephoneEvent(p.event);
    if (t < total) {
      out.push_back(p);
      continue;
    }
    for (uint32_t i = 0; i < std::max<uint32_t>(s.endPackets, 1); ++i) {
      out.push_back(p);
      p.marker = false;
      p.sendOffset += spacing;
    }
    break;
  }
  return out;
}

}  // namespace evosip::rtp
