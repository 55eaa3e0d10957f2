// How busy a session makes its worker, in percent of one core (estimated), so that workers
// can refuse sessions above a limit and gateways can spread sessions by load (issue 6,
// "capacity signals").
//
// The estimate is CPU time per second of call, from costs measured on a worker carrying real
// calls (bench/media_load.cpp) and the codec micro-benchmarks (bench/media_codec_bench.cpp),
// on the 2-core EPYC development VM (docs/performance.md):
//   - every packet: wake-up, receive, parse and send, ~8 us; a call carries ~50 packets/s
//     each way;
//   - SRTP: ~3 us per protect or unprotect under load (libsrtp2 on OpenSSL's primitives,
//     srtp/openssl_crypto.hpp; AES-CM and GCM alike);
//   - a transcoded direction: decoding its source and encoding its target every 20 ms (the
//     per-codec figures are encode+decode of one 20 ms frame, halved per direction), plus
//     ~10 us per frame for the jitter buffer, our RTP header and the playout tick.
// So a relayed plain call is ~0.08 % of a core, a relayed SRTP<->RTP call ~0.11 %, a
// PCMU<->G.722 call ~0.22 % (G.722's lower sub-band at 8 kHz next to G.711) and a PCMU<->Opus
// call with SRTP on the Opus side ~0.64 %: about eight relayed calls.
//
// Thread: pure functions.
#pragma once

#include "medius/media/codec/codec.hpp"
#include "medius/media/media_plan.hpp"

namespace medius::media {

// Encode + decode of one 20 ms frame of `codec`, in microseconds (benchmark figures; Opus
// at 48 kHz: 216. Next to a narrowband leg the transcoder runs Opus at 8 kHz, ~85 us, next
// to G.722 at 16 kHz, ~162 us, and G.722 next to a narrowband leg at 8 kHz, ~8.5 us;
// sessionLoad() counts that).
double codecFrameMicros(codec::CodecId codec);

// The load of a session with this plan, in percent of one core.
double sessionLoad(const MediaPlan& plan);

// Before any answer: a relayed call, or a transcoded one when `transcoding` (the offer and
// the other side have no codec in common), between `a` and `b` (the likely codecs).
double estimatedLoad(bool transcoding, codec::CodecId a, codec::CodecId b, bool srtpA, bool srtpB);

}  // namespace medius::media
