// Silence suppression toward a peer that takes RFC 3389 comfort noise: per frame of the audio
// we are about to encode for it, whether to send the frame, a CN packet, or nothing.
//
// Voice activity detection is an energy detector with hangover, on purpose not a library
// VAD: speexdsp's preprocessor VAD (and the like) tracks the noise floor with minimum
// statistics and learns any stationary signal as noise within seconds, so a held tone (a
// fax or modem answer tone, in-band DTMF, a test tone, music on hold) would turn into CN.
// A frame is silent when its level is at or below `thresholdDbov` (-50 dBov by default:
// telephone speech is near -26 dBov, P.56; an office's background noise -55 to -70 dBov),
// so nothing louder is ever replaced by CN whatever its duration.
//
// Per frame (RFC 3389 section 4, RFC 3551 section 4.1):
//   talkspurt  loud frame: Audio. Quiet frame: Audio while the hangover lasts (`hangoverMs`
//              of consecutive quiet frames: the weak ends of words), then silence starts:
//              a CN packet with the background level.
//   silence    quiet frame: Nothing, or a CN update when the background level moved by
//              `levelStepDb` or more from the last one sent (at most every `minUpdateMs`:
//              a decoder fading out its last word, Opus's does by ~3 dB a frame, would
//              otherwise get a CN packet per frame; levels under -90 dBov, below one LSB of
//              16-bit audio, count as one), or when `refreshMs` passed since it (see below). Loud frame: Audio at once (no onset delay: never clip a
//              word's start); the caller marks that packet (RFC 3551 4.1).
// The background level is the power average (smoothed over ~4 frames) of the quiet frames.
//
// Refresh: RFC 3389 leaves the update rate to the sender. We repeat the level every 200 ms
// (WebRTC's CN encoder sends a SID every 100 ms; Opus DTX a frame every 400 ms): a peer that
// lost the first CN packet, or whose stream was switched mid-silence, gets the level within
// 200 ms, NAT bindings and peers' RTP inactivity timers see traffic, and it is still a tenth
// of the packets of 20 ms audio.
//
// Known silence: when the caller feeds generated audio (noise at a CN level the source sent,
// or the background level while the source sends nothing: DTX, an underrun), it says so with
// sourceSilent(level): quiet frames then carry that level (no measurement of our own noise,
// which could drift) and need no hangover (the source already decided it was silent), and a
// frame no louder than that level (+3 dB) counts as quiet even above the threshold (a noisy
// background the source sent as CN stays CN). Frames are still measured, so audio still in
// the caller's pipeline (a DTMF look-ahead, a partial packet) goes out as audio when loud.
// sourceActive() ends it.
//
// Thread: one owner. next() neither allocates nor throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace medius::media::codec {

struct SilenceSuppressorParams {
  std::uint8_t thresholdDbov = 50;  // quiet at or below -50 dBov
  std::uint16_t hangoverMs = 200;
  std::uint16_t refreshMs = 200;
  std::uint8_t levelStepDb = 3;
  std::uint16_t minUpdateMs = 100;
};

enum class SilenceAction : std::uint8_t {
  Audio,         // encode and send the frame
  ComfortNoise,  // send a CN packet with `levelDbov` instead (its timestamp is the frame's)
  Nothing,       // send nothing; the frame's time passes
};

struct SilenceDecision {
  SilenceAction action = SilenceAction::Audio;
  std::uint8_t levelDbov = 127;  // ComfortNoise: the noise level, -levelDbov dBov
};

class SilenceSuppressor {
 public:
  // Frames of frameSamples at sampleRate (the encoder's packet). Both > 0.
  SilenceSuppressor(std::uint32_t sampleRate, std::size_t frameSamples,
                    const SilenceSuppressorParams& params = {});

  SilenceDecision next(std::span<const std::int16_t> frame) noexcept;

  // The background noise level (-dBov) measured in the quiet frames so far, or the known
  // level; 127 (digital silence) before any.
  std::uint8_t backgroundLevel() const noexcept;
  bool silent() const noexcept { return silent_; }

  void sourceSilent(std::uint8_t levelDbov) noexcept;
  void sourceActive() noexcept { known_ = false; }

  // A new source stream: back to a talkspurt, background forgotten.
  void reset() noexcept;

 private:
  SilenceSuppressorParams params_;
  unsigned hangoverFrames_;
  unsigned refreshFrames_;
  unsigned minUpdateFrames_;
  bool silent_ = false;
  unsigned quietFrames_ = 0;  // consecutive quiet frames of the talkspurt (hangover)
  unsigned sinceSent_ = 0;    // frames since the last CN packet
  std::uint8_t sentLevel_ = 127;
  double background_ = -1;  // mean power of the quiet frames, smoothed; < 0: none yet
  bool known_ = false;
  std::uint8_t knownLevel_ = 127;
};

}  // namespace medius::media::codec
