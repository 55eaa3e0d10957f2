// speexdsp resampler wrapper (see resampler.hpp).
#include "medius/media/codec/resampler.hpp"

#include <speex/speex_resampler.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace medius::media::codec {

namespace {
bool validRate(std::uint32_t rate) noexcept {
  return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}
}  // namespace

Resampler::Resampler(std::uint32_t inRate, std::uint32_t outRate, int quality)
    : inRate_(inRate), outRate_(outRate) {
  if (!validRate(inRate) || !validRate(outRate)) {
    throw std::invalid_argument("resampler: rates must be 8000/12000/16000/24000/48000, got " +
                                std::to_string(inRate) + "->" + std::to_string(outRate));
  }
  if (quality < SPEEX_RESAMPLER_QUALITY_MIN || quality > SPEEX_RESAMPLER_QUALITY_MAX) {
    throw std::invalid_argument("resampler: quality must be 0..10");
  }
  if (inRate == outRate) return;
  int err = RESAMPLER_ERR_SUCCESS;
  state_ = speex_resampler_init(1, inRate, outRate, quality, &err);
  if (state_ == nullptr || err != RESAMPLER_ERR_SUCCESS) {
    throw std::runtime_error(std::string("speex_resampler_init: ") + speex_resampler_strerror(err));
  }
}

Resampler::~Resampler() {
  if (state_ != nullptr) speex_resampler_destroy(state_);
}

int Resampler::latencySamples() const noexcept {
  return state_ == nullptr ? 0 : speex_resampler_get_input_latency(state_);
}

void Resampler::reset() noexcept {
  if (state_ != nullptr) speex_resampler_reset_mem(state_);
}

std::size_t Resampler::process(std::span<const std::int16_t> in,
                               std::span<std::int16_t> out) noexcept {
  if (state_ == nullptr) {
    std::size_t n = std::min(in.size(), out.size());
    std::copy_n(in.begin(), n, out.begin());
    return n;
  }
  // speexdsp consumes input until either side is exhausted; it keeps the fractional phase
  // and filter memory, so successive calls continue one signal (frame-exact for whole ms).
  std::size_t written = 0;
  while (!in.empty() && written < out.size()) {
    auto inLen = static_cast<spx_uint32_t>(in.size());
    auto outLen = static_cast<spx_uint32_t>(out.size() - written);
    speex_resampler_process_int(state_, 0, in.data(), &inLen, out.data() + written, &outLen);
    if (inLen == 0 && outLen == 0) break;
    in = in.subspan(inLen);
    written += outLen;
  }
  return written;
}

}  // namespace medius::media::codec
