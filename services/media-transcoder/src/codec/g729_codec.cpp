// G.729 with Annex B (VAD/DTX/CNG) over bcg729 1.1.1 (RTP mapping RFC 3551 4.5.6).
extern "C" {  // bcg729's headers have no extern "C" guards (docs BUILD.md)
#include <bcg729/decoder.h>
#include <bcg729/encoder.h>
}

#include <algorithm>
#include <array>
#include <stdexcept>

#include "backends.hpp"

namespace medius::media::codec::detail {

namespace {

constexpr std::size_t kFrameSamples = 80;  // 10 ms at 8 kHz
constexpr std::size_t kFrameBytes = 10;    // 8 kbit/s
constexpr std::size_t kSidBytes = 2;       // Annex B SID frame

class G729Encoder final : public Encoder {
 public:
  G729Encoder(const G729Params& params, unsigned ptimeMs) : Encoder(CodecId::G729, 8000, ptimeMs) {
    enc_ = initBcg729EncoderChannel(params.annexB ? 1 : 0);
    if (enc_ == nullptr) throw std::runtime_error("initBcg729EncoderChannel failed");
  }
  ~G729Encoder() override { closeBcg729EncoderChannel(enc_); }

  // RFC 3551 4.5.6: a packet is zero or more 10-byte frames followed by at most one 2-byte
  // SID frame, which must be last. With VAD a frame is speech (10), SID (2) or not sent (0).
  // A SID produced before a later speech frame of the same packet is dropped (the speech
  // frame starts a new talkspurt); the packet then carries fewer frames than its ptime,
  // as every Annex B sender does at a talkspurt start.
  EncodeResult encode(std::span<const std::int16_t> pcm,
                      std::span<std::uint8_t> out) noexcept override {
    if (pcm.size() != samplesPerPacket()) return {CodecStatus::BadFrameSize, 0};
    if (out.size() < pcm.size() / kFrameSamples * kFrameBytes) {
      return {CodecStatus::BufferTooSmall, 0};
    }
    std::size_t written = 0;
    std::array<std::uint8_t, kFrameBytes> sid{};
    bool haveSid = false;
    for (std::size_t off = 0; off < pcm.size(); off += kFrameSamples) {
      std::array<std::uint8_t, kFrameBytes> frame{};
      std::uint8_t len = 0;
      bcg729Encoder(enc_, pcm.data() + off, frame.data(), &len);
      if (len == kFrameBytes) {
        std::copy_n(frame.begin(), kFrameBytes, out.begin() + static_cast<std::ptrdiff_t>(written));
        written += kFrameBytes;
        haveSid = false;
      } else if (len == kSidBytes) {
        sid = frame;
        haveSid = true;
      }
    }
    if (haveSid) {
      std::copy_n(sid.begin(), kSidBytes, out.begin() + static_cast<std::ptrdiff_t>(written));
      written += kSidBytes;
    }
    return {CodecStatus::Ok, written};
  }

 private:
  bcg729EncoderChannelContextStruct* enc_ = nullptr;
};

class G729Decoder final : public Decoder {
 public:
  G729Decoder() : Decoder(CodecId::G729, 8000) {
    dec_ = initBcg729DecoderChannel();
    if (dec_ == nullptr) throw std::runtime_error("initBcg729DecoderChannel failed");
  }
  ~G729Decoder() override { closeBcg729DecoderChannel(dec_); }

  DecodeResult decode(std::span<const std::uint8_t> payload,
                      std::span<std::int16_t> pcm) noexcept override {
    std::size_t frames = payload.size() / kFrameBytes;
    std::size_t rest = payload.size() % kFrameBytes;
    if (payload.empty() || (rest != 0 && rest != kSidBytes)) return {CodecStatus::BadPayload, 0};
    std::size_t total = (frames + (rest != 0 ? 1 : 0)) * kFrameSamples;
    if (total > kMaxDecodedSamples) return {CodecStatus::BadPayload, 0};
    if (pcm.size() < total) return {CodecStatus::BufferTooSmall, 0};
    const std::uint8_t* p = payload.data();
    std::int16_t* o = pcm.data();
    for (std::size_t i = 0; i < frames; ++i, p += kFrameBytes, o += kFrameSamples) {
      bcg729Decoder(dec_, p, kFrameBytes, 0, 0, 0, o);
    }
    if (rest == kSidBytes) bcg729Decoder(dec_, p, kSidBytes, 0, 1, 0, o);
    return {CodecStatus::Ok, total};
  }

  // G.729 section 4.4 frame erasure concealment (bcg729's frameErasureFlag); after a SID it
  // continues the comfort noise (Annex B.27: no frame received during DTX), so the caller
  // conceals the DTX gaps of an Annex B stream the same way as losses.
  DecodeResult conceal(std::size_t samples, std::span<std::int16_t> pcm) noexcept override {
    if (samples == 0 || samples % kFrameSamples != 0 || samples > kMaxDecodedSamples) {
      return {CodecStatus::BadFrameSize, 0};
    }
    if (pcm.size() < samples) return {CodecStatus::BufferTooSmall, 0};
    // A null bitstream is bcg729's "missing/untransmitted frame" (decoder.c: after an
    // inactive frame it runs decodeSIDframe without new parameters, i.e. keeps the noise).
    for (std::size_t off = 0; off < samples; off += kFrameSamples) {
      bcg729Decoder(dec_, nullptr, 0, 1, 0, 0, pcm.data() + off);
    }
    return {CodecStatus::Ok, samples};
  }

  void reset() noexcept override {
    // bcg729 has no reset: a new channel (one malloc per new stream, not per packet).
    if (bcg729DecoderChannelContextStruct* fresh = initBcg729DecoderChannel()) {
      closeBcg729DecoderChannel(dec_);
      dec_ = fresh;
    }
  }

 private:
  bcg729DecoderChannelContextStruct* dec_ = nullptr;
};

}  // namespace

std::unique_ptr<Encoder> makeG729Encoder(const G729Params& params, unsigned ptimeMs) {
  return std::make_unique<G729Encoder>(params, ptimeMs);
}
std::unique_ptr<Decoder> makeG729Decoder() { return std::make_unique<G729Decoder>(); }

}  // namespace medius::media::codec::detail
