// Mono 16-bit PCM sample-rate conversion between 8, 12, 16, 24 and 48 kHz (speexdsp).
//
// Streaming: the filter state is kept between calls, so consecutive frames resample as one
// continuous signal (no clicks at frame edges). Frame-exact: for frames that are a whole
// number of milliseconds, each call writes exactly in.size() * outRate / inRate samples
// (the filter delay, latencySamples(), shows up in the signal, not in the counts).
//
// Ownership: owns its SpeexResamplerState (allocated in the constructor). Thread: one owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

struct SpeexResamplerState_;

namespace medius::media::codec {

class Resampler {
 public:
  // speexdsp quality 0..10. Default 3 (SPEEX_RESAMPLER_QUALITY_VOIP). Measured per 20 ms
  // frame on the 2-core EPYC VM (bench/media_codec_bench.cpp): 8->16 kHz 2.5 us, 8<->48 kHz
  // 7.5 us; quality 5 costs 1.5-2x that, and quality 1 is no cheaper for 8->48 kHz
  // (speexdsp switches to its interpolated filter). At 3 an 8->48->8 kHz round trip keeps a
  // 1 kHz tone above 40 dB SNR (resampler_test.cpp), beyond what G.711 itself delivers.
  static constexpr int kDefaultQuality = 3;

  // Throws std::invalid_argument for a rate outside 8000/12000/16000/24000/48000 or a
  // quality outside 0..10; std::runtime_error when speexdsp fails. Equal rates = copy.
  Resampler(std::uint32_t inRate, std::uint32_t outRate, int quality = kDefaultQuality);
  ~Resampler();
  Resampler(const Resampler&) = delete;
  Resampler& operator=(const Resampler&) = delete;

  std::uint32_t inRate() const noexcept { return inRate_; }
  std::uint32_t outRate() const noexcept { return outRate_; }
  // Output size a call with `inSamples` needs (rounded up, plus one for a fractional phase).
  std::size_t maxOutput(std::size_t inSamples) const noexcept {
    return inSamples * outRate_ / inRate_ + 1;
  }
  // Filter delay in input samples (0 when rates are equal).
  int latencySamples() const noexcept;

  // Resamples all of `in` into `out`; returns the samples written. Writes at most out.size()
  // samples (give it maxOutput(in.size())); input left over when out is too small is dropped.
  std::size_t process(std::span<const std::int16_t> in, std::span<std::int16_t> out) noexcept;
  // Clears the filter history (e.g. after a long DTX gap or a re-INVITE).
  void reset() noexcept;

 private:
  std::uint32_t inRate_;
  std::uint32_t outRate_;
  ::SpeexResamplerState_* state_ = nullptr;
};

}  // namespace medius::media::codec
