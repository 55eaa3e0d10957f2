// SRTP cost per packet through medius_media_srtp (libsrtp2 2.5.0, Debian's NSS backend):
// protect, unprotect, and unprotect+protect (an SRTP<->SRTP relay with different keys) of
// a 172-octet RTP packet (12-octet header + 160 octets: 20 ms of G.711), per suite.
// items_per_second is packets per second on one core. Issue 6's goal: passthrough
// SRTP<->RTP at >= 300,000 packets/s per core (one protect or one unprotect per packet).
//
//   build-h-srtp/bin/media_srtp_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "medius/media/srtp/session.hpp"

namespace {

using medius::media::srtp::CryptoSuite;
using medius::media::srtp::Direction;
using medius::media::srtp::generateKeyMaterial;
using medius::media::srtp::SrtpSession;
using medius::media::srtp::Status;

constexpr std::size_t kPayload = 160;
constexpr std::size_t kPacket = 12 + kPayload;
constexpr std::size_t kBatch = 4096;

void writeRtp(std::uint8_t* p, std::uint16_t seq) {
  p[0] = 0x80;
  p[1] = 0x00;
  p[2] = static_cast<std::uint8_t>(seq >> 8);
  p[3] = static_cast<std::uint8_t>(seq);
  const std::uint32_t ts = 160u * seq;
  p[4] = static_cast<std::uint8_t>(ts >> 24);
  p[5] = static_cast<std::uint8_t>(ts >> 16);
  p[6] = static_cast<std::uint8_t>(ts >> 8);
  p[7] = static_cast<std::uint8_t>(ts);
  p[8] = 0x12;
  p[9] = 0x34;
  p[10] = 0x56;
  p[11] = 0x78;
  for (std::size_t i = 0; i < kPayload; ++i) p[12 + i] = static_cast<std::uint8_t>(0xd5 ^ i);
}

// Fills `batch` with the next kBatch SRTP packets of `sender`.
void refill(SrtpSession& sender, std::vector<std::vector<std::uint8_t>>& batch, std::uint16_t& seq,
            std::vector<std::size_t>& lengths) {
  for (std::size_t i = 0; i < batch.size(); ++i) {
    writeRtp(batch[i].data(), seq++);
    std::size_t length = kPacket;
    if (sender.protectRtp(batch[i], length) != Status::Ok) std::abort();
    lengths[i] = length;
  }
}

void report(benchmark::State& state, CryptoSuite suite) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetLabel(std::string(medius::media::srtp::suiteName(suite)));
}

// Times `perPacket(buffer, length)` (returns its failures) on SRTP packets of `sender`,
// made kBatch at a time outside the timed region (an SRTP context refuses replays, so each
// packet is handled once).
template <typename PerPacket>
void runOnSrtpPackets(benchmark::State& state, CryptoSuite suite, SrtpSession& sender,
                      const char* failed, PerPacket perPacket) {
  std::vector<std::vector<std::uint8_t>> batch(kBatch, std::vector<std::uint8_t>(kPacket + 64));
  std::vector<std::size_t> lengths(kBatch);
  std::uint16_t seq = 0;
  std::size_t next = kBatch;
  std::int64_t failures = 0;
  for (auto _ : state) {
    if (next == kBatch) {
      state.PauseTiming();
      refill(sender, batch, seq, lengths);
      next = 0;
      state.ResumeTiming();
    }
    std::size_t length = lengths[next];
    failures += perPacket(std::span<std::uint8_t>(batch[next]), length);
    ++next;
  }
  if (failures != 0) state.SkipWithError(failed);
  report(state, suite);
}

void BM_Protect(benchmark::State& state) {
  const auto suite = static_cast<CryptoSuite>(state.range(0));
  SrtpSession out(suite, generateKeyMaterial(suite), Direction::Outbound);
  alignas(16) std::uint8_t buffer[kPacket + 64];
  std::uint16_t seq = 0;
  for (auto _ : state) {
    writeRtp(buffer, seq++);
    std::size_t length = kPacket;
    const Status status = out.protectRtp(buffer, length);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(buffer);
  }
  report(state, suite);
}

void BM_Unprotect(benchmark::State& state) {
  const auto suite = static_cast<CryptoSuite>(state.range(0));
  const auto key = generateKeyMaterial(suite);
  SrtpSession out(suite, key, Direction::Outbound);
  SrtpSession in(suite, key, Direction::Inbound);
  runOnSrtpPackets(state, suite, out, "unprotect failed",
                   [&in](std::span<std::uint8_t> packet, std::size_t& length) {
                     return std::int64_t{in.unprotectRtp(packet, length) != Status::Ok};
                   });
}

// SRTP in with the caller's key, SRTP out with ours: what an SRTP<->SRTP relay pays per
// packet (an SRTP<->RTP relay pays one of the two).
void BM_UnprotectThenProtect(benchmark::State& state) {
  const auto suite = static_cast<CryptoSuite>(state.range(0));
  const auto key = generateKeyMaterial(suite);
  SrtpSession peer(suite, key, Direction::Outbound);
  SrtpSession in(suite, key, Direction::Inbound);
  SrtpSession out(suite, generateKeyMaterial(suite), Direction::Outbound);
  runOnSrtpPackets(state, suite, peer, "unprotect or protect failed",
                   [&in, &out](std::span<std::uint8_t> packet, std::size_t& length) {
                     return std::int64_t{in.unprotectRtp(packet, length) != Status::Ok} +
                            std::int64_t{out.protectRtp(packet, length) != Status::Ok};
                   });
}

void suites(benchmark::internal::Benchmark* b) {
  for (int i = 0; i < static_cast<int>(medius::media::srtp::kSuiteCount); ++i) b->Arg(i);
}

BENCHMARK(BM_Protect)->Apply(suites);
BENCHMARK(BM_Unprotect)->Apply(suites);
BENCHMARK(BM_UnprotectThenProtect)->Apply(suites);

}  // namespace

BENCHMARK_MAIN();
