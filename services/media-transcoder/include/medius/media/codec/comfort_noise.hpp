// RFC 3389 comfort noise (CN, static payload type 13, 8000 Hz clock): parsing and writing
// payloads, measuring a silent frame's level, and generating noise at a level.
//
// A CN payload is one noise-level byte (0..127, meaning -N dBov; RFC 3389 section 3.1)
// optionally followed by reflection coefficients (section 3.2), which we ignore when parsing
// and do not write: receivers that get no coefficients produce white noise (section 4),
// which is also what our generator produces.
//
// dBov (RFC 3389 section 3.1): 0 dBov is a full-scale square wave (RMS 32767 in 16-bit
// PCM); a full-scale sine is -3 dBov. Thread: a generator has one owner; the functions are
// pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

struct noise_state_s;  // spandsp

namespace medius::media::codec {

inline constexpr std::uint8_t kComfortNoisePayloadType = 13;  // RFC 3551 table 4
// Level written for digital silence (all zeros): the quietest level RFC 3389 can carry.
inline constexpr std::uint8_t kComfortNoiseMinLevel = 127;

enum class CnStatus : std::uint8_t { Ok, Empty, ReservedBitSet };

struct CnPayload {
  CnStatus status = CnStatus::Ok;
  std::uint8_t levelDbov = kComfortNoiseMinLevel;  // noise level is -levelDbov dBov
  std::size_t spectralCoefficients = 0;            // count of ignored reflection coefficients
};

// Parses a CN payload. Empty payload -> Empty. The level byte's most significant bit must be
// zero (RFC 3389 3.1); when it is set the status is ReservedBitSet and the level is still
// the low 7 bits (be liberal in what we accept).
CnPayload parseComfortNoise(std::span<const std::uint8_t> payload) noexcept;

// Level of a PCM frame in -dBov, clamped to 0..127 (127 for digital silence).
std::uint8_t measureLevelDbov(std::span<const std::int16_t> pcm) noexcept;

// Writes a 1-byte CN payload (no spectral information) for `levelDbov`; returns 1, or 0 when
// out is empty.
std::size_t writeComfortNoise(std::uint8_t levelDbov, std::span<std::uint8_t> out) noexcept;
// measureLevelDbov + writeComfortNoise: the CN payload describing a silent frame.
inline std::size_t comfortNoiseFor(std::span<const std::int16_t> pcm,
                                   std::span<std::uint8_t> out) noexcept {
  return writeComfortNoise(measureLevelDbov(pcm), out);
}

// White Gaussian noise at an RFC 3389 level, from spandsp's AWGN generator (sum of uniform
// random numbers, exact RMS): a Gaussian amplitude sounds like a hiss rather than the
// harsher uniform white noise an LCG gives, and it is already in our dependency set.
class ComfortNoiseGenerator {
 public:
  // Throws std::runtime_error if spandsp cannot allocate its state.
  explicit ComfortNoiseGenerator(std::uint8_t levelDbov = 70, std::int32_t seed = 1234567);
  ~ComfortNoiseGenerator();
  ComfortNoiseGenerator(const ComfortNoiseGenerator&) = delete;
  ComfortNoiseGenerator& operator=(const ComfortNoiseGenerator&) = delete;

  // Changes the level (on a new CN packet); allocation free. Levels above 127 clamp to 127.
  void setLevel(std::uint8_t levelDbov) noexcept;
  std::uint8_t level() const noexcept { return level_; }
  // Fills pcm with noise (level 127 gives silence).
  void generate(std::span<std::int16_t> pcm) noexcept;

 private:
  ::noise_state_s* state_ = nullptr;
  std::uint8_t level_;
  std::int32_t seed_;
};

}  // namespace medius::media::codec
