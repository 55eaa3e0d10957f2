// Per-packet cost of MediaPipeline (the relay worker's data plane without the sockets):
//   Relay/*      one 172-octet RTP packet (20 ms of G.711) through receive(): SRTP
//                unprotect on the source leg and/or protect on the target leg as the plan
//                says, PT rewrite, receive statistics. items_per_second = packets/s per core.
//   TranscodeCall one 20 ms frame each way of a PCMU <-> Opus call: receive() of both
//                packets, then tick()s over 20 ms (jitter buffer, decode, resample where
//                needed, encode, our RTP header). calls_per_core = iterations/s / 50.
//   WorkerRelay  the same packets through a running relay Worker over loopback UDP (the
//                benchmark thread sends bursts of 32 and drains the far side): the worker
//                thread's CPU time per packet, recvmmsg/sendmmsg included (process CPU minus
//                the benchmark thread's). worker_packets_per_core = 1 s / that.
// Issue 6's goal: passthrough SRTP<->RTP >= 300,000 packets/s per core; PCMU<->Opus >= 150
// calls per core. Relay and TranscodeCall exclude the syscalls; WorkerRelay includes them.
//
//   build-h-pipe/bin/media_pipeline_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "medius/media/codec/codec.hpp"
#include "medius/media/pipeline.hpp"
#include "medius/media/relay.hpp"
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
  return {suite, key, std::nullopt, {}};
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

std::uint64_t cpuNanos(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint16_t portOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// mode: 0 no pipeline (byte for byte), 1 pipeline RTP->RTP, 2 pipeline SRTP->RTP (AES_CM_80),
// 3 pipeline SRTP->RTP (AEAD_AES_128_GCM).
void BM_WorkerRelay(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  constexpr std::size_t kBurst = 32;
  constexpr std::size_t kBursts = 1800;
  prometheus::Registry registry;
  auto& packets = prometheus::BuildCounter().Name("p").Register(registry);
  auto& bytes = prometheus::BuildCounter().Name("b").Register(registry);
  TrafficCounters totals{packets.Add({{"d", "ab"}}), packets.Add({{"d", "ba"}}), bytes.Add({{"d", "ab"}}),
                         bytes.Add({{"d", "ba"}})};
  Fd peerA = bindUdp("127.0.0.1", 0);
  Fd peerB = bindUdp("127.0.0.1", 0);
  int big = 4 << 20;
  ::setsockopt(peerB.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  RelaySession session;
  for (RelayLeg& leg : session.legs) {
    leg.rtp = bindUdp("127.0.0.1", 0);
    leg.rtcp = bindUdp("127.0.0.1", 0);
    leg.localPort = portOf(leg.rtp.get());
    ::setsockopt(leg.rtp.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  }
  const auto suite = mode == 3 ? srtp::CryptoSuite::AeadAes128Gcm : srtp::CryptoSuite::AesCm128HmacSha1_80;
  const srtp::KeyMaterial peerKey = srtp::generateKeyMaterial(suite);
  std::unique_ptr<MediaPipeline> pipeline;
  if (mode != 0) {
    MediaPlan plan = relayPlan();
    if (mode >= 2) {
      plan.legs[0].inbound = params(suite, peerKey);
      plan.legs[0].outbound = params(suite, srtp::generateKeyMaterial(suite));
    }
    pipeline = std::make_unique<MediaPipeline>(plan);
  }
  Worker worker(0, totals, nullptr);
  worker.start();
  worker.run([&] {
    worker.attach(session);
    worker.setRemote(session, 0, {"127.0.0.1", portOf(peerA.get()), "", 0});
    worker.setRemote(session, 1, {"127.0.0.1", portOf(peerB.get()), "", 0});
    if (pipeline) worker.setPipeline(session, std::move(pipeline));
  });
  // Every packet made beforehand (SRTP: fresh sequence numbers for the replay window).
  std::vector<std::array<std::uint8_t, kPacket + 64>> all(kBurst * kBursts);
  std::vector<std::size_t> lengths(all.size());
  srtp::SrtpSession peer(suite, peerKey, srtp::Direction::Outbound);
  for (std::size_t i = 0; i < all.size(); ++i) {
    writeRtp(all[i].data(), static_cast<std::uint16_t>(i));
    std::size_t length = kPacket;
    if (mode >= 2 && peer.protectRtp(all[i], length) != srtp::Status::Ok) std::abort();
    lengths[i] = length;
  }
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(session.legs[0].localPort);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::array<iovec, kBurst> iov{};
  std::array<mmsghdr, kBurst> out{};
  std::array<std::array<std::uint8_t, 2048>, kBurst> rx{};
  std::array<iovec, kBurst> rxIov{};
  std::array<mmsghdr, kBurst> in{};
  for (std::size_t i = 0; i < kBurst; ++i) {
    rxIov[i] = {rx[i].data(), rx[i].size()};
    in[i].msg_hdr.msg_iov = &rxIov[i];
    in[i].msg_hdr.msg_iovlen = 1;
  }
  std::size_t burst = 0;
  std::size_t received = 0;
  const std::uint64_t process0 = cpuNanos(CLOCK_PROCESS_CPUTIME_ID);
  const std::uint64_t self0 = cpuNanos(CLOCK_THREAD_CPUTIME_ID);
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBurst; ++i) {
      const std::size_t k = burst * kBurst + i;
      iov[i] = {all[k].data(), lengths[k]};
      out[i] = {};
      out[i].msg_hdr.msg_name = &to;
      out[i].msg_hdr.msg_namelen = sizeof to;
      out[i].msg_hdr.msg_iov = &iov[i];
      out[i].msg_hdr.msg_iovlen = 1;
    }
    ::sendmmsg(peerA.get(), out.data(), kBurst, 0);
    std::size_t got = 0;
    while (got < kBurst) {
      pollfd p{peerB.get(), POLLIN, 0};
      if (::poll(&p, 1, 200) != 1) break;  // lost: counted by the totals below
      int n = ::recvmmsg(peerB.get(), in.data(), static_cast<unsigned>(kBurst - got), MSG_DONTWAIT, nullptr);
      if (n > 0) got += static_cast<std::size_t>(n);
    }
    received += got;
    ++burst;
  }
  const std::uint64_t process = cpuNanos(CLOCK_PROCESS_CPUTIME_ID) - process0;
  const std::uint64_t self = cpuNanos(CLOCK_THREAD_CPUTIME_ID) - self0;
  worker.run([&] { worker.detach(session); });
  worker.stop();
  const double perPacket =
      static_cast<double>(process - self) / static_cast<double>(std::max<std::size_t>(received, 1));
  state.counters["worker_ns_per_packet"] = perPacket;
  state.counters["worker_packets_per_core"] = 1e9 / perPacket;
  state.counters["delivered"] = static_cast<double>(received) / static_cast<double>(burst * kBurst);
}
BENCHMARK(BM_WorkerRelay)
    ->ArgName("mode")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Arg(3)
    ->Iterations(1800)
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
