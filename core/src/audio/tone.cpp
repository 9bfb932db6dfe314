#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include <evosip/audio/tone.hpp>

namespace evosip::audio {

SineGenerator::SineGenerator(double frequencyHz, double amplitude, uint32_t sampleRate)
    : step_(sampleRate == 0 ? 0 : frequencyHz / sampleRate), amplitude_(amplitude) {}

int16_t SineGenerator::next() {
  const double v = amplitude_ * std::sin(2 * std::numbers::pi * phase_);
  phase_ += step_;
  phase_ -= std::floor(phase_);
  return static_cast<int16_t>(std::clamp(std::lround(v), -32768L, 32767L));
}

void SineGenerator::fill(std::span<int16_t> out) {
  for (auto& s : out) {
    s = next();
  }
}

double energy(std::span<const int16_t> samples) {
  double sum = 0;
  for (int16_t s : samples) {
    sum += static_cast<double>(s) * s;
  }
  return sum;
}

double rms(std::span<const int16_t> samples) {
  return samples.empty() ? 0.0 : std::sqrt(energy(samples) / samples.size());
}

double rmsDbfs(std::span<const int16_t> samples) {
  const double r = rms(samples);
  if (r == 0) {
    return -std::numeric_limits<double>::infinity();
  }
  return 20 * std::log10(r / (32767.0 / std::numbers::sqrt2));
}

double goertzelPower(std::span<const int16_t> samples, double frequencyHz, uint32_t sampleRate) {
  if (sampleRate == 0) {
    return 0;
  }
  const double w = 2 * std::numbers::pi * frequencyHz / sampleRate;
  const double coeff = 2 * std::cos(w);
  double s1 = 0;
  double s2 = 0;
  for (int16_t x : samples) {
    const double s0 = x + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  // |X(w)|^2 for a non-integer bin as well.
  return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}

double toneRatio(std::span<const int16_t> samples, double frequencyHz, uint32_t sampleRate) {
  const double e = energy(samples);
  if (e == 0 || samples.empty()) {
    return 0;
  }
  const double ratio = 2 * goertzelPower(samples, frequencyHz, sampleRate) / (samples.size() * e);
  return std::clamp(ratio, 0.0, 1.0);
}

}  // namespace evosip::audio
