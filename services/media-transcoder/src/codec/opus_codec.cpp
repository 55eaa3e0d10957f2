// Opus (RFC 6716, RTP mapping RFC 7587) over libopus 1.3.
#include <opus.h>

#include <stdexcept>
#include <string>

#include "backends.hpp"

namespace medius::media::codec::detail {

namespace {

bool validOpusRate(std::uint32_t rate) noexcept {
  return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}

// The widest audio bandwidth worth coding for a receiver's maxplaybackrate (RFC 7587 6.1:
// "a hint about the maximum output sampling rate that the receiver is capable of").
int bandwidthFor(std::uint32_t maxPlaybackRate) noexcept {
  if (maxPlaybackRate <= 8000) return OPUS_BANDWIDTH_NARROWBAND;
  if (maxPlaybackRate <= 12000) return OPUS_BANDWIDTH_MEDIUMBAND;
  if (maxPlaybackRate <= 16000) return OPUS_BANDWIDTH_WIDEBAND;
  if (maxPlaybackRate <= 24000) return OPUS_BANDWIDTH_SUPERWIDEBAND;
  return OPUS_BANDWIDTH_FULLBAND;
}

// Default bit rate when the peer gave no maxaveragebitrate: enough for good speech at the
// coded bandwidth plus the LBRR (FEC) data, which SILK only adds when the rate leaves room.
opus_int32 defaultBitrate(std::uint32_t codedRate) noexcept {
  if (codedRate <= 12000) return 20000;
  if (codedRate <= 16000) return 24000;
  return 32000;
}

class OpusEncoder final : public Encoder {
 public:
  OpusEncoder(const OpusParams& params, unsigned ptimeMs)
      : Encoder(CodecId::Opus, opusPcmRate(params), ptimeMs), dtx_(params.useDtx) {
    if (!validOpusRate(sampleRate())) {
      throw std::invalid_argument("opus: pcm rate " + std::to_string(sampleRate()) +
                                  " not one of 8000/12000/16000/24000/48000");
    }
    if (params.complexity < 0 || params.complexity > 10) {
      throw std::invalid_argument("opus: complexity must be 0..10");
    }
    int err = OPUS_OK;
    int app =
        params.restrictedLowDelay ? OPUS_APPLICATION_RESTRICTED_LOWDELAY : OPUS_APPLICATION_VOIP;
    enc_ = opus_encoder_create(static_cast<opus_int32>(sampleRate()), 1, app, &err);
    if (enc_ == nullptr || err != OPUS_OK) {
      throw std::runtime_error(std::string("opus_encoder_create: ") + opus_strerror(err));
    }
    std::uint32_t coded = std::min(params.maxPlaybackRate, sampleRate());
    opus_int32 bitrate = params.maxAverageBitrate != 0
                             ? static_cast<opus_int32>(params.maxAverageBitrate)
                             : defaultBitrate(coded);
    opus_encoder_ctl(enc_, OPUS_SET_COMPLEXITY(params.complexity));
    opus_encoder_ctl(enc_, OPUS_SET_BITRATE(bitrate));
    opus_encoder_ctl(enc_, OPUS_SET_MAX_BANDWIDTH(bandwidthFor(coded)));
    opus_encoder_ctl(enc_, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
    opus_encoder_ctl(enc_, OPUS_SET_INBAND_FEC(params.useInbandFec ? 1 : 0));
    opus_encoder_ctl(enc_, OPUS_SET_PACKET_LOSS_PERC(params.expectedLossPercent));
    opus_encoder_ctl(enc_, OPUS_SET_DTX(params.useDtx ? 1 : 0));
  }
  ~OpusEncoder() override { opus_encoder_destroy(enc_); }

  EncodeResult encode(std::span<const std::int16_t> pcm,
                      std::span<std::uint8_t> out) noexcept override {
    if (pcm.size() != samplesPerPacket()) return {CodecStatus::BadFrameSize, 0};
    if (out.empty()) return {CodecStatus::BufferTooSmall, 0};
    auto cap = static_cast<opus_int32>(std::min(out.size(), kMaxPayloadBytes));
    opus_int32 n = opus_encode(enc_, pcm.data(), static_cast<int>(pcm.size()), out.data(), cap);
    if (n == OPUS_BUFFER_TOO_SMALL) return {CodecStatus::BufferTooSmall, 0};
    if (n < 0) return {CodecStatus::CodecError, 0};
    // RFC 7587 section 3.1.3: in DTX the encoder produces TOC-only (<= 2 byte) packets for
    // frames that need not be sent; the receiver conceals/generates comfort noise for them.
    if (dtx_ && n <= 2) return {CodecStatus::Ok, 0};
    return {CodecStatus::Ok, static_cast<std::size_t>(n)};
  }

 private:
  ::OpusEncoder* enc_ = nullptr;
  bool dtx_;
};

class OpusDecoder final : public Decoder {
 public:
  explicit OpusDecoder(const OpusParams& params) : Decoder(CodecId::Opus, opusPcmRate(params)) {
    if (!validOpusRate(sampleRate())) {
      throw std::invalid_argument("opus: pcm rate " + std::to_string(sampleRate()) +
                                  " not one of 8000/12000/16000/24000/48000");
    }
    int err = OPUS_OK;
    // Mono output: a stereo stream (stereo=1 from the peer) is downmixed by libopus.
    dec_ = opus_decoder_create(static_cast<opus_int32>(sampleRate()), 1, &err);
    if (dec_ == nullptr || err != OPUS_OK) {
      throw std::runtime_error(std::string("opus_decoder_create: ") + opus_strerror(err));
    }
  }
  ~OpusDecoder() override { opus_decoder_destroy(dec_); }

  DecodeResult decode(std::span<const std::uint8_t> payload,
                      std::span<std::int16_t> pcm) noexcept override {
    if (payload.empty() || payload.size() > kMaxPayloadBytes) return {CodecStatus::BadPayload, 0};
    auto len = static_cast<opus_int32>(payload.size());
    int samples =
        opus_packet_get_nb_samples(payload.data(), len, static_cast<opus_int32>(sampleRate()));
    if (samples <= 0) return {CodecStatus::BadPayload, 0};
    if (static_cast<std::size_t>(samples) > pcm.size()) return {CodecStatus::BufferTooSmall, 0};
    int n = opus_decode(dec_, payload.data(), len, pcm.data(), samples, 0);
    if (n < 0) return {CodecStatus::BadPayload, 0};
    return {CodecStatus::Ok, static_cast<std::size_t>(n)};
  }

  DecodeResult conceal(std::size_t samples, std::span<std::int16_t> pcm) noexcept override {
    if (!validConcealSize(samples)) return {CodecStatus::BadFrameSize, 0};
    if (pcm.size() < samples) return {CodecStatus::BufferTooSmall, 0};
    int n = opus_decode(dec_, nullptr, 0, pcm.data(), static_cast<int>(samples), 0);
    if (n < 0) return {CodecStatus::CodecError, 0};
    return {CodecStatus::Ok, static_cast<std::size_t>(n)};
  }

  bool hasFec() const noexcept override { return true; }
  void reset() noexcept override { opus_decoder_ctl(dec_, OPUS_RESET_STATE); }

  // RFC 7587 section 4.2 / opus_decode(3): with decode_fec=1 and frame_size equal to the lost
  // duration, libopus decodes the LBRR data of the next packet (the previous frame at lower
  // quality), or runs its PLC when the packet has none.
  DecodeResult decodeFec(std::span<const std::uint8_t> nextPayload, std::size_t samples,
                         std::span<std::int16_t> pcm) noexcept override {
    if (nextPayload.empty() || nextPayload.size() > kMaxPayloadBytes) return conceal(samples, pcm);
    if (!validConcealSize(samples)) return {CodecStatus::BadFrameSize, 0};
    if (pcm.size() < samples) return {CodecStatus::BufferTooSmall, 0};
    int n = opus_decode(dec_, nextPayload.data(), static_cast<opus_int32>(nextPayload.size()),
                        pcm.data(), static_cast<int>(samples), 1);
    if (n < 0) return conceal(samples, pcm);
    return {CodecStatus::Ok, static_cast<std::size_t>(n)};
  }

 private:
  // libopus accepts PLC/FEC sizes that are multiples of 2.5 ms, up to 120 ms.
  bool validConcealSize(std::size_t samples) const noexcept {
    std::size_t quantum = sampleRate() / 400;
    return samples != 0 && samples % quantum == 0 && samples <= sampleRate() / 1000 * 120 &&
           samples <= kMaxDecodedSamples;
  }

  ::OpusDecoder* dec_ = nullptr;
};

}  // namespace

std::unique_ptr<Encoder> makeOpusEncoder(const OpusParams& params, unsigned ptimeMs) {
  return std::make_unique<OpusEncoder>(params, ptimeMs);
}
std::unique_ptr<Decoder> makeOpusDecoder(const OpusParams& params) {
  return std::make_unique<OpusDecoder>(params);
}

}  // namespace medius::media::codec::detail
