// Audio codecs of the transcoder: G.711 (PCMU/PCMA), G.722, G.729 (Annex B), Opus.
//
// A relay worker owns one Encoder and one Decoder per transcoded direction of a leg. They
// are created off the packet path (constructors allocate and may throw std::invalid_argument
// on bad parameters); encode/decode/conceal never allocate, never throw and report bad input
// with a CodecStatus. PCM is mono signed 16-bit at the codec's sampleRate(); payloads are RTP
// payloads without the RTP header (the caller writes headers and timestamps).
//
// Thread: an Encoder/Decoder is used by one thread at a time (its worker); different
// objects are independent. Backends: spandsp (G.711 companding, G.722, PLC), bcg729, libopus.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace medius::media::codec {

enum class CodecId : std::uint8_t { Pcmu, Pcma, G722, G729, Opus };

// Static facts about a codec as negotiated in SDP (RFC 3551 section 4.5, RFC 7587).
struct CodecInfo {
  CodecId id;
  std::string_view encodingName;  // a=rtpmap encoding name, as usually written ("PCMU", "opus")
  // RTP timestamp clock. G.722 samples at 16 kHz but its RTP clock is 8000 (RFC 3551
  // 4.5.2, an historical error kept for compatibility); Opus's is always 48000 whatever the
  // audio bandwidth (RFC 7587 section 4.1).
  std::uint32_t rtpClockRate;
  std::uint32_t sampleRate;  // PCM rate the codec works at (Opus: its full rate, 48000)
  std::optional<std::uint8_t> staticPayloadType;  // RFC 3551 table 4; Opus is dynamic
  std::uint16_t defaultPtimeMs;
  std::span<const std::uint16_t> allowedPtimesMs;  // ascending
  std::uint16_t frameMs;  // codec frame; conceal() granularity (0 = sample based)
};

const CodecInfo& codecInfo(CodecId id) noexcept;
// Case-insensitive SDP encoding name (and clock rate when given) to codec.
std::optional<CodecId> codecFromName(std::string_view encodingName,
                                     std::uint32_t clockRate = 0) noexcept;
bool ptimeAllowed(CodecId id, unsigned ptimeMs) noexcept;

// A codec whose PCM is 8 kHz (G.711, G.729): next to one, the transcoder runs Opus and G.722
// at 8 kHz too (TranscoderConfig::matchOpusRate, matchG722Rate).
inline bool narrowband(CodecId id) noexcept { return codecInfo(id).sampleRate == 8000; }

// A codec with no silence scheme of its own (G.711, G.722), whose peers send silence as
// RFC 3389 CN: toward one the transcoder generates CN (TranscoderConfig::sendComfortNoise).
// G.729 has its Annex B SIDs, Opus its DTX.
inline bool usesRfc3389Cn(CodecId id) noexcept {
  return id == CodecId::Pcmu || id == CodecId::Pcma || id == CodecId::G722;
}

// Largest payload any encoder here writes for one packet (Opus: 3 x 1275 bytes at 60 ms,
// RFC 6716 section 3.2.5 caps a packet at 1275 bytes per 20 ms frame; we cap at one MTU).
inline constexpr std::size_t kMaxPayloadBytes = 1500;
// Largest PCM a decoder writes for one payload: 120 ms at 48 kHz (Opus code 3 packets).
inline constexpr std::size_t kMaxDecodedSamples = 5760;

enum class CodecStatus : std::uint8_t {
  Ok,
  BadPayload,      // payload malformed for this codec (wrong length, undecodable)
  BadFrameSize,    // PCM input is not exactly one packet's worth / conceal size not allowed
  BufferTooSmall,  // caller's output span too small
  CodecError,      // the codec library failed unexpectedly
};
std::string_view toString(CodecStatus status) noexcept;

struct EncodeResult {
  CodecStatus status = CodecStatus::Ok;
  std::size_t bytes = 0;  // 0 with Ok = nothing to send (DTX); the RTP clock still advances
};
struct DecodeResult {
  CodecStatus status = CodecStatus::Ok;
  std::size_t samples = 0;  // PCM samples written
};

// Opus parameters, from the a=fmtp line of the payload type (RFC 7587 section 6.1).
struct OpusParams {
  std::uint32_t maxPlaybackRate = 48000;  // maxplaybackrate: upper bound on the coded bandwidth
  // useinbandfec: the receiver can use in-band FEC, so our encoder adds LBRR data. RFC 7587
  // 6.1: absent means 0 (browsers offer 1).
  bool useInbandFec = false;
  bool useDtx = false;                  // usedtx: encoder may stop sending in silence
  std::uint32_t maxAverageBitrate = 0;  // maxaveragebitrate in bit/s; 0 = our default
  bool stereo = false;                  // only mono (stereo=0) is produced; decoder downmixes
  // PCM rate of our encoder/decoder object: 8000, 12000, 16000, 24000 or 48000; 0 = the
  // smallest of these >= maxPlaybackRate. A lower rate saves resampling and CPU when the
  // other leg is narrowband (the RTP clock stays 48000).
  std::uint32_t pcmRate = 0;
  // Encoder complexity 0..10. Default 5: the lowest level with SILK's warped noise shaping
  // and interpolated NLSFs (silk/control_codec.c), the steps that matter for speech; above
  // it the cost doubles for little gain. Measured CPU time on the 2-core EPYC VM
  // (bench/media_codec_bench.cpp), PCMU<->Opus both directions per 20 ms with FEC on: Opus at
  // the matched 8 kHz (Transcoder's default) 110 us = 181 calls/core (goal 150); Opus at
  // 48 kHz plus resampling only 83 calls/core at 5: there complexity 0 (184) or
  // restrictedLowDelay (CELT only, 234, no FEC/DTX) is needed to meet the goal.
  int complexity = 5;
  // OPUS_APPLICATION_VOIP (speech tuned, SILK/hybrid) or RESTRICTED_LOWDELAY (CELT only:
  // about 4x cheaper to encode here, but no in-band FEC or DTX, which are SILK's, and worse
  // speech at low bitrates). Default VOIP.
  bool restrictedLowDelay = false;
  int expectedLossPercent = 10;  // OPUS_SET_PACKET_LOSS_PERC: how much FEC the encoder spends
};

// G.729 parameters (RFC 3551 4.5.6, RFC 4856 section 2.1.9: annexb defaults to yes).
struct G729Params {
  bool annexB = true;  // encoder VAD/DTX: SID frames (2 bytes) and silence suppression
};

// G.722 parameters of our encoder/decoder object (not negotiated: the stream is standard).
struct G722Params {
  // PCM at 8 kHz instead of 16 kHz: only the lower sub-band is coded (the upper carries
  // silence) and decoded, without the QMF filter bank. For a narrowband peer on the other
  // leg it saves the resampling and about half the codec's work and loses nothing the
  // peer could hear (Transcoder sets it; spandsp's G722_SAMPLE_RATE_8000).
  bool narrowbandPcm = false;
};

struct CodecParams {
  std::uint16_t ptimeMs = 0;  // 0 = the codec's default
  OpusParams opus;
  G729Params g729;
  G722Params g722;
};

// Applies an a=fmtp parameter list ("maxplaybackrate=16000; useinbandfec=1" for Opus,
// "annexb=no" for G.729) to params; unknown keys are ignored (RFC 4566 6: fmtp is
// codec-specific and receivers ignore what they do not know). Returns false on a malformed
// value of a known key (params keeps what parsed).
bool applyFmtp(CodecId id, std::string_view fmtp, CodecParams& params) noexcept;

// Encodes exactly one packet of PCM (ptime worth of samples) into one RTP payload.
class Encoder {
 public:
  virtual ~Encoder() = default;
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  CodecId id() const noexcept { return id_; }
  std::uint32_t sampleRate() const noexcept { return sampleRate_; }
  unsigned ptimeMs() const noexcept { return ptimeMs_; }
  std::size_t samplesPerPacket() const noexcept { return sampleRate_ / 1000 * ptimeMs_; }
  // RTP timestamp increment of one packet (in the codec's RTP clock).
  std::uint32_t timestampIncrement() const noexcept;

  // pcm.size() must equal samplesPerPacket() (BadFrameSize otherwise); out should hold
  // kMaxPayloadBytes (BufferTooSmall if it cannot hold this packet).
  virtual EncodeResult encode(std::span<const std::int16_t> pcm,
                              std::span<std::uint8_t> out) noexcept = 0;

 protected:
  Encoder(CodecId id, std::uint32_t sampleRate, unsigned ptimeMs)
      : id_(id), sampleRate_(sampleRate), ptimeMs_(ptimeMs) {}

 private:
  CodecId id_;
  std::uint32_t sampleRate_;
  unsigned ptimeMs_;
};

// Decodes RTP payloads of any allowed ptime; conceals lost ones.
class Decoder {
 public:
  virtual ~Decoder() = default;
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  CodecId id() const noexcept { return id_; }
  std::uint32_t sampleRate() const noexcept { return sampleRate_; }

  // Decodes one payload into pcm (should hold kMaxDecodedSamples). An empty payload is
  // BadPayload; so is one of the wrong size for fixed-rate codecs (G.729: 10-byte frames
  // optionally followed by one 2-byte SID frame, RFC 3551 4.5.6).
  virtual DecodeResult decode(std::span<const std::uint8_t> payload,
                              std::span<std::int16_t> pcm) noexcept = 0;
  // Produces `samples` of replacement audio for a lost packet (PLC): spandsp's G.711
  // Appendix I-like concealer for G.711/G.722, Opus's own PLC, bcg729's frame erasure.
  // samples must be a multiple of the codec frame (codecInfo().frameMs; Opus 2.5 ms).
  virtual DecodeResult conceal(std::size_t samples, std::span<std::int16_t> pcm) noexcept = 0;
  // Whether decodeFec can do better than conceal (Opus with in-band FEC).
  virtual bool hasFec() const noexcept { return false; }
  // Forgets the stream decoded so far (predictor, PLC history, Opus state): the next payload
  // starts a new stream (a new SSRC after a re-INVITE or a fork switch). No allocation,
  // except G.729, whose bcg729 channel has no reset and is re-created (once per new stream;
  // if that fails the old state is kept).
  virtual void reset() noexcept = 0;
  // Recovers the lost packet *before* nextPayload from nextPayload's in-band FEC (RFC 7587
  // section 4.2, opus_decode with decode_fec=1); `samples` is the lost packet's duration.
  // Falls back to conceal() when the payload carries no FEC or the codec has none. The caller
  // then decodes nextPayload normally.
  virtual DecodeResult decodeFec(std::span<const std::uint8_t> nextPayload, std::size_t samples,
                                 std::span<std::int16_t> pcm) noexcept {
    (void)nextPayload;
    return conceal(samples, pcm);
  }

 protected:
  Decoder(CodecId id, std::uint32_t sampleRate) : id_(id), sampleRate_(sampleRate) {}

 private:
  CodecId id_;
  std::uint32_t sampleRate_;
};

// Factories: throw std::invalid_argument on a ptime the codec does not allow, an Opus
// pcmRate or complexity out of range; std::runtime_error when the C library fails.
std::unique_ptr<Encoder> makeEncoder(CodecId id, const CodecParams& params = {});
std::unique_ptr<Decoder> makeDecoder(CodecId id, const CodecParams& params = {});

// The Opus PCM rate used for params (pcmRate, or derived from maxPlaybackRate).
std::uint32_t opusPcmRate(const OpusParams& params) noexcept;

}  // namespace medius::media::codec
