// Payload-to-payload transcoding of one direction (see transcoder.hpp).
#include "medius/media/codec/transcoder.hpp"

#include <algorithm>

namespace medius::media::codec {

namespace {

// The Opus PCM rate that matches `otherRate` (the next Opus rate up), capped by the Opus
// side's own rate (its maxplaybackrate or explicit pcmRate).
std::uint32_t matchedOpusRate(const OpusParams& opus, std::uint32_t otherRate) noexcept {
  std::uint32_t own = opusPcmRate(opus);
  for (std::uint32_t rate : {8000u, 12000u, 16000u, 24000u, 48000u}) {
    if (rate >= otherRate) return std::min(rate, own);
  }
  return own;
}

}  // namespace

Transcoder::Transcoder(const TranscoderConfig& config)
    : sourceClock_(codecInfo(config.from).rtpClockRate) {
  CodecParams fromParams = config.fromParams;
  CodecParams toParams = config.toParams;
  if (config.matchOpusRate) {
    if (config.from == CodecId::Opus && config.to != CodecId::Opus &&
        fromParams.opus.pcmRate == 0) {
      fromParams.opus.pcmRate = matchedOpusRate(fromParams.opus, codecInfo(config.to).sampleRate);
    }
    if (config.to == CodecId::Opus && config.from != CodecId::Opus && toParams.opus.pcmRate == 0) {
      toParams.opus.pcmRate = matchedOpusRate(toParams.opus, codecInfo(config.from).sampleRate);
    }
  }
  if (config.matchG722Rate) {
    // G.722 against a narrowband codec (G.711, G.729): its lower sub-band at 8 kHz only.
    if (config.from == CodecId::G722 && narrowband(config.to)) fromParams.g722.narrowbandPcm = true;
    if (config.to == CodecId::G722 && narrowband(config.from)) toParams.g722.narrowbandPcm = true;
  }
  decoder_ = makeDecoder(config.from, fromParams);
  encoder_ = makeEncoder(config.to, toParams);
  if (decoder_->sampleRate() != encoder_->sampleRate()) {
    resampler_ = std::make_unique<Resampler>(decoder_->sampleRate(), encoder_->sampleRate(),
                                             config.resamplerQuality);
  }
  if (config.detectDtmf) {
    const std::uint32_t rate = decoder_->sampleRate();
    if (rate == 8000 || rate == 16000 || rate == 24000 || rate == 48000)
      dtmf_ = std::make_unique<InbandDtmfDetector>(rate, config.dtmfLookaheadMs);
  }
  if (config.sendComfortNoise && usesRfc3389Cn(config.to)) {
    silence_ = std::make_unique<SilenceSuppressor>(encoder_->sampleRate(), encoder_->samplesPerPacket(),
                                                   config.silence);
  }
  std::size_t maxIn = std::size_t{decoder_->sampleRate()} / 1000 * kMaxInputMs;
  std::size_t maxOut = std::size_t{encoder_->sampleRate()} / 1000 * kMaxInputMs + 1;
  decoded_.assign(maxIn, 0);
  // One input's worth plus a partial target packet waiting for the rest of its samples.
  fifo_.assign(maxOut + encoder_->samplesPerPacket(), 0);
  std::size_t maxPackets = fifo_.size() / encoder_->samplesPerPacket();
  // G.711 writes one byte per sample, G.722 one per two, G.729 one per eight; Opus's size
  // depends on its rate control, so it gets the per-packet cap.
  std::size_t perPacket =
      config.to == CodecId::Opus ? kMaxPayloadBytes : encoder_->samplesPerPacket();
  outputCapacity_ = maxPackets * perPacket;
}

Transcoder::~Transcoder() = default;

void Transcoder::reset() noexcept {
  decoder_->reset();
  if (resampler_) resampler_->reset();
  if (dtmf_) dtmf_->reset();
  if (silence_) silence_->reset();
  fifoLen_ = 0;
}

TranscodeResult Transcoder::push(std::span<const std::uint8_t> payload, std::span<std::uint8_t> out,
                                 std::span<TranscodedPacket> packets) noexcept {
  DecodeResult d = decoder_->decode(payload, decoded_);
  if (d.status == CodecStatus::BufferTooSmall) return {CodecStatus::BadPayload, 0};
  if (d.status != CodecStatus::Ok) return {d.status, 0};
  if (silence_) silence_->sourceActive();
  return feed(d.samples, out, packets);
}

TranscodeResult Transcoder::pushLost(std::uint32_t sourceTimestampSpan,
                                     std::span<const std::uint8_t> nextPayload,
                                     std::span<std::uint8_t> out,
                                     std::span<TranscodedPacket> packets) noexcept {
  std::uint64_t samples = sourceSamples(sourceTimestampSpan);
  // Rounded down to the codec's concealment granularity.
  std::uint64_t quantum = 1;
  if (decoder_->id() == CodecId::Opus) quantum = decoder_->sampleRate() / 400;  // 2.5 ms
  if (decoder_->id() == CodecId::G729) quantum = 80;                            // 10 ms
  samples -= samples % quantum;
  if (samples == 0) return {CodecStatus::BadFrameSize, 0};
  DecodeResult d = nextPayload.empty() || !decoder_->hasFec()
                       ? decoder_->conceal(samples, decoded_)
                       : decoder_->decodeFec(nextPayload, samples, decoded_);
  if (d.status != CodecStatus::Ok) return {d.status, 0};
  if (silence_) silence_->sourceActive();
  return feed(d.samples, out, packets);
}

// Source RTP clock to decoder PCM samples (G.722: clock 8000, PCM 16000; Opus: clock 48000,
// PCM at its pcmRate), clamped to one input buffer.
std::size_t Transcoder::sourceSamples(std::uint32_t sourceTimestampSpan) const noexcept {
  std::uint64_t samples =
      std::uint64_t{sourceTimestampSpan} * decoder_->sampleRate() / sourceClock_;
  return static_cast<std::size_t>(std::min<std::uint64_t>(samples, decoded_.size()));
}

TranscodeResult Transcoder::pushComfortNoise(std::uint8_t levelDbov,
                                             std::uint32_t sourceTimestampSpan,
                                             std::span<std::uint8_t> out,
                                             std::span<TranscodedPacket> packets) noexcept {
  std::size_t samples = sourceSamples(sourceTimestampSpan);
  if (samples == 0) return {CodecStatus::BadFrameSize, 0};
  noise_.setLevel(levelDbov);
  noise_.generate(std::span<std::int16_t>(decoded_.data(), samples));
  if (silence_) silence_->sourceSilent(noise_.level());
  return feed(samples, out, packets);
}

TranscodeResult Transcoder::pushSilence(std::uint32_t sourceTimestampSpan, std::span<std::uint8_t> out,
                                        std::span<TranscodedPacket> packets) noexcept {
  if (!silence_) return {};
  return pushComfortNoise(silence_->backgroundLevel(), sourceTimestampSpan, out, packets);
}

TranscodeResult Transcoder::feed(std::size_t decoded, std::span<std::uint8_t> out,
                                 std::span<TranscodedPacket> packets) noexcept {
  // Detection sees the decoded audio, before resampling, and silences its tones in place.
  if (dtmf_) dtmf_->process(std::span<std::int16_t>(decoded_.data(), decoded));
  std::span<const std::int16_t> pcm(decoded_.data(), decoded);
  std::span<std::int16_t> room(fifo_.data() + fifoLen_, fifo_.size() - fifoLen_);
  if (resampler_) {
    fifoLen_ += resampler_->process(pcm, room);
  } else {
    std::size_t n = std::min(pcm.size(), room.size());
    std::copy_n(pcm.begin(), n, room.begin());
    fifoLen_ += n;
  }

  TranscodeResult result;
  const std::size_t frame = encoder_->samplesPerPacket();
  std::size_t consumed = 0;
  std::size_t written = 0;
  while (fifoLen_ - consumed >= frame) {
    if (result.packets == packets.size()) {
      result.status = CodecStatus::BufferTooSmall;
      break;
    }
    if (silence_) {
      // RFC 3389 toward a CN target: a silent frame is a CN packet or nothing, not encoded
      // (the peer's decoder does not see it either, so a G.722 predictor stays in step).
      const SilenceDecision s = silence_->next(std::span<const std::int16_t>(fifo_.data() + consumed, frame));
      if (s.action != SilenceAction::Audio) {
        std::size_t bytes = 0;
        if (s.action == SilenceAction::ComfortNoise) {
          bytes = writeComfortNoise(s.levelDbov, out.subspan(std::min(written, out.size())));
          if (bytes == 0) {
            result.status = CodecStatus::BufferTooSmall;
            break;
          }
        }
        consumed += frame;
        packets[result.packets++] = {static_cast<std::uint32_t>(written), static_cast<std::uint32_t>(bytes),
                                     encoder_->timestampIncrement(), s.action == SilenceAction::ComfortNoise};
        written += bytes;
        continue;
      }
    }
    EncodeResult e = encoder_->encode(std::span<const std::int16_t>(fifo_.data() + consumed, frame),
                                      out.subspan(written));
    if (e.status == CodecStatus::BufferTooSmall) {
      result.status = e.status;
      break;
    }
    consumed += frame;  // a frame the encoder failed on is dropped, not retried forever
    if (e.status != CodecStatus::Ok) {
      result.status = e.status;
      continue;
    }
    packets[result.packets++] = {static_cast<std::uint32_t>(written),
                                 static_cast<std::uint32_t>(e.bytes),
                                 encoder_->timestampIncrement(), false};
    written += e.bytes;
  }
  if (consumed > 0) {
    std::copy(fifo_.begin() + static_cast<std::ptrdiff_t>(consumed),
              fifo_.begin() + static_cast<std::ptrdiff_t>(fifoLen_), fifo_.begin());
    fifoLen_ -= consumed;
  }
  return result;
}

}  // namespace medius::media::codec
