#include "medius/media/load.hpp"

namespace medius::media {

namespace {

// Measured on a worker under real call load (bench/media_load.cpp, docs/performance.md): at
// one packet per socket every 20 ms each packet pays its own wake-up and system calls. SRTP
// runs on OpenSSL's primitives (srtp/openssl_crypto.hpp): ~3 us per operation under load
// (it was 15 us on Debian's NSS build).
constexpr double kPacketsPerSecond = 50.0;      // each way, at 20 ms
constexpr double kPacketMicros = 8.0;           // receive, parse, send (kernel included)
constexpr double kSrtpMicros = 3.0;             // one protect or unprotect (AES-CM or GCM)
constexpr double kFramesPerSecond = 50.0;
constexpr double kTranscodedFrameMicros = 10.0;  // jitter buffer, our RTP header, playout tick

// Microseconds of CPU per second of call -> percent of one core.
double percent(double microsPerSecond) { return microsPerSecond / 10'000.0; }

double transportMicros(bool srtpA, bool srtpB) {
  // Two flows; each packet is received on one leg and sent on the other: SRTP work per
  // packet is one unprotect on an SRTP source leg and one protect on an SRTP target leg.
  double perPacket = kPacketMicros + (srtpA ? kSrtpMicros : 0.0) + (srtpB ? kSrtpMicros : 0.0);
  return 2.0 * kPacketsPerSecond * perPacket;
}

// Encode + decode of `codec` next to a leg using `partner`: Opus runs at the partner's rate
// (codec::TranscoderConfig::matchOpusRate): 8 kHz next to G.711/G.729, 16 kHz next to G.722;
// G.722 next to G.711/G.729 codes its lower sub-band only, at 8 kHz (matchG722Rate).
double frameMicros(codec::CodecId codec, codec::CodecId partner) {
  if (codec == codec::CodecId::G722 && codec::narrowband(partner)) return 8.5;
  if (codec != codec::CodecId::Opus) return codecFrameMicros(codec);
  if (codec::narrowband(partner)) return 85.0;
  return partner == codec::CodecId::G722 ? 162.0 : 216.0;
}

double transcodeMicros(codec::CodecId a, codec::CodecId b) {
  // A->B decodes A and encodes B, B->A the reverse: together one encode+decode of each.
  return kFramesPerSecond * (frameMicros(a, b) + frameMicros(b, a) + 2 * kTranscodedFrameMicros);
}

}  // namespace

double codecFrameMicros(codec::CodecId codec) {
  switch (codec) {
    case codec::CodecId::Pcmu: return 0.4;
    case codec::CodecId::Pcma: return 0.45;
    case codec::CodecId::G722: return 22.0;
    case codec::CodecId::G729: return 61.0;
    case codec::CodecId::Opus: return 216.0;
  }
  return 216.0;
}

double sessionLoad(const MediaPlan& plan) {
  double micros = transportMicros(plan.legs[0].inbound.has_value(), plan.legs[1].inbound.has_value());
  if (plan.transcoding() && plan.legs[0].codec && plan.legs[1].codec) {
    micros += transcodeMicros(*plan.legs[0].codec, *plan.legs[1].codec);
  }
  return percent(micros);
}

double estimatedLoad(bool transcoding, codec::CodecId a, codec::CodecId b, bool srtpA, bool srtpB) {
  double micros = transportMicros(srtpA, srtpB);
  if (transcoding) micros += transcodeMicros(a, b);
  return percent(micros);
}

}  // namespace medius::media
