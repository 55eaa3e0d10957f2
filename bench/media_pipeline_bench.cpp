// Per-packet cost of MediaPipeline (the relay worker's data plane without the sockets):
//   Relay/*      one 172-octet RTP packet (20 ms of G.711) through receive(): SRTP
//                unprotect on the source leg and/or protect on the target leg as the plan
//                says, PT rewrite, receive statistics. items_per_second = packets/s per core.
//   TranscodeCall one 20 ms frame each way of a PCMU <-> Opus call: receive() of both
//                packets, then tick()s over 20 ms (jitter buffer, decode, resample where
//                needed, encode, our RTP header). calls_per_core = iterations/s / 50.
// Issue 6's goal: passthrough SRTP<->RTP >= 300,000 packets/s per core; PCMU<->Opus >= 150
// calls per core. The syscalls (recvmmsg/sendmmsg) are not included.
//
//   build-h-pipe/bin/media_pipeline_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "medius/media/codec/codec.hpp"
#include "medius/media/pipeline.hpp"
#include "medius/media/rtp/packet.hpp"
#include "medius/media/srtp/keys.hpp"
#include "medius/media/srtp/session.hpp"

namespace {

using namespace medius::media;

constexpr std::size_t kPayload = 160;
constexpr std::size_t kPacket = rtp::kRtpHeaderSize + kPayload;
constexpr std::size_t kBatch = 4096;
constexpr std::uint64_t kMs = 1'000'000;

MediaPlan relayPlan() {
  MediaPlan plan;
  for (auto& flow : plan.flows) {
    flow.payloadMap[0] = 0;
    flow.payloadMap[101] = 101;
  }
  return plan;
}

SrtpParams params(srtp::CryptoSuite suite, const srtp::KeyMaterial& key) {
  return {suite, key, std::nullopt};
}

void writeRtp(std::uint8_t* p, std::uint16_t seq) {
  rtp::writeRtpHeader({p, kPacket}, {0, false, seq, 160u * seq, 0x12345678});
  for (std::size_t i = 0; i < kPayload; ++i) p[rtp::kRtpHeaderSize + i] = static_cast<std::uint8_t>(0xd5 ^ i);
}

// mode: 0 RTP->RTP, 1 SRTP->RTP, 2 RTP->SRTP, 3 SRTP->SRTP (different keys); range(1): suite.
void BM_Relay(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  const auto suite = static_cast<srtp::CryptoSuite>(state.range(1));
  const bool srtpIn = mode == 1 || mode == 3;
  const bool srtpOut = mode == 2 || mode == 3;
  if (!srtp::suiteAvailable(suite)) {
    state.SkipWithError("suite not available");
    return;
  }
  MediaPlan plan = relayPlan();
  const srtp::KeyMaterial peerKey = srtp::generateKeyMaterial(suite);
  if (srtpIn) plan.legs[0].inbound = params(suite, peerKey);
  if (srtpIn) plan.legs[0].outbound = params(suite, srtp::generateKeyMaterial(suite));
  if (srtpOut) plan.legs[1].inbound = params(suite, srtp::generateKeyMaterial(suite));
  if (srtpOut) plan.legs[1].outbound = params(suite, srtp::generateKeyMaterial(suite));
  MediaPipeline pipeline(plan);
  PacketSink sink;
  srtp::SrtpSession peer(suite, peerKey, srtp::Direction::Outbound);

  // Packets as leg A's peer sends them, made fresh per batch outside the timing (SRTP's
  // replay window refuses a packet twice).
  std::vector<std::array<std::uint8_t, kPacket + 64>> batch(kBatch);
  std::vector<std::size_t> lengths(kBatch);
  alignas(16) std::array<std::uint8_t, 4096 + 64> buffer{};
  std::uint16_t seq = 0;
  std::uint64_t now = 1000 * kMs;
  auto refill = [&] {
    for (std::size_t i = 0; i < kBatch; ++i) {
      writeRtp(batch[i].data(), seq++);
      std::size_t length = kPacket;
      if (srtpIn && peer.protectRtp(batch[i], length) != srtp::Status::Ok) std::abort();
      lengths[i] = length;
    }
  };
  refill();
  std::size_t next = 0;
  std::size_t sent = 0;
  while (state.KeepRunningBatch(kBatch)) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      // The receive buffer is rewritten in place, as the worker's recvmmsg buffer would be.
      std::copy_n(batch[next + i].data(), lengths[next + i], buffer.data());
      pipeline.receive(0, false, buffer, lengths[next + i], now, sink);
      sent += sink.packets().size();
      sink.clear();
      now += 20 * kMs / kBatch;
    }
    state.PauseTiming();
    refill();
    state.ResumeTiming();
  }
  if (sent != static_cast<std::size_t>(state.iterations())) state.SkipWithError("packets were dropped");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void relayArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"mode", "suite"});
  b->Args({0, 0});
  for (int mode : {1, 2, 3}) {
    for (auto suite : {srtp::CryptoSuite::AesCm128HmacSha1_80, srtp::CryptoSuite::AeadAes128Gcm}) {
      b->Args({mode, static_cast<int>(suite)});
    }
  }
}
BENCHMARK(BM_Relay)->Apply(relayArgs);

// A PCMU (A) <-> Opus (B) call: one 20 ms frame each way per iteration.
void BM_TranscodeCall(benchmark::State& state) {
  MediaPlan plan;
  const struct {
    codec::CodecId id;
    std::uint8_t pt;
  } sides[2] = {{codec::CodecId::Pcmu, 0}, {codec::CodecId::Opus, 111}};
  for (int i = 0; i < 2; ++i) {
    const auto& from = sides[i];
    const auto& to = sides[1 - i];
    auto& flow = plan.flows[static_cast<std::size_t>(i)];
    flow.mode = FlowPlan::Mode::Transcode;
    flow.transcoder.from = from.id;
    flow.transcoder.to = to.id;
    flow.sourcePt = from.pt;
    flow.targetPt = to.pt;
    flow.sourceClock = codec::codecInfo(from.id).rtpClockRate;
    flow.targetClock = codec::codecInfo(to.id).rtpClockRate;
    plan.legs[static_cast<std::size_t>(i)].codecClock = flow.sourceClock;
  }
  MediaPipeline pipeline(plan);
  PacketSink sink;
  // 20 ms of speech-like signal per side, encoded once (the decoder's work does not depend
  // much on the content; the encoder sees our decoded audio).
  auto payload = [](codec::CodecId id) {
    auto encoder = codec::makeEncoder(id, {});
    std::vector<std::int16_t> pcm(encoder->samplesPerPacket());
    for (std::size_t i = 0; i < pcm.size(); ++i) {
      pcm[i] = static_cast<std::int16_t>(8000 * ((i * 1000 / encoder->sampleRate()) % 2 ? 1 : -1) / 3 +
                                         static_cast<int>(i * 37 % 2000) - 1000);
    }
    std::vector<std::uint8_t> out(codec::kMaxPayloadBytes);
    out.resize(encoder->encode(pcm, out).bytes);
    return out;
  };
  const std::vector<std::uint8_t> payloads[2] = {payload(codec::CodecId::Pcmu),
                                                 payload(codec::CodecId::Opus)};
  alignas(16) std::array<std::uint8_t, 4096 + 64> buffer{};
  std::uint64_t now = 1000 * kMs;
  std::uint16_t seq = 0;
  std::size_t sent = 0;
  auto receive = [&](int leg) {
    const auto& p = payloads[leg];
    const std::uint32_t increment = leg == 0 ? 160 : 960;
    rtp::writeRtpHeader(
        buffer, {sides[leg].pt, false, seq, seq * increment, 0xa0u + static_cast<std::uint32_t>(leg)});
    std::copy(p.begin(), p.end(), buffer.begin() + rtp::kRtpHeaderSize);
    pipeline.receive(leg, false, buffer, rtp::kRtpHeaderSize + p.size(), now, sink);
  };
  for (auto _ : state) {
    receive(0);
    receive(1);
    ++seq;
    for (int t = 0; t < 4; ++t) {
      now += 5 * kMs;
      pipeline.tick(now, sink);
      sent += sink.packets().size();
      sink.clear();
    }
  }
  if (sent + 8 < 2 * static_cast<std::size_t>(state.iterations())) state.SkipWithError("frames were lost");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["calls_per_core"] =
      benchmark::Counter(static_cast<double>(state.iterations()) / 50.0, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TranscodeCall);

}  // namespace

BENCHMARK_MAIN();
