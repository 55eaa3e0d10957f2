// Untrusted RTP payloads into medius_media_codec: the first byte picks the target, the rest
// is the payload (or fmtp text). Decoders must answer Ok or BadPayload with at most the
// buffer's samples; nothing may crash, leak or hit UB.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string_view>

#include "medius/media/codec/codec.hpp"
#include "medius/media/codec/comfort_noise.hpp"
#include "medius/media/codec/transcoder.hpp"

namespace codec = medius::media::codec;
using codec::CodecId;

namespace {

struct Targets {
  std::array<std::unique_ptr<codec::Decoder>, 5> decoders;
  std::unique_ptr<codec::Transcoder> g729ToOpus, opusToPcmu, g722ToG729;
  Targets() {
    for (std::size_t i = 0; i < decoders.size(); ++i) {
      decoders[i] = codec::makeDecoder(static_cast<CodecId>(i));
    }
    codec::TranscoderConfig a;
    a.from = CodecId::G729;
    a.to = CodecId::Opus;
    g729ToOpus = std::make_unique<codec::Transcoder>(a);
    codec::TranscoderConfig b;
    b.from = CodecId::Opus;
    b.to = CodecId::Pcmu;
    b.toParams.ptimeMs = 30;
    opusToPcmu = std::make_unique<codec::Transcoder>(b);
    codec::TranscoderConfig c;
    c.from = CodecId::G722;
    c.to = CodecId::G729;
    c.toParams.ptimeMs = 40;
    g722ToG729 = std::make_unique<codec::Transcoder>(c);
  }
};

void check(bool ok) {
  if (!ok) std::abort();
}

void transcode(codec::Transcoder& t, std::span<const std::uint8_t> payload, bool lost) {
  static std::array<std::uint8_t, 32768> out;
  std::array<codec::TranscodedPacket, codec::Transcoder::kMaxPacketsPerCall> packets{};
  codec::TranscodeResult r =
      lost ? t.pushLost(960, payload, out, packets) : t.push(payload, out, packets);
  check(r.packets <= packets.size());
  for (std::size_t i = 0; i < r.packets; ++i) {
    check(packets[i].offset + packets[i].size <= out.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Targets targets;  // long-lived, like a leg's codec state across packets
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  std::span<const std::uint8_t> payload(data + 1, size - 1);
  static std::array<std::int16_t, codec::kMaxDecodedSamples> pcm;
  switch (selector % 10) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4: {
      codec::DecodeResult d = targets.decoders[selector % 5]->decode(payload, pcm);
      check(d.status == codec::CodecStatus::Ok || d.status == codec::CodecStatus::BadPayload);
      check(d.samples <= pcm.size());
      break;
    }
    case 5: {
      auto& opus = *targets.decoders[static_cast<std::size_t>(CodecId::Opus)];
      std::size_t samples = 120u * (1 + selector / 10 % 8);  // 2.5 ms steps at 48 kHz
      codec::DecodeResult d = opus.decodeFec(payload, samples, pcm);
      check(d.samples <= pcm.size());
      break;
    }
    case 6: {
      codec::CnPayload cn = codec::parseComfortNoise(payload);
      check(cn.levelDbov <= 127);
      static std::array<std::uint8_t, 32768> out;
      std::array<codec::TranscodedPacket, codec::Transcoder::kMaxPacketsPerCall> packets{};
      std::uint32_t span = payload.size() >= 3 ? (payload[1] << 8u) | payload[2] : 160u;
      codec::TranscodeResult r =
          targets.g722ToG729->pushComfortNoise(cn.levelDbov, span, out, packets);
      check(r.packets <= packets.size());
      break;
    }
    case 7: {
      codec::CodecParams params;
      std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
      (void)codec::applyFmtp(selector & 0x10 ? CodecId::G729 : CodecId::Opus, text, params);
      check(params.opus.maxPlaybackRate >= 8000 && params.opus.maxPlaybackRate <= 48000);
      break;
    }
    case 8:
      transcode(*targets.g729ToOpus, payload, false);
      break;
    case 9:
      transcode(selector & 0x10 ? *targets.g722ToG729 : *targets.opusToPcmu, payload,
                (selector & 0x20) != 0);
      break;
  }
  return 0;
}
