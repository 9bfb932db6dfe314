#pragma once
// Tone tools for tests, benchmarks and simple detectors: a phase-continuous sine generator,
// a Goertzel detector for the relative power of one frequency in a block, RMS and energy.

#include <cstddef>
#include <cstdint>
#include <span>

namespace evosip::audio {

class SineGenerator {
 public:
  // amplitude in sample units (0..32767); values beyond the 16-bit range are clipped.
  SineGenerator(double frequencyHz, double amplitude, uint32_t sampleRate);

  int16_t next();
  // Fills `out` and continues the phase on the next call.
  void fill(std::span<int16_t> out);

 private:
  double phase_ = 0;  // in cycles, [0, 1)
  double step_;       // cycles per sample
  double amplitude_;
};

// Sum of squares of the samples.
double energy(std::span<const int16_t> samples);
// Root mean square in sample units (0 for an empty block).
double rms(std::span<const int16_t> samples);
// RMS relative to a full-scale sine, in dBFS (-inf for silence).
double rmsDbfs(std::span<const int16_t> samples);

// Squared magnitude of the block's DFT at `frequencyHz` (Goertzel).
double goertzelPower(std::span<const int16_t> samples, double frequencyHz, uint32_t sampleRate);

// The share of the block's energy at `frequencyHz`, in [0, 1]: about 1 for a pure tone at
// that frequency, about 0 for a tone far from it (the block should hold a few dozen periods).
double toneRatio(std::span<const int16_t> samples, double frequencyHz, uint32_t sampleRate);

}  // namespace evosip::audio
