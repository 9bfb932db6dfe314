#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <evosip/rtp/packetizer.hpp>
#include <evosip/rtp/telephone_event.hpp>

namespace evosip::rtp {
namespace {

using Bytes = std::vector<uint8_t>;

TEST(TelephoneEvent, ParseAndWrite) {
  // Event 5, E=1, R=1 (ignored), volume 10, duration 800.
  const Bytes b = {0x05, 0xCA, 0x03, 0x20};
  auto e = parseTelephoneEvent(b);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event, 5);
  EXPECT_TRUE(e->end);
  EXPECT_EQ(e->volume, 10);
  EXPECT_EQ(e->duration, 800);
  const auto w = writeTelephoneEvent(*e);
  EXPECT_EQ(Bytes(w.begin(), w.end()), (Bytes{0x05, 0x8A, 0x03, 0x20}));
  EXPECT_FALSE(parseTelephoneEvent(std::span(b).first(3)));
  EXPECT_FALSE(parseTelephoneEvent({}));
  const Bytes longer = {11, 0x00, 0x01, 0x90, 0xFF, 0xFF, 0xFF, 0xFF};
  auto l = parseTelephoneEvent(longer);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->event, 11);
  EXPECT_FALSE(l->end);
  EXPECT_EQ(l->duration, 400);
}

TEST(TelephoneEvent, DigitMapping) {
  const std::string all = "0123456789*#ABCD";
  for (uint8_t i = 0; i < 16; ++i) {
    EXPECT_EQ(eventToDigit(i), all[i]);
    EXPECT_EQ(digitToEvent(all[i]), i);
  }
  EXPECT_EQ(digitToEvent('b'), 13);
  EXPECT_FALSE(eventToDigit(16));  // flash
  EXPECT_FALSE(eventToDigit(255));
  EXPECT_FALSE(digitToEvent('E'));
  EXPECT_FALSE(digitToEvent(' '));
}

TEST(DtmfEncoder, PacketsForOneDigit) {
  auto packets = encodeDtmf('7');  // 100 ms, updates every 50 ms, 3 end packets
  ASSERT_TRUE(packets);
  ASSERT_EQ(packets->size(), 4u);
  const auto& p = *packets;
  EXPECT_TRUE(p[0].marker);
  EXPECT_EQ(p[0].event.event, 7);
  EXPECT_EQ(p[0].event.duration, 400);
  EXPECT_FALSE(p[0].event.end);
  EXPECT_EQ(p[0].sendOffset, 400u);
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_FALSE(p[i].marker);
    EXPECT_TRUE(p[i].event.end);
    EXPECT_EQ(p[i].event.duration, 800);
    EXPECT_EQ(p[i].sendOffset, 800u + (i - 1) * 160);
    EXPECT_EQ(p[i].payload, writeTelephoneEvent(p[i].event));
  }
  EXPECT_EQ(p[0].event.volume, 10);

  auto longer = encodeDtmf('#', {.duration = std::chrono::milliseconds(230)});
  ASSERT_TRUE(longer);
  std::vector<uint16_t> durations;
  for (const auto& q : *longer) {
    durations.push_back(q.event.duration);
  }
  EXPECT_EQ(durations, (std::vector<uint16_t>{400, 800, 1200, 1600, 1840, 1840, 1840}));
  auto bad = encodeDtmf('x');
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kInvalid);
}

struct Sent {
  uint16_t seq;
  uint32_t ts;
  bool marker;
  Bytes payload;
};

// The packets of a digit sequence as a sender puts them on the wire.
std::vector<Sent> sendDigits(const std::string& digits, uint32_t firstTs = 0xFFFFF000u) {
  Packetizer p({}, StreamStart{1, 65530, firstTs});
  std::vector<Sent> out;
  for (char d : digits) {
    const uint32_t ts = p.timestamp();
    auto packets = encodeDtmf(d);
    EXPECT_TRUE(packets);
    for (const auto& pk : *packets) {
      const auto h = p.nextWithTimestamp(101, ts, pk.marker);
      out.push_back(
          {h.sequence, h.timestamp, h.marker, Bytes(pk.payload.begin(), pk.payload.end())});
    }
    p.skip(800 + 800);  // the tone, then a pause of audio
  }
  return out;
}

std::string receive(DtmfReceiver& r, const std::vector<Sent>& packets) {
  std::string digits;
  for (const auto& s : packets) {
    if (auto d = r.onPacket(s.seq, s.ts, s.marker, s.payload)) {
      digits += d->digit;
    }
  }
  return digits;
}

TEST(DtmfReceiver, OneDigitPerEventDespiteRepeats) {
  DtmfReceiver r;
  const auto packets = sendDigits("123#");
  EXPECT_EQ(receive(r, packets), "123#");
  EXPECT_EQ(r.stats().digits, 4u);
  EXPECT_EQ(r.stats().repeats, packets.size() - 4);
  EXPECT_FALSE(r.eventActive());
}

TEST(DtmfReceiver, SameDigitTwiceIsTwoDigits) {
  DtmfReceiver r;
  EXPECT_EQ(receive(r, sendDigits("5555")), "5555");
}

TEST(DtmfReceiver, DuplicatedAndRetransmittedPackets) {
  DtmfReceiver r;
  auto packets = sendDigits("90");
  std::vector<Sent> doubled;
  for (const auto& p : packets) {
    doubled.push_back(p);
    doubled.push_back(p);
  }
  doubled.push_back(packets.front());  // a very late retransmission of the first event
  EXPECT_EQ(receive(r, doubled), "90");
}

TEST(DtmfReceiver, LostStartPacketsStillGiveTheDigit) {
  DtmfReceiver r;
  auto packets = sendDigits("468");
  // Drop every marker packet; for '6' drop everything but the last end packet.
  std::vector<Sent> lossy;
  for (size_t i = 0; i < packets.size(); ++i) {
    const bool of6 = i >= 4 && i < 8;
    if (packets[i].marker || (of6 && i != 7)) {
      continue;
    }
    lossy.push_back(packets[i]);
  }
  EXPECT_EQ(receive(r, lossy), "468");
}

TEST(DtmfReceiver, ReorderWithinAnEventAndLateOldEvents) {
  DtmfReceiver r;
  auto packets = sendDigits("12");
  // '1': the end packets overtake the start; then all of '2'; then a stray '1' update.
  std::vector<Sent> order = {packets[3], packets[1], packets[0], packets[2]};
  order.insert(order.end(), packets.begin() + 4, packets.end());
  order.push_back(packets[0]);
  EXPECT_EQ(receive(r, order), "12");

  // An entire old event delivered after a newer one is dropped, not reported out of order.
  DtmfReceiver r2;
  std::vector<Sent> swapped(packets.begin() + 4, packets.end());
  swapped.insert(swapped.end(), packets.begin(), packets.begin() + 4);
  EXPECT_EQ(receive(r2, swapped), "2");
  EXPECT_EQ(r2.stats().late, 4u);
}

TEST(DtmfReceiver, MalformedAndNonDtmfEvents) {
  DtmfReceiver r;
  EXPECT_FALSE(r.onPacket(1, 100, true, Bytes{1, 2}));
  EXPECT_EQ(r.stats().malformed, 1u);
  // Flash (16) is tracked but is no digit; its repeats are absorbed.
  EXPECT_FALSE(r.onPacket(2, 200, true, Bytes{16, 0x0A, 0x01, 0x90}));
  EXPECT_FALSE(r.onPacket(3, 200, false, Bytes{16, 0x8A, 0x03, 0x20}));
  auto d = r.onPacket(4, 1200, true, Bytes{0, 0x0A, 0x01, 0x90});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->digit, '0');
  EXPECT_EQ(d->event, 0);
  EXPECT_EQ(d->timestamp, 1200u);
  EXPECT_TRUE(r.eventActive());
}

TEST(DtmfReceiver, LongEventSegmentsAreOneDigit) {
  DtmfReceiver r;
  // A held key: first segment reaches the 0xFFFF maximum, the next continues without marker.
  EXPECT_TRUE(r.onPacket(1, 1000, true, Bytes{9, 0x0A, 0x01, 0x90}));
  EXPECT_FALSE(r.onPacket(2, 1000, false, Bytes{9, 0x0A, 0xFF, 0xFF}));
  EXPECT_FALSE(r.onPacket(3, 1000 + 0xFFFF, false, Bytes{9, 0x0A, 0x01, 0x90}));
  EXPECT_FALSE(r.onPacket(4, 1000 + 0xFFFF, false, Bytes{9, 0x8A, 0x03, 0x20}));
  // A new press of the same key afterwards is a new digit.
  auto again = r.onPacket(5, 1000 + 0xFFFF + 2000, true, Bytes{9, 0x0A, 0x01, 0x90});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->digit, '9');
  EXPECT_EQ(r.stats().digits, 2u);
}

TEST(DtmfReceiver, RestartedStreamIsNotLate) {
  DtmfReceiver r;
  EXPECT_TRUE(r.onPacket(1, 5'000'000, true, Bytes{1, 0x8A, 0x03, 0x20}));
  // The timestamp jumps far back (a new sender behind a B2BUA): a new digit, not a late one.
  auto d = r.onPacket(2, 1000, true, Bytes{2, 0x0A, 0x01, 0x90});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->digit, '2');
}

}  // namespace
}  // namespace evosip::rtp
