// medius_media_codec micro-benchmarks.
//
//   build-h-codec/bin/media_codec_bench --benchmark_min_time=0.5
//
// Codec/*: encode + decode of one 20 ms frame. Transcode/*: both directions of a transcoded
// call for one 20 ms frame (A->B push of one A payload, and B->A push of one B payload:
// decode, resample, re-packetise, encode). The `calls_per_core` counter is
// 1 s / (time per 20 ms frame, both directions, x 50 frames/s): how many transcoded calls
// one core sustains. Issue 6 goals: PCMU<->G.722 >= 400, PCMU<->Opus >= 150.
//
// Input is a speech-like signal (harmonics of a changing pitch under a syllable envelope,
// plus a little noise) so that Opus and G.729 do real work, not a pure tone's shortcut.
#include <benchmark/benchmark.h>

#include <array>
#include <cmath>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "medius/media/codec/codec.hpp"
#include "medius/media/codec/resampler.hpp"
#include "medius/media/codec/transcoder.hpp"

namespace codec = medius::media::codec;
using codec::CodecId;

namespace {

// One second of speech-like PCM at `rate`.
std::vector<std::int16_t> speechLike(std::uint32_t rate) {
  std::vector<std::int16_t> x(rate);
  std::mt19937 rng(1);
  std::normal_distribution<double> noise(0, 200);
  double phase = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double t = static_cast<double>(i) / rate;
    double pitch = 140 + 40 * std::sin(2 * std::numbers::pi * 1.3 * t);
    phase += 2 * std::numbers::pi * pitch / rate;
    double env = 0.55 + 0.45 * std::sin(2 * std::numbers::pi * 4 * t);
    double v = 0;
    for (int h = 1; h <= 12; ++h) {
      if (pitch * h >= rate / 2.0) break;
      v += std::sin(h * phase) / h;
    }
    x[i] = static_cast<std::int16_t>(std::clamp(6000 * env * v + noise(rng), -32000.0, 32000.0));
  }
  return x;
}

// One second of payloads of `id` (20 ms), encoded from the speech-like signal.
std::vector<std::vector<std::uint8_t>> payloads(CodecId id, const codec::CodecParams& params) {
  auto enc = codec::makeEncoder(id, params);
  auto pcm = speechLike(enc->sampleRate());
  std::vector<std::vector<std::uint8_t>> out;
  std::array<std::uint8_t, codec::kMaxPayloadBytes> buf{};
  for (std::size_t off = 0; off + enc->samplesPerPacket() <= pcm.size();
       off += enc->samplesPerPacket()) {
    auto r = enc->encode(std::span(pcm.data() + off, enc->samplesPerPacket()), buf);
    out.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(r.bytes));
  }
  return out;
}

void codecRoundTrip(benchmark::State& state, CodecId id, codec::CodecParams params) {
  auto enc = codec::makeEncoder(id, params);
  auto dec = codec::makeDecoder(id, params);
  auto pcm = speechLike(enc->sampleRate());
  const std::size_t frame = enc->samplesPerPacket();
  std::array<std::uint8_t, codec::kMaxPayloadBytes> buf{};
  std::array<std::int16_t, codec::kMaxDecodedSamples> out{};
  std::size_t off = 0;
  for (auto _ : state) {
    auto e = enc->encode(std::span(pcm.data() + off, frame), buf);
    if (e.bytes > 0) benchmark::DoNotOptimize(dec->decode(std::span(buf.data(), e.bytes), out));
    off = off + 2 * frame <= pcm.size() ? off + frame : 0;
  }
}

struct Side {
  CodecId id;
  codec::CodecParams params;
};

void transcodePair(benchmark::State& state, Side a, Side b, bool matchOpusRate) {
  codec::TranscoderConfig ab;
  ab.from = a.id;
  ab.fromParams = a.params;
  ab.to = b.id;
  ab.toParams = b.params;
  ab.matchOpusRate = matchOpusRate;
  codec::TranscoderConfig ba;
  ba.from = b.id;
  ba.fromParams = b.params;
  ba.to = a.id;
  ba.toParams = a.params;
  ba.matchOpusRate = matchOpusRate;
  codec::Transcoder t1(ab), t2(ba);
  auto inA = payloads(a.id, a.params), inB = payloads(b.id, b.params);
  std::vector<std::uint8_t> out1(t1.outputCapacity()), out2(t2.outputCapacity());
  std::array<codec::TranscodedPacket, codec::Transcoder::kMaxPacketsPerCall> packets{};
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(t1.push(inA[i % inA.size()], out1, packets));
    benchmark::DoNotOptimize(t2.push(inB[i % inB.size()], out2, packets));
    ++i;
  }
  // Iterations per second / 50 = calls per core (each iteration is 20 ms of both directions).
  state.counters["calls_per_core"] =
      benchmark::Counter(1.0 / 50, benchmark::Counter::kIsIterationInvariantRate);
}

void resample(benchmark::State& state, std::uint32_t from, std::uint32_t to, int quality) {
  codec::Resampler r(from, to, quality);
  auto pcm = speechLike(from);
  std::vector<std::int16_t> out(r.maxOutput(from / 50));
  std::size_t off = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(r.process(std::span(pcm.data() + off, from / 50), out));
    off = off + 2 * (from / 50) <= pcm.size() ? off + from / 50 : 0;
  }
}

codec::CodecParams opus(int complexity, bool lowDelay = false, std::uint32_t maxPlayback = 48000) {
  codec::CodecParams p;
  p.opus.complexity = complexity;
  p.opus.restrictedLowDelay = lowDelay;
  p.opus.maxPlaybackRate = maxPlayback;
  p.opus.useInbandFec = true;  // what WebRTC peers offer: the encoder also codes LBRR data
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  using benchmark::RegisterBenchmark;
  const codec::CodecParams none;
  for (CodecId id : {CodecId::Pcmu, CodecId::Pcma, CodecId::G722, CodecId::G729}) {
    RegisterBenchmark(("Codec/" + std::string(codec::codecInfo(id).encodingName)).c_str(),
                      codecRoundTrip, id, none);
  }
  for (int c : {0, 5, 10}) {
    RegisterBenchmark(("Codec/opus48k/complexity:" + std::to_string(c)).c_str(), codecRoundTrip,
                      CodecId::Opus, opus(c));
  }
  RegisterBenchmark("Codec/opus48k/lowdelay/complexity:5", codecRoundTrip, CodecId::Opus,
                    opus(5, true));
  RegisterBenchmark("Codec/opus16k/complexity:5", codecRoundTrip, CodecId::Opus,
                    opus(5, false, 16000));
  RegisterBenchmark("Codec/opus8k/complexity:5", codecRoundTrip, CodecId::Opus,
                    opus(5, false, 8000));

  const Side pcmu{CodecId::Pcmu, none}, pcma{CodecId::Pcma, none}, g722{CodecId::G722, none},
      g729{CodecId::G729, none};
  RegisterBenchmark("Transcode/PCMU<->G722", transcodePair, pcmu, g722, true);
  RegisterBenchmark("Transcode/PCMA<->G722", transcodePair, pcma, g722, true);
  RegisterBenchmark("Transcode/PCMU<->G729", transcodePair, pcmu, g729, true);
  for (int c : {0, 3, 5, 10}) {
    RegisterBenchmark(("Transcode/PCMU<->opus48k+resample/complexity:" + std::to_string(c)).c_str(),
                      transcodePair, pcmu, Side{CodecId::Opus, opus(c)}, false);
  }
  RegisterBenchmark("Transcode/PCMU<->opus48k+resample/lowdelay/complexity:5", transcodePair, pcmu,
                    Side{CodecId::Opus, opus(5, true)}, false);
  RegisterBenchmark("Transcode/PCMU<->opus16k+resample/complexity:5", transcodePair, pcmu,
                    Side{CodecId::Opus, opus(5, false, 16000)}, false);
  for (int c : {0, 3, 5, 10}) {
    RegisterBenchmark(("Transcode/PCMU<->opus@8k(matched)/complexity:" + std::to_string(c)).c_str(),
                      transcodePair, pcmu, Side{CodecId::Opus, opus(c)}, true);
  }
  RegisterBenchmark("Transcode/G722<->opus@16k(matched)/complexity:5", transcodePair, g722,
                    Side{CodecId::Opus, opus(5)}, true);

  for (auto [from, to] : {std::pair{8000u, 16000u}, std::pair{16000u, 8000u},
                          std::pair{8000u, 48000u}, std::pair{48000u, 8000u}}) {
    for (int q : {1, codec::Resampler::kDefaultQuality, 5}) {
      RegisterBenchmark(("Resample20ms/" + std::to_string(from) + "->" + std::to_string(to) +
                         "/quality:" + std::to_string(q))
                            .c_str(),
                        resample, from, to, q);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
