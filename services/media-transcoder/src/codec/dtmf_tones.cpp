// In-band DTMF over spandsp (see dtmf_tones.hpp).
#include "medius/media/codec/dtmf_tones.hpp"

#include <spandsp.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "medius/media/codec/resampler.hpp"

namespace medius::media::codec {

namespace {
constexpr std::size_t kMax8k = 960;  // 120 ms at 8 kHz

void checkRate(std::uint32_t rate) {
  if (rate != 8000 && rate != 16000 && rate != 24000 && rate != 48000) {
    throw std::invalid_argument("dtmf: sample rate must be 8000/16000/24000/48000, got " +
                                std::to_string(rate));
  }
}

// Frame size at 8 kHz, or 0 when the frame is not a whole number of 8 kHz samples or too long.
std::size_t samples8k(std::size_t samples, std::uint32_t rate) noexcept {
  std::size_t factor = rate / 8000;
  if (samples == 0 || samples % factor != 0 || samples / factor > kMax8k) return 0;
  return samples / factor;
}
}  // namespace

bool isDtmfDigit(char c) noexcept {
  return (c >= '0' && c <= '9') || c == '*' || c == '#' || (c >= 'A' && c <= 'D') ||
         (c >= 'a' && c <= 'd');
}

DtmfGenerator::DtmfGenerator(std::uint32_t sampleRate, int levelDbm0)
    : sampleRate_(sampleRate), level_(levelDbm0) {
  checkRate(sampleRate);
  tx_ = dtmf_tx_init(nullptr);
  if (tx_ == nullptr) throw std::runtime_error("dtmf_tx_init failed");
  dtmf_tx_set_level(tx_, level_, 0);
  if (sampleRate != 8000) up_ = std::make_unique<Resampler>(8000, sampleRate);
}

DtmfGenerator::~DtmfGenerator() { dtmf_tx_free(tx_); }

bool DtmfGenerator::start(char digit, unsigned durationMs) noexcept {
  if (!isDtmfDigit(digit) || durationMs == 0 || durationMs > 10000) return false;
  char upper = (digit >= 'a' && digit <= 'd') ? static_cast<char>(digit - 'a' + 'A') : digit;
  // Re-initialising in place drops a digit still queued (no allocation with a state given).
  dtmf_tx_init(tx_);
  dtmf_tx_set_level(tx_, level_, 0);
  dtmf_tx_set_timing(tx_, static_cast<int>(durationMs), 0);
  const char digits[2] = {upper, '\0'};
  dtmf_tx_put(tx_, digits, 1);
  remaining8k_ = std::size_t{durationMs} * 8;
  return true;
}

std::size_t DtmfGenerator::generate(std::span<std::int16_t> pcm) noexcept {
  std::size_t n8k = samples8k(pcm.size(), sampleRate_);
  if (n8k == 0) {
    std::fill(pcm.begin(), pcm.end(), std::int16_t{0});
    return 0;
  }
  std::span<std::int16_t> frame8k =
      up_ ? std::span<std::int16_t>(buf8k_.data(), n8k) : pcm.first(n8k);
  std::size_t tone = 0;
  if (remaining8k_ > 0) {
    int got = dtmf_tx(tx_, frame8k.data(), static_cast<int>(std::min(n8k, remaining8k_)));
    tone = static_cast<std::size_t>(std::max(got, 0));
    remaining8k_ = tone < remaining8k_ ? remaining8k_ - tone : 0;
    if (tone == 0) remaining8k_ = 0;
  }
  std::fill(frame8k.begin() + static_cast<std::ptrdiff_t>(tone), frame8k.end(), std::int16_t{0});
  if (up_) {
    std::size_t written = up_->process(frame8k, pcm);
    std::fill(pcm.begin() + static_cast<std::ptrdiff_t>(written), pcm.end(), std::int16_t{0});
  }
  return tone * (sampleRate_ / 8000);
}

DtmfDetector::DtmfDetector(std::uint32_t sampleRate) : sampleRate_(sampleRate) {
  checkRate(sampleRate);
  rx_ = dtmf_rx_init(nullptr, nullptr, nullptr);
  if (rx_ == nullptr) throw std::runtime_error("dtmf_rx_init failed");
  // The realtime callback reports each digit's start (code = digit) and end (code = 0).
  dtmf_rx_set_realtime_callback(rx_, &DtmfDetector::onTone, this);
  if (sampleRate != 8000) down_ = std::make_unique<Resampler>(sampleRate, 8000);
}

DtmfDetector::~DtmfDetector() { dtmf_rx_free(rx_); }

void DtmfDetector::reset() noexcept {
  // Re-initialising in place (a state given) allocates nothing and clears the callback.
  dtmf_rx_init(rx_, nullptr, nullptr);
  dtmf_rx_set_realtime_callback(rx_, &DtmfDetector::onTone, this);
  if (down_) down_->reset();
  current_ = 0;
}

void DtmfDetector::onTone(void* self, int code, int /*level*/, int /*delay*/) noexcept {
  auto* d = static_cast<DtmfDetector*>(self);
  DtmfEvent event{};
  if (code != 0) {
    event = {static_cast<char>(code), DtmfEdge::Start, d->position_};
    d->current_ = static_cast<char>(code);
  } else {
    if (d->current_ == 0) return;
    event = {d->current_, DtmfEdge::End, d->position_};
    d->current_ = 0;
  }
  if (d->pendingCount_ < d->pending_.size()) {
    d->pending_[d->pendingCount_++] = event;
  } else {
    ++d->dropped_;
  }
}

std::size_t DtmfDetector::process(std::span<const std::int16_t> pcm,
                                  std::span<DtmfEvent> events) noexcept {
  std::size_t n8k = samples8k(pcm.size(), sampleRate_);
  if (n8k == 0) return 0;
  pendingCount_ = 0;
  if (down_) {
    std::size_t got = down_->process(pcm, std::span<std::int16_t>(buf8k_.data(), buf8k_.size()));
    dtmf_rx(rx_, buf8k_.data(), static_cast<int>(got));
  } else {
    dtmf_rx(rx_, pcm.data(), static_cast<int>(pcm.size()));
  }
  position_ += pcm.size();
  std::size_t n = std::min(pendingCount_, events.size());
  std::copy_n(pending_.begin(), n, events.begin());
  dropped_ += pendingCount_ - n;
  return n;
}

}  // namespace medius::media::codec
