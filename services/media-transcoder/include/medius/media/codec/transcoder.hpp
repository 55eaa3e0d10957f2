// One direction of a transcoded leg pair: source payloads in, target payloads out.
//
//   payload (or a loss) -> Decoder (or its PLC / Opus FEC) -> Resampler to the target's PCM
//   rate -> PCM FIFO (target ptime accumulation: 20 ms in, 30/40 ms out or the reverse)
//   -> Encoder -> 0..n target payloads, each with its RTP timestamp increment.
// Toward a target that takes RFC 3389 CN (sendComfortNoise), each target frame first goes
// through a SilenceSuppressor: during silence a CN payload (or nothing) replaces the frame.
//
// It maps payloads to payloads: no RTP headers, sequence numbers or SSRC (the caller, the
// relay worker, writes them; it adds each packet's timestampIncrement to its target
// timestamp, and sends the packet only when size > 0: size 0 is a DTX frame whose time
// still passes, RFC 7587 3.1.3 / RFC 3551 4.5.6; a comfortNoise packet goes with the
// target's CN payload type).
//
// Ownership: owns its decoder, encoder, resampler and preallocated buffers (all created in
// the constructor). Thread: one owner (the leg's worker); push/pushLost never allocate and
// never throw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "medius/media/codec/codec.hpp"
#include "medius/media/codec/comfort_noise.hpp"
#include "medius/media/codec/dtmf_detector.hpp"
#include "medius/media/codec/resampler.hpp"
#include "medius/media/codec/silence_suppressor.hpp"

namespace medius::media::codec {

struct TranscoderConfig {
  CodecId from = CodecId::Pcmu;
  CodecParams fromParams;  // decoder side (its ptime is unused: any incoming ptime works)
  CodecId to = CodecId::Opus;
  CodecParams toParams;  // encoder side: target ptime, Opus fmtp, G.729 annexb
  int resamplerQuality = Resampler::kDefaultQuality;
  // When an Opus side has no explicit pcmRate, run it at the other side's PCM rate (8 kHz
  // for G.711/G.729, 16 kHz for G.722, never above maxplaybackrate): no resampling and a
  // cheaper Opus for a narrowband peer whose audio has nothing above 4 kHz anyway. The RTP
  // clock stays 48000. false = Opus at opusPcmRate() (48 kHz by default) plus resampling.
  bool matchOpusRate = true;
  // G.722 against G.711 or G.729: G.722's lower sub-band at 8 kHz (G722Params::narrowbandPcm),
  // no QMF and no resampling; the wideband half of the G.722 side would be lost in the
  // narrowband codec anyway. false = G.722 at 16 kHz plus resampling.
  bool matchG722Rate = true;
  // In-band DTMF detection on the decoded source audio (InbandDtmfDetector), for a source
  // without telephone-event toward a target with it: the caller takes the digits from
  // dtmfDetector() and sends them as events; the tones are taken out of the audio, which is
  // delayed by dtmfLookaheadMs for that (see dtmf_detector.hpp). Ignored when the decoder's
  // PCM rate is one the detector does not take (Opus at 12 kHz).
  bool detectDtmf = false;
  unsigned dtmfLookaheadMs = InbandDtmfDetector::kDefaultLookaheadMs;
  // The target takes RFC 3389 CN: silent target frames become CN packets or nothing
  // (SilenceSuppressor, see silence_suppressor.hpp). Only for targets that have no silence
  // scheme of their own: G.711 and G.722 (G.729 sends Annex B SIDs, Opus its DTX); ignored
  // for the others.
  bool sendComfortNoise = false;
  SilenceSuppressorParams silence;
};

// One output packet: payload bytes at out[offset, offset + size).
struct TranscodedPacket {
  std::uint32_t offset = 0;
  std::uint32_t size = 0;                // 0 = DTX: nothing to send, timestamp still advances
  std::uint32_t timestampIncrement = 0;  // in the target's RTP clock
  // An RFC 3389 CN payload (one level byte) instead of the target codec's: it goes with the
  // target's CN payload type; the next audio packet starts a talkspurt (marker bit).
  bool comfortNoise = false;
};

struct TranscodeResult {
  CodecStatus status = CodecStatus::Ok;
  std::size_t packets = 0;  // TranscodedPacket entries written
};

class Transcoder {
 public:
  // Most packets one call can emit: 120 ms of input into 10 ms packets, plus one pending.
  static constexpr std::size_t kMaxPacketsPerCall = 13;
  // Longest input handled per call (payload or concealed gap).
  static constexpr unsigned kMaxInputMs = 120;

  // Throws what makeEncoder/makeDecoder/Resampler throw.
  explicit Transcoder(const TranscoderConfig& config);
  ~Transcoder();
  Transcoder(const Transcoder&) = delete;
  Transcoder& operator=(const Transcoder&) = delete;

  // Bytes the `out` span must hold so that a call never runs short.
  std::size_t outputCapacity() const noexcept { return outputCapacity_; }

  // Transcodes one received payload. Writes packets (at most packets.size(); give it
  // kMaxPacketsPerCall) and their bytes into out. BadPayload when the decoder rejects it (the
  // FIFO is unchanged); BufferTooSmall when out/packets ran short (the rest stays queued).
  TranscodeResult push(std::span<const std::uint8_t> payload, std::span<std::uint8_t> out,
                       std::span<TranscodedPacket> packets) noexcept;

  // Conceals a lost source packet spanning `sourceTimestampSpan` in the source's RTP clock
  // (e.g. 160 for 20 ms of PCMU or G.722, 960 for 20 ms of Opus). When nextPayload is given
  // and the source is Opus, the lost audio is recovered from its in-band FEC (the caller then
  // push()es nextPayload as usual). Spans longer than kMaxInputMs are clamped: for longer
  // gaps the caller should stop concealing (comfort noise or silence).
  TranscodeResult pushLost(std::uint32_t sourceTimestampSpan,
                           std::span<const std::uint8_t> nextPayload, std::span<std::uint8_t> out,
                           std::span<TranscodedPacket> packets) noexcept;

  // Fills `sourceTimestampSpan` (source RTP clock) with RFC 3389 comfort noise at
  // `levelDbov` (from a CN packet the source sent, parseComfortNoise) and transcodes it:
  // for a target that does not do CN, the source's DTX gap becomes audible noise instead of
  // silence. Clamped to kMaxInputMs per call, like pushLost. Toward a CN target this audio
  // is known silence at that level (SilenceSuppressor::sourceSilent) until the next push()
  // or pushLost().
  TranscodeResult pushComfortNoise(std::uint8_t levelDbov, std::uint32_t sourceTimestampSpan,
                                   std::span<std::uint8_t> out,
                                   std::span<TranscodedPacket> packets) noexcept;

  // The source sent nothing for `sourceTimestampSpan` (DTX without CN, an underrun): toward
  // a CN target its background noise (the level the suppressor measured) is fed as known
  // silence, so the target gets CN packets instead of nothing; otherwise nothing happens
  // ({Ok, 0}: the caller lets the time pass).
  TranscodeResult pushSilence(std::uint32_t sourceTimestampSpan, std::span<std::uint8_t> out,
                              std::span<TranscodedPacket> packets) noexcept;
  // Silent target frames become CN (config.sendComfortNoise on a G.711 or G.722 target).
  bool sendsComfortNoise() const noexcept { return silence_ != nullptr; }

  // A new source stream (another SSRC): the decoder, the resampler, the detector and the
  // audio waiting to fill a target packet forget the old one. The encoder keeps its state:
  // the stream we send goes on.
  void reset() noexcept;

  // The in-band DTMF detector (config.detectDtmf), null without one.
  InbandDtmfDetector* dtmfDetector() noexcept { return dtmf_.get(); }

  const Encoder& encoder() const noexcept { return *encoder_; }
  const Decoder& decoder() const noexcept { return *decoder_; }
  std::size_t queuedSamples() const noexcept { return fifoLen_; }

 private:
  std::size_t sourceSamples(std::uint32_t sourceTimestampSpan) const noexcept;
  TranscodeResult feed(std::size_t decoded, std::span<std::uint8_t> out,
                       std::span<TranscodedPacket> packets) noexcept;

  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<Encoder> encoder_;
  std::unique_ptr<Resampler> resampler_;  // null when the PCM rates are equal
  std::unique_ptr<InbandDtmfDetector> dtmf_;
  std::unique_ptr<SilenceSuppressor> silence_;  // null unless the target takes CN
  ComfortNoiseGenerator noise_;
  std::uint32_t sourceClock_;
  std::vector<std::int16_t> decoded_;  // one input's PCM at the source rate
  std::vector<std::int16_t> fifo_;     // PCM at the target rate, oldest first
  std::size_t fifoLen_ = 0;
  std::size_t outputCapacity_ = 0;
};

}  // namespace medius::media::codec
