// Silence suppression toward a CN peer (see silence_suppressor.hpp).
#include "medius/media/codec/silence_suppressor.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "medius/media/codec/comfort_noise.hpp"

namespace medius::media::codec {

namespace {

// Weight of a new quiet frame in the background power: about four frames of memory, so the
// level sent at the start of a silence reflects the hangover's frames, not an old silence.
constexpr double kBackgroundWeight = 0.25;
// -dBov of one LSB RMS in 16-bit PCM: 20 log10(1 / 32767) = -90.3 dBov.
constexpr int kInaudibleLevel = 90;

double meanPower(std::span<const std::int16_t> pcm) noexcept {
  if (pcm.empty()) return 0;
  double energy = 0;
  for (std::int16_t s : pcm) energy += static_cast<double>(s) * s;
  return energy / static_cast<double>(pcm.size());
}

// -dBov of a mean power (RFC 3389 3.1: 0 dBov is a full-scale square wave), 0..127.
std::uint8_t levelOf(double power) noexcept {
  if (power <= 0) return kComfortNoiseMinLevel;
  const double dbov = 10.0 * std::log10(power / (32767.0 * 32767.0));
  return static_cast<std::uint8_t>(std::clamp(std::round(-dbov), 0.0, 127.0));
}

unsigned framesFor(unsigned ms, std::uint32_t sampleRate, std::size_t frameSamples) {
  // Rounded up: a 200 ms hangover at 30 ms packets is 7 frames.
  const std::uint64_t samples = std::uint64_t{ms} * sampleRate / 1000;
  return static_cast<unsigned>((samples + frameSamples - 1) / frameSamples);
}

}  // namespace

SilenceSuppressor::SilenceSuppressor(std::uint32_t sampleRate, std::size_t frameSamples,
                                     const SilenceSuppressorParams& params)
    : params_(params) {
  if (sampleRate == 0 || frameSamples == 0) throw std::invalid_argument("SilenceSuppressor: empty frames");
  hangoverFrames_ = framesFor(params.hangoverMs, sampleRate, frameSamples);
  refreshFrames_ = std::max(1u, framesFor(params.refreshMs, sampleRate, frameSamples));
  minUpdateFrames_ = std::max(1u, framesFor(params.minUpdateMs, sampleRate, frameSamples));
}

std::uint8_t SilenceSuppressor::backgroundLevel() const noexcept {
  if (known_) return knownLevel_;
  return background_ < 0 ? kComfortNoiseMinLevel : levelOf(background_);
}

void SilenceSuppressor::sourceSilent(std::uint8_t levelDbov) noexcept {
  known_ = true;
  knownLevel_ = std::min(levelDbov, kComfortNoiseMinLevel);
}

void SilenceSuppressor::reset() noexcept {
  silent_ = false;
  quietFrames_ = 0;
  sinceSent_ = 0;
  background_ = -1;
  known_ = false;
}

SilenceDecision SilenceSuppressor::next(std::span<const std::int16_t> frame) noexcept {
  const double power = meanPower(frame);
  const std::uint8_t level = levelOf(power);
  // Levels count down: a larger number is a quieter frame.
  const bool quiet = level >= params_.thresholdDbov || (known_ && level + 3 >= knownLevel_);
  if (!quiet) {
    silent_ = false;
    quietFrames_ = 0;
    return {};
  }
  if (!known_) background_ = background_ < 0 ? power : background_ + kBackgroundWeight * (power - background_);
  if (!silent_) {
    ++quietFrames_;
    if (!known_ && quietFrames_ <= hangoverFrames_) return {};
    silent_ = true;
    sinceSent_ = 0;
    sentLevel_ = backgroundLevel();
    return {SilenceAction::ComfortNoise, sentLevel_};
  }
  ++sinceSent_;
  const std::uint8_t now = backgroundLevel();
  // Below -90 dBov (under one LSB of 16-bit PCM) every level sounds the same: no update.
  const int a = std::min<int>(now, kInaudibleLevel);
  const int b = std::min<int>(sentLevel_, kInaudibleLevel);
  const bool moved = (a > b ? a - b : b - a) >= params_.levelStepDb && sinceSent_ >= minUpdateFrames_;
  if (moved || sinceSent_ >= refreshFrames_) {
    sinceSent_ = 0;
    sentLevel_ = now;
    return {SilenceAction::ComfortNoise, sentLevel_};
  }
  return {SilenceAction::Nothing, sentLevel_};
}

}  // namespace medius::media::codec
