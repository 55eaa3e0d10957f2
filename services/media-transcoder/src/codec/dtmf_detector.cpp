// In-band DTMF detection with look-ahead suppression (see dtmf_detector.hpp).
#include "medius/media/codec/dtmf_detector.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace medius::media::codec {

namespace {
constexpr std::uint64_t kForever = std::numeric_limits<std::uint64_t>::max();
constexpr unsigned kMaxLookaheadMs = 200;
}  // namespace

InbandDtmfDetector::InbandDtmfDetector(std::uint32_t sampleRate, unsigned lookaheadMs, bool suppress)
    : sampleRate_(sampleRate),
      lookaheadMs_(lookaheadMs),
      suppress_(suppress),
      detector_(sampleRate),
      chunk_(sampleRate / 200),
      delaySamples_(std::size_t{sampleRate} / 1000 * lookaheadMs),
      startDelay_(std::size_t{sampleRate} / 1000 * kStartDelayMs),
      endDelay_(std::size_t{sampleRate} / 1000 * kEndDelayMs) {
  if (lookaheadMs > kMaxLookaheadMs) throw std::invalid_argument("dtmf look-ahead above 200 ms");
  delay_.assign(delaySamples_, 0);
}

std::uint64_t InbandDtmfDetector::outputPosition() const noexcept {
  return position_ > delaySamples_ ? position_ - delaySamples_ : 0;
}

void InbandDtmfDetector::push(const DtmfEvent& edge) noexcept {
  if (pendingCount_ < pending_.size()) {
    pending_[pendingCount_++] = edge;
  } else {
    ++dropped_;
  }
}

void InbandDtmfDetector::process(std::span<std::int16_t> pcm) noexcept {
  const std::size_t factor = sampleRate_ / 8000;
  const bool detectable = !pcm.empty() && pcm.size() % factor == 0;
  std::array<DtmfEvent, DtmfDetector::kMaxEventsPerFrame> events{};
  for (std::size_t at = 0; at < pcm.size();) {
    const std::size_t n = std::min(chunk_, pcm.size() - at);
    std::span<std::int16_t> chunk = pcm.subspan(at, n);
    const std::uint64_t chunkStart = position_;
    const std::size_t count = detectable ? detector_.process(chunk, events) : 0;
    for (std::size_t i = 0; i < count; ++i) {
      // Edges are reported some time after they happen (kStartDelayMs, kEndDelayMs); the
      // chunk start bounds the report from below.
      const std::size_t late = events[i].edge == DtmfEdge::Start ? startDelay_ : endDelay_;
      const std::uint64_t when = chunkStart > late ? chunkStart - late : 0;
      if (events[i].edge == DtmfEdge::Start) {
        // Silence from 10 ms before the estimated start (what is already out is out), to
        // the end report; a digit that follows closely extends the muting of the last.
        const std::uint64_t from = when > 2 * chunk_ ? when - 2 * chunk_ : 0;
        if (muteTo_ <= outputPosition() || muteTo_ <= from) muteFrom_ = from;
        muteTo_ = kForever;
        digit_ = events[i].digit;
        push({events[i].digit, DtmfEdge::Start, when});
      } else {
        muteTo_ = chunkStart + n;
        digit_ = 0;
        push({events[i].digit, DtmfEdge::End, when});
      }
    }
    for (std::size_t j = 0; j < n; ++j, ++position_) {
      std::int16_t sample = chunk[j];
      if (delaySamples_ > 0) {
        std::int16_t& slot = delay_[position_ % delaySamples_];
        std::swap(sample, slot);  // out: the input delaySamples_ ago; in: this one
      }
      const std::uint64_t out = outputPosition();
      const bool primed = position_ >= delaySamples_;
      if (!primed || (suppress_ && out >= muteFrom_ && out < muteTo_)) sample = 0;
      chunk[j] = sample;
    }
    at += n;
  }
}

std::size_t InbandDtmfDetector::take(std::span<DtmfEvent> edges) noexcept {
  const std::size_t n = std::min(pendingCount_, edges.size());
  std::copy_n(pending_.begin(), n, edges.begin());
  dropped_ += pendingCount_ - n;
  pendingCount_ = 0;
  return n;
}

void InbandDtmfDetector::reset() noexcept {
  detector_.reset();
  std::fill(delay_.begin(), delay_.end(), std::int16_t{0});
  digit_ = 0;
  muteFrom_ = 0;
  muteTo_ = 0;
  pendingCount_ = 0;
}

}  // namespace medius::media::codec
