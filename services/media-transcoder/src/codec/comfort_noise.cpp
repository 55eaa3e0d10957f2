// RFC 3389 comfort noise (see comfort_noise.hpp).
#include "medius/media/codec/comfort_noise.hpp"

#include <spandsp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace medius::media::codec {

namespace {
// spandsp's noise quality: how many uniform numbers are summed per Gaussian sample (its
// documented range is 4..20; 7 is its own test value and close enough to Gaussian).
constexpr int kNoiseQuality = 7;
}  // namespace

CnPayload parseComfortNoise(std::span<const std::uint8_t> payload) noexcept {
  CnPayload result;
  if (payload.empty()) {
    result.status = CnStatus::Empty;
    return result;
  }
  result.levelDbov = payload[0] & 0x7f;
  result.status = (payload[0] & 0x80) != 0 ? CnStatus::ReservedBitSet : CnStatus::Ok;
  result.spectralCoefficients = payload.size() - 1;  // RFC 3389 3.2: one byte each
  return result;
}

std::uint8_t measureLevelDbov(std::span<const std::int16_t> pcm) noexcept {
  if (pcm.empty()) return kComfortNoiseMinLevel;
  double energy = 0;
  for (std::int16_t s : pcm) energy += static_cast<double>(s) * s;
  double meanPower = energy / static_cast<double>(pcm.size());
  if (meanPower <= 0) return kComfortNoiseMinLevel;
  // 0 dBov = full-scale square wave, power 32767^2 (RFC 3389 3.1).
  double dbov = 10.0 * std::log10(meanPower / (32767.0 * 32767.0));
  double level = std::clamp(std::round(-dbov), 0.0, 127.0);
  return static_cast<std::uint8_t>(level);
}

std::size_t writeComfortNoise(std::uint8_t levelDbov, std::span<std::uint8_t> out) noexcept {
  if (out.empty()) return 0;
  out[0] = std::min<std::uint8_t>(levelDbov, kComfortNoiseMinLevel);
  return 1;
}

ComfortNoiseGenerator::ComfortNoiseGenerator(std::uint8_t levelDbov, std::int32_t seed)
    : level_(std::min<std::uint8_t>(levelDbov, kComfortNoiseMinLevel)), seed_(seed) {
  state_ =
      noise_init_dbov(nullptr, seed_, -static_cast<float>(level_), NOISE_CLASS_AWGN, kNoiseQuality);
  if (state_ == nullptr) throw std::runtime_error("noise_init_dbov failed");
}

ComfortNoiseGenerator::~ComfortNoiseGenerator() { noise_free(state_); }

void ComfortNoiseGenerator::setLevel(std::uint8_t levelDbov) noexcept {
  levelDbov = std::min<std::uint8_t>(levelDbov, kComfortNoiseMinLevel);
  if (levelDbov == level_) return;
  level_ = levelDbov;
  // Re-initialising in place (state_ given) does not allocate. A new seed each time keeps
  // the noise from repeating its first samples at every CN update.
  ++seed_;
  noise_init_dbov(state_, seed_, -static_cast<float>(level_), NOISE_CLASS_AWGN, kNoiseQuality);
}

void ComfortNoiseGenerator::generate(std::span<std::int16_t> pcm) noexcept {
  if (level_ >= kComfortNoiseMinLevel) {
    std::fill(pcm.begin(), pcm.end(), std::int16_t{0});
    return;
  }
  for (auto& s : pcm) s = noise(state_);
}

}  // namespace medius::media::codec
