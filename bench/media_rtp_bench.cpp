// Per-packet costs of medius_media_rtp: RTP parse, receive statistics update, RTCP parse and
// build, jitter buffer put+get, telephone-event mapping. Run in a RelWithDebInfo build:
//   build/bin/media_rtp_bench
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>

#include "medius/media/rtp/dtmf.hpp"
#include "medius/media/rtp/jitter_buffer.hpp"
#include "medius/media/rtp/packet.hpp"
#include "medius/media/rtp/rtcp.hpp"
#include "medius/media/rtp/stats.hpp"

namespace {

using namespace medius::media::rtp;

constexpr std::uint64_t kMs = 1'000'000;

std::array<std::uint8_t, 172> pcmuPacket() {
  std::array<std::uint8_t, 172> p{};
  writeRtpHeader(
      p, RtpHeader{.payloadType = 0, .marker = false, .sequence = 1, .timestamp = 160, .ssrc = 0x1234});
  return p;
}

void BM_ParseRtp(benchmark::State& state) {
  auto packet = pcmuPacket();
  std::uint16_t seq = 0;
  for (auto _ : state) {
    setSequence(packet, ++seq);
    RtpView v;
    benchmark::DoNotOptimize(parseRtp(packet, v));
    benchmark::DoNotOptimize(v.payload.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseRtp);

void BM_ReceiveStatsUpdate(benchmark::State& state) {
  ReceiveStats stats(8000);
  std::uint32_t i = 0;
  for (auto _ : state) {
    ++i;
    // Every 50th packet lost, arrival with a little jitter.
    if (i % 50 == 0) ++i;
    benchmark::DoNotOptimize(
        stats.receive(static_cast<std::uint16_t>(i), 160 * i, 20 * kMs * i + (i % 3) * kMs));
  }
  benchmark::DoNotOptimize(stats.cumulativeLost());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReceiveStatsUpdate);

void BM_RtcpBuildSr(benchmark::State& state) {
  std::array<std::uint8_t, 256> buf{};
  const std::array<ReportBlock, 1> blocks{ReportBlock{.ssrc = 5,
                                                      .fractionLost = 3,
                                                      .cumulativeLost = 10,
                                                      .extHighestSeq = 70000,
                                                      .jitter = 40,
                                                      .lastSr = 0x12345678,
                                                      .delaySinceLastSr = 1000}};
  SenderInfo si{.ntpTimestamp = 0xe1a2b3c4d5e6f708ull, .rtpTimestamp = 0, .packetCount = 0, .octetCount = 0};
  for (auto _ : state) {
    ++si.packetCount;
    benchmark::DoNotOptimize(writeSenderReport(buf, 0x1234, si, blocks, "medius-worker-1@example.net"));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RtcpBuildSr);

void BM_RtcpParseSr(benchmark::State& state) {
  std::array<std::uint8_t, 256> buf{};
  const std::array<ReportBlock, 1> blocks{ReportBlock{.ssrc = 5}};
  const std::size_t n = writeSenderReport(buf, 0x1234, SenderInfo{}, blocks, "medius-worker-1@example.net");
  const std::span<const std::uint8_t> packet(buf.data(), n);
  RtcpInfo info;
  for (auto _ : state) {
    benchmark::DoNotOptimize(parseRtcp(packet, info));
    benchmark::DoNotOptimize(info.blockCount);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RtcpParseSr);

void BM_JitterBufferPutGet(benchmark::State& state) {
  JitterBufferConfig c;
  c.clockRate = 8000;
  c.adaptive = state.range(0) != 0;
  JitterBuffer jb(c);
  const std::array<std::uint8_t, 160> payload{};
  std::uint32_t i = 0;
  for (auto _ : state) {
    ++i;
    const std::uint64_t now = 20 * kMs * i;
    jb.put(0x1234, static_cast<std::uint16_t>(i), 160 * i, 0, false, payload, now);
    benchmark::DoNotOptimize(jb.get(now));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JitterBufferPutGet)->Arg(0)->Arg(1);

void BM_TelephoneEventMap(benchmark::State& state) {
  const RtpClockMap clock{.inRate = 8000, .outRate = 48000, .inAnchor = 0, .outAnchor = 0};
  TelephoneEventMapper mapper;
  std::array<MappedEvent, 2> out{};
  std::array<std::uint8_t, 4> payload{};
  std::uint16_t duration = 0;
  for (auto _ : state) {
    duration = static_cast<std::uint16_t>(duration + 160);
    writeTelephoneEvent(payload, {.event = 5, .end = false, .volume = 10, .duration = duration});
    benchmark::DoNotOptimize(mapper.map(8000, false, payload, clock, out));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TelephoneEventMap);

}  // namespace

BENCHMARK_MAIN();
