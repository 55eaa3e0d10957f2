// In-band DTMF detection on a decoded stream, with the tones taken out of the audio: what a
// transcoded direction runs when its source sends digits as tones (no telephone-event) and
// its target receives RFC 4733 events, so that the target gets each digit once, as an event.
//
// Pipeline, per frame of decoded PCM (in place, any whole number of 8 kHz samples):
//   1. detection: spandsp's dtmf_rx (DtmfDetector, dtmf_tones.hpp), fed 5 ms at a time so
//      that a digit's start and end are known to 5 ms;
//   2. look-ahead: the frame is replaced by the audio `lookaheadMs` earlier (a delay line);
//   3. suppression (RFC 4733 section 3.1: a gateway sends the events instead of the audio):
//      a digit sent as an event must not also be heard as tones, or a receiver that plays
//      both, or detects tones, counts it twice. The delayed audio is silenced from 10 ms
//      before the digit's estimated start to its detected end.
// spandsp reports a start two 102-sample blocks after it happens (25-38 ms at 8 kHz): with
// the default 40 ms look-ahead the whole tone is still in the delay line when the digit is
// detected, so none of it leaks. With less look-ahead (0 = no delay) the first part of each
// tone, up to ~38 ms, passes before the muting starts, long enough for some receivers to
// detect a second digit downstream.
//
// Positions: samples of this stream at sampleRate() since construction (reset() does not
// rewind them). An output sample at position p is the input sample p, played lookahead
// later; outputPosition() is the position of the next output sample. A digit's Start edge
// gives its estimated start (detection minus the detector's delay), its End edge its
// estimated end; the caller turns them into event timestamps and durations.
//
// Contract: process/take/reset are noexcept and allocate nothing; the constructor throws
// what DtmfDetector's throws (sample rates 8000, 16000, 24000, 48000). Thread: one owner.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "medius/media/codec/dtmf_tones.hpp"

namespace medius::media::codec {

class InbandDtmfDetector {
 public:
  static constexpr unsigned kDefaultLookaheadMs = 40;
  // Report delays of spandsp's detector that positions are corrected by, measured with
  // G.711-coded digits (dtmf_detector_test.cpp): a start is confirmed by two blocks of tone
  // (25-38 ms after it), an end sooner (the tone's energy falls below the threshold within
  // the first block without it).
  static constexpr unsigned kStartDelayMs = 30;
  static constexpr unsigned kEndDelayMs = 20;
  static constexpr std::size_t kMaxPendingEdges = 8;

  // lookaheadMs <= 200; suppress false leaves the audio as it is (detection only).
  explicit InbandDtmfDetector(std::uint32_t sampleRate, unsigned lookaheadMs = kDefaultLookaheadMs,
                              bool suppress = true);

  std::uint32_t sampleRate() const noexcept { return sampleRate_; }
  unsigned lookaheadMs() const noexcept { return lookaheadMs_; }

  // Runs one frame: detects, delays and (when suppressing) silences it in place. A frame
  // that is not a whole number of 8 kHz samples passes through the delay undetected.
  void process(std::span<std::int16_t> pcm) noexcept;

  // The digit edges seen since the last take(), oldest first (DtmfEvent::sample is the
  // estimated position of the edge); returns how many. Edges beyond kMaxPendingEdges are
  // dropped and counted.
  std::size_t take(std::span<DtmfEvent> edges) noexcept;
  // A digit is in progress (started, not ended).
  bool inDigit() const noexcept { return digit_ != 0; }
  std::uint64_t outputPosition() const noexcept;
  std::uint64_t droppedEdges() const noexcept { return dropped_ + detector_.droppedEvents(); }

  // A new stream: forgets the digit in progress (no End edge is reported for it: the
  // caller ends its event itself), the detector's history and the delayed audio.
  void reset() noexcept;

 private:
  void push(const DtmfEvent& edge) noexcept;

  std::uint32_t sampleRate_;
  unsigned lookaheadMs_;
  bool suppress_;
  DtmfDetector detector_;
  std::size_t chunk_;         // 5 ms of samples
  std::size_t delaySamples_;  // look-ahead in samples
  std::size_t startDelay_;
  std::size_t endDelay_;
  std::vector<std::int16_t> delay_;  // ring of delaySamples_ (input position % size)
  std::uint64_t position_ = 0;       // input samples processed
  // Output positions [muteFrom_, muteTo_) are silenced (muteTo_ = max while in a digit).
  std::uint64_t muteFrom_ = 0;
  std::uint64_t muteTo_ = 0;
  char digit_ = 0;
  std::array<DtmfEvent, kMaxPendingEdges> pending_{};
  std::size_t pendingCount_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace medius::media::codec
