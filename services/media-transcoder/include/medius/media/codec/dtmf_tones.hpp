// In-band DTMF (ITU-T Q.23/Q.24) generation and detection on PCM frames, over spandsp's
// dtmf_tx / dtmf_rx, which work at 8 kHz: other rates (16, 24, 48 kHz) go through a
// Resampler (up after generation, down before detection).
//
// Use: the relay renders RFC 4733 telephone-events into audio for a leg that cannot receive
// them, and detects in-band digits to send them as events. Thread: one owner per object;
// generate/process never allocate nor throw.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

struct dtmf_tx_state_s;
struct dtmf_rx_state_s;

namespace medius::media::codec {

class Resampler;

// Digits '0'-'9', '*', '#', 'A'-'D' (also 'a'-'d').
bool isDtmfDigit(char c) noexcept;

class DtmfGenerator {
 public:
  // sampleRate: 8000, 16000, 24000 or 48000. levelDbm0: level of each of the two tones
  // (spandsp default -10 dBm0). Throws std::invalid_argument / std::runtime_error.
  explicit DtmfGenerator(std::uint32_t sampleRate, int levelDbm0 = -10);
  ~DtmfGenerator();
  DtmfGenerator(const DtmfGenerator&) = delete;
  DtmfGenerator& operator=(const DtmfGenerator&) = delete;

  // Starts a digit of `durationMs` of tone (replacing a digit still playing). False for a
  // character that is not a DTMF digit or a duration of 0 or more than 10 s.
  bool start(char digit, unsigned durationMs) noexcept;
  bool active() const noexcept { return remaining8k_ > 0; }
  // Fills one frame: the tone while it lasts, then silence. pcm.size() must be a whole
  // number of 8 kHz samples (sampleRate/8000 divides it) and at most 120 ms; returns the
  // samples of tone written (at 8 kHz granularity scaled to sampleRate), 0 when idle.
  std::size_t generate(std::span<std::int16_t> pcm) noexcept;

 private:
  std::uint32_t sampleRate_;
  int level_;
  ::dtmf_tx_state_s* tx_ = nullptr;
  std::unique_ptr<Resampler> up_;
  std::array<std::int16_t, 960> buf8k_{};  // 120 ms at 8 kHz
  std::size_t remaining8k_ = 0;
};

enum class DtmfEdge : std::uint8_t { Start, End };

struct DtmfEvent {
  char digit;  // the digit that started or ended
  DtmfEdge edge;
  std::uint64_t sample;  // input samples processed before the frame in which it was seen
};

class DtmfDetector {
 public:
  static constexpr std::size_t kMaxEventsPerFrame = 8;

  // sampleRate: 8000, 16000, 24000 or 48000. Throws std::invalid_argument / runtime_error.
  explicit DtmfDetector(std::uint32_t sampleRate);
  ~DtmfDetector();
  DtmfDetector(const DtmfDetector&) = delete;
  DtmfDetector& operator=(const DtmfDetector&) = delete;

  // Runs one frame (same size rules as DtmfGenerator::generate) through the detector and
  // writes the digit starts and ends it reported into events; returns how many. Events that
  // do not fit are dropped and counted in droppedEvents().
  std::size_t process(std::span<const std::int16_t> pcm, std::span<DtmfEvent> events) noexcept;
  std::uint64_t droppedEvents() const noexcept { return dropped_; }
  // Forgets a digit in progress and the filter history (a new stream); sample positions go
  // on counting. No allocation.
  void reset() noexcept;

 private:
  static void onTone(void* self, int code, int level, int delay) noexcept;

  std::uint32_t sampleRate_;
  ::dtmf_rx_state_s* rx_ = nullptr;
  std::unique_ptr<Resampler> down_;
  std::array<std::int16_t, 961> buf8k_{};
  std::array<DtmfEvent, kMaxEventsPerFrame> pending_{};
  std::size_t pendingCount_ = 0;
  char current_ = 0;
  std::uint64_t position_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace medius::media::codec
