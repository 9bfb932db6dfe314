// G.711 encode/decode of one 20 ms frame (160 samples) and RTP packetizing of that frame:
// the per-packet work of the app role when it plays a prompt.
#include <array>
#include <cstdint>

#include <benchmark/benchmark.h>

#include <evosip/audio/g711.hpp>
#include <evosip/audio/tone.hpp>
#include <evosip/rtp/packet.hpp>
#include <evosip/rtp/packetizer.hpp>

namespace {

using namespace evosip;

std::array<int16_t, 160> speechLikeFrame() {
  std::array<int16_t, 160> pcm{};
  audio::SineGenerator(440, 9000, 8000).fill(pcm);
  std::array<int16_t, 160> high{};
  audio::SineGenerator(2300, 3000, 8000).fill(high);
  for (size_t i = 0; i < pcm.size(); ++i) {
    pcm[i] = static_cast<int16_t>(pcm[i] + high[i]);
  }
  return pcm;
}

template <audio::G711Law Law>
void BM_G711Encode(benchmark::State& state) {
  const auto pcm = speechLikeFrame();
  std::array<uint8_t, 160> out{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(pcm.data());
    audio::encodeG711(Law, pcm, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * 160);
}
BENCHMARK(BM_G711Encode<audio::G711Law::kUlaw>)->Name("G711EncodeUlaw/160");
BENCHMARK(BM_G711Encode<audio::G711Law::kAlaw>)->Name("G711EncodeAlaw/160");

template <audio::G711Law Law>
void BM_G711Decode(benchmark::State& state) {
  const auto pcm = speechLikeFrame();
  std::array<uint8_t, 160> coded{};
  audio::encodeG711(Law, pcm, coded);
  std::array<int16_t, 160> out{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(coded.data());
    audio::decodeG711(Law, coded, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * 160);
}
BENCHMARK(BM_G711Decode<audio::G711Law::kUlaw>)->Name("G711DecodeUlaw/160");
BENCHMARK(BM_G711Decode<audio::G711Law::kAlaw>)->Name("G711DecodeAlaw/160");

// Header + copy of an already encoded frame into the send buffer.
void BM_RtpPacketize(benchmark::State& state) {
  rtp::Packetizer packetizer({}, rtp::StreamStart{0x12345678, 1, 0});
  std::array<uint8_t, 160> payload{};
  payload.fill(0xFF);
  std::array<uint8_t, 256> buf{};
  for (auto _ : state) {
    auto n = packetizer.packetize(payload, buf);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RtpPacketize);

// What the app does per packet: encode the frame straight into the packet, then the header.
void BM_EncodeAndPacketizeUlaw(benchmark::State& state) {
  const auto pcm = speechLikeFrame();
  rtp::Packetizer packetizer({}, rtp::StreamStart{0x12345678, 1, 0});
  std::array<uint8_t, 256> buf{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(pcm.data());
    audio::encodeUlaw(pcm, std::span(buf).subspan(rtp::kRtpHeaderSize, 160));
    rtp::writeRtpHeader(packetizer.next(), buf);
    benchmark::DoNotOptimize(buf.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeAndPacketizeUlaw);

void BM_RtpParse(benchmark::State& state) {
  rtp::Packetizer packetizer({}, rtp::StreamStart{0x12345678, 1, 0});
  std::array<uint8_t, 160> payload{};
  std::array<uint8_t, 256> buf{};
  const size_t n = *packetizer.packetize(payload, buf);
  for (auto _ : state) {
    auto p = rtp::parseRtp(std::span<const uint8_t>(buf.data(), n));
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RtpParse);

}  // namespace
