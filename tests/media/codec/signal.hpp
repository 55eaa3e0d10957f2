// Test signals and measurements for the codec tests: sines, Goertzel, tone-to-residual SNR.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <vector>

namespace medius::media::codec::test {

// Amplitude of a sine at -10 dBFS (0 dBFS = full-scale sine).
inline constexpr double kMinus10Dbfs = 32767.0 * 0.31622776601683794;

// A sine continuing across calls (phase kept), for frame-by-frame feeding.
class SineSource {
 public:
  SineSource(double freq, std::uint32_t rate, double amplitude = kMinus10Dbfs)
      : step_(2 * std::numbers::pi * freq / rate), amplitude_(amplitude) {}
  void fill(std::span<std::int16_t> out) {
    for (auto& s : out) {
      s = static_cast<std::int16_t>(std::lround(amplitude_ * std::sin(phase_)));
      phase_ += step_;
    }
  }
  std::vector<std::int16_t> take(std::size_t n) {
    std::vector<std::int16_t> v(n);
    fill(v);
    return v;
  }

 private:
  double step_;
  double amplitude_;
  double phase_ = 0;
};

// Power of `freq` in x (Goertzel), normalised so a sine of amplitude A gives A^2/2 when the
// window holds a whole number of periods.
inline double tonePower(std::span<const std::int16_t> x, double freq, std::uint32_t rate) {
  double w = 2 * std::numbers::pi * freq / rate;
  // Rotating phasor (cos, sin of w*n) instead of two trig calls per sample.
  double cw = std::cos(w), sw = std::sin(w);
  double pc = 1, ps = 0, re = 0, im = 0;
  for (std::size_t n = 0; n < x.size(); ++n) {
    re += x[n] * pc;
    im += x[n] * ps;
    double nc = pc * cw - ps * sw;
    ps = pc * sw + ps * cw;
    pc = nc;
  }
  double a = 2 * re / static_cast<double>(x.size());
  double b = 2 * im / static_cast<double>(x.size());
  return (a * a + b * b) / 2;
}

inline double meanPower(std::span<const std::int16_t> x) {
  double e = 0;
  for (auto v : x) e += static_cast<double>(v) * v;
  return x.empty() ? 0 : e / static_cast<double>(x.size());
}

inline double rms(std::span<const std::int16_t> x) { return std::sqrt(meanPower(x)); }

// Tone power over everything else (noise + distortion) in dB: independent of codec delay.
inline double toneSnrDb(std::span<const std::int16_t> x, double freq, std::uint32_t rate) {
  double tone = tonePower(x, freq, rate);
  double residual = meanPower(x) - tone;
  if (residual <= 1e-9) residual = 1e-9;
  return 10 * std::log10(tone / residual);
}

// The strongest frequency among 10 Hz steps from 50 Hz up to below Nyquist.
inline double dominantFrequency(std::span<const std::int16_t> x, std::uint32_t rate,
                                double maxFreq = 0) {
  double best = 0, bestPower = -1;
  double top = maxFreq > 0 ? maxFreq : rate / 2.0 - 50;
  for (double f = 50; f <= top; f += 10) {
    double p = tonePower(x, f, rate);
    if (p > bestPower) {
      bestPower = p;
      best = f;
    }
  }
  return best;
}

inline double toDb(double powerRatio) { return 10 * std::log10(powerRatio); }

}  // namespace medius::media::codec::test
