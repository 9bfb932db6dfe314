// libFuzzer target: the WAV reader and the prompt loader on arbitrary bytes.
#include <cstdint>
#include <span>

#include <evosip/audio/wav.hpp>

#include "fuzz_check.hpp"

using namespace evosip::audio;
using evosip::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  // A small limit so that the loader's work stays bounded per input.
  const WavLimits limits{64 * 1024};
  if (auto wav = parseWav(bytes, limits)) {
    const auto& f = wav->format;
    check(f.channels > 0 && f.sampleRate > 0 && f.blockAlign > 0);
    check(wav->data.empty() ||
          (wav->data.data() >= data && wav->data.data() + wav->data.size() <= data + size));
    check(wav->data.size() % f.blockAlign == 0 && wav->data.size() <= limits.maxDataBytes);
    const auto samples = decodeWavSamples(*wav);
    check(samples.size() == wav->frames() * f.channels);
  }
  if (auto prompt = loadPrompt(bytes, limits)) {
    check(prompt->size() <= limits.maxDataBytes);
  }
  return 0;
}
