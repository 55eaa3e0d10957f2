// Receive statistics (RFC 3550 A.1, A.3, A.8), round-trip time (6.4.1) and sender counters,
// on synthetic schedules with hand-computed answers.
#include "medius/media/rtp/stats.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>

namespace medius::media::rtp {
namespace {

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kBase = 5'000 * kMs;  // arbitrary monotonic origin

// Feeds sequence numbers sent every 20 ms at 8 kHz (ts = 160 * index from `first`), each
// arriving exactly on time.
void feed(ReceiveStats& s, std::initializer_list<int> seqs, int first) {
  for (int seq : seqs) {
    const auto index = static_cast<std::uint16_t>(seq - first);
    s.receive(static_cast<std::uint16_t>(seq), 160u * index, kBase + 20 * kMs * index);
  }
}

TEST(ReceiveStats, ProbationThenCleanStream) {
  ReceiveStats s(8000);
  EXPECT_EQ(s.receive(1000, 0, kBase), SeqResult::Probation);
  EXPECT_FALSE(s.validated());
  EXPECT_EQ(s.receive(1001, 160, kBase + 20 * kMs), SeqResult::Valid);
  EXPECT_TRUE(s.validated());
  for (int i = 2; i < 10; ++i) {
    EXPECT_EQ(s.receive(static_cast<std::uint16_t>(1000 + i), 160u * i, kBase + 20 * kMs * i),
              SeqResult::Valid);
  }
  EXPECT_EQ(s.received(), 10u);
  EXPECT_EQ(s.expected(), 10);
  EXPECT_EQ(s.cumulativeLost(), 0);
  EXPECT_EQ(s.jitter(), 0u);
  const ReportBlock b = s.makeReportBlock(0xabc, kBase + 200 * kMs);
  EXPECT_EQ(b.ssrc, 0xabcu);
  EXPECT_EQ(b.fractionLost, 0);
  EXPECT_EQ(b.cumulativeLost, 0);
  EXPECT_EQ(b.extHighestSeq, 1009u);
  EXPECT_EQ(b.lastSr, 0u);
  EXPECT_EQ(b.delaySinceLastSr, 0u);
}

TEST(ReceiveStats, ProbationRestartsOnOutOfOrderCandidate) {
  ReceiveStats s(8000);
  EXPECT_EQ(s.receive(10, 0, kBase), SeqResult::Probation);
  EXPECT_EQ(s.receive(50, 160, kBase + 20 * kMs), SeqResult::Probation);
  EXPECT_EQ(s.receive(51, 320, kBase + 40 * kMs), SeqResult::Valid);
  EXPECT_EQ(s.expected(), 2);
  EXPECT_EQ(s.received(), 2u);
}

TEST(ReceiveStats, LossAndFractionPerInterval) {
  ReceiveStats s(8000);
  // 100..119 without 102 and 105: 18 of 20.
  feed(s, {100, 101, 103, 104, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119}, 100);
  EXPECT_EQ(s.expected(), 20);
  EXPECT_EQ(s.received(), 18u);
  EXPECT_DOUBLE_EQ(s.lossPercent(), 10.0);
  ReportBlock b = s.makeReportBlock(1, kBase);
  EXPECT_EQ(b.cumulativeLost, 2);
  EXPECT_EQ(b.fractionLost, 25);  // (2 << 8) / 20 = 25.6, truncated (A.3)
  EXPECT_EQ(b.extHighestSeq, 119u);
  // Next interval: 120..129 complete -> fraction 0, cumulative still 2.
  feed(s, {120, 121, 122, 123, 124, 125, 126, 127, 128, 129}, 100);
  b = s.makeReportBlock(1, kBase);
  EXPECT_EQ(b.fractionLost, 0);
  EXPECT_EQ(b.cumulativeLost, 2);
  // Third interval: 130..133 with 131 lost: (1 << 8) / 4 = 64.
  feed(s, {130, 132, 133}, 100);
  b = s.makeReportBlock(1, kBase);
  EXPECT_EQ(b.fractionLost, 64);
  EXPECT_EQ(b.cumulativeLost, 3);
}

TEST(ReceiveStats, ReorderedPacketIsNotLoss) {
  ReceiveStats s(8000);
  std::uint16_t seqs[] = {1, 2, 3, 5, 4, 6};
  SeqResult results[6];
  for (int i = 0; i < 6; ++i) results[i] = s.receive(seqs[i], 160u * seqs[i], kBase + 20 * kMs * i);
  EXPECT_EQ(results[3], SeqResult::Valid);
  EXPECT_EQ(results[4], SeqResult::Reordered);
  EXPECT_EQ(s.reordered(), 1u);
  EXPECT_EQ(s.expected(), 6);
  EXPECT_EQ(s.received(), 6u);
  EXPECT_EQ(s.cumulativeLost(), 0);
  EXPECT_EQ(s.extendedHighestSeq(), 6u);
}

TEST(ReceiveStats, DuplicatesCountAsReceivedSoLossGoesNegative) {
  ReceiveStats s(8000);
  EXPECT_EQ(s.receive(1, 0, kBase), SeqResult::Probation);
  EXPECT_EQ(s.receive(2, 160, kBase), SeqResult::Valid);
  EXPECT_EQ(s.receive(2, 160, kBase), SeqResult::Duplicate);  // the newest again
  EXPECT_EQ(s.receive(3, 320, kBase), SeqResult::Valid);
  EXPECT_EQ(s.receive(1, 0, kBase), SeqResult::Duplicate);  // an older one again
  EXPECT_EQ(s.receive(4, 480, kBase), SeqResult::Valid);
  EXPECT_EQ(s.duplicates(), 2u);
  EXPECT_EQ(s.received(), 6u);
  EXPECT_EQ(s.expected(), 4);
  const ReportBlock b = s.makeReportBlock(1, kBase);
  EXPECT_EQ(b.cumulativeLost, -2);  // A.3: duplicates make loss negative
  EXPECT_DOUBLE_EQ(s.lossPercent(), 0.0);
  EXPECT_EQ(b.fractionLost, 0);     // negative interval loss reports 0
}

TEST(ReceiveStats, SequenceWrapAt65535) {
  ReceiveStats s(8000);
  // 65533, 65534, 65535, (0 lost), 1, 2, 3, 4
  const int seqs[] = {65533, 65534, 65535, 1, 2, 3, 4};
  for (int i = 0; i < 7; ++i) {
    const auto seq = static_cast<std::uint16_t>(seqs[i]);
    const auto index = static_cast<std::uint16_t>(seq - 65533);
    s.receive(seq, 160u * index, kBase + 20 * kMs * index);
  }
  EXPECT_EQ(s.extendedHighestSeq(), 65536u + 4);
  EXPECT_EQ(s.expected(), 8);
  EXPECT_EQ(s.received(), 7u);
  EXPECT_EQ(s.cumulativeLost(), 1);
  EXPECT_EQ(s.makeReportBlock(1, kBase).extHighestSeq, 0x00010004u);
  // A packet from before the wrap arriving late is a reorder, not a new cycle.
  EXPECT_EQ(s.receive(0, 160u * 3, kBase + 200 * kMs), SeqResult::Reordered);
  EXPECT_EQ(s.cumulativeLost(), 0);
  EXPECT_EQ(s.extendedHighestSeq(), 65540u);
}

TEST(ReceiveStats, LargeJumpIsDroppedThenRestartsTheSource) {
  ReceiveStats s(8000);
  feed(s, {1, 2, 3, 4, 5}, 1);
  EXPECT_EQ(s.receive(40000, 0, kBase + 200 * kMs), SeqResult::BadJump);
  EXPECT_EQ(s.badJumps(), 1u);
  EXPECT_EQ(s.received(), 5u);
  EXPECT_EQ(s.receive(40001, 160, kBase + 220 * kMs), SeqResult::Restarted);
  EXPECT_EQ(s.received(), 1u);
  EXPECT_EQ(s.expected(), 1);
  EXPECT_EQ(s.receive(40002, 320, kBase + 240 * kMs), SeqResult::Valid);
  EXPECT_EQ(s.expected(), 2);
}

TEST(ReceiveStats, JitterOnSyntheticScheduleMatchesHandComputation) {
  // 8 kHz, 20 ms packets (160 units). Arrivals 0, 20, 45, 60, 80 ms -> transit 0, 0, 40,
  // 0, 0 units -> |D| = 0, 40, 40, 0. A.8 integer form (J scaled by 16):
  //   J16 = 0 + 0 - 0 = 0;  0 + 40 - 0 = 40;  40 + 40 - (48 >> 4) = 77;  77 + 0 - (85 >> 4) = 72
  // -> jitter = 72 >> 4 = 4 units, and 72 / 16 / 8000 s = 0.5625 ms.
  ReceiveStats s(8000);
  const std::uint64_t arrivalsMs[] = {0, 20, 45, 60, 80};
  for (std::uint16_t i = 0; i < 5; ++i)
    s.receive(static_cast<std::uint16_t>(500 + i), 160u * i, kBase + arrivalsMs[i] * kMs);
  EXPECT_EQ(s.jitter(), 4u);
  EXPECT_DOUBLE_EQ(s.jitterMs(), 0.5625);
  EXPECT_EQ(s.makeReportBlock(1, kBase).jitter, 4u);
}

TEST(ReceiveStats, JitterConvergesToConstantAlternatingDelay) {
  // Delay alternating 0 / 10 ms at 48 kHz: |D| = 480 units every packet; J -> 480.
  ReceiveStats s(48000);
  for (std::uint32_t i = 0; i < 400; ++i) {
    s.receive(static_cast<std::uint16_t>(i), 960 * i, kBase + 20 * kMs * i + (i % 2) * 10 * kMs);
  }
  EXPECT_NEAR(s.jitter(), 480, 8);
  EXPECT_NEAR(s.jitterMs(), 10.0, 0.2);
}

TEST(ReceiveStats, LastSrAndDelaySinceLastSr) {
  ReceiveStats s(8000);
  feed(s, {1, 2, 3}, 1);
  const std::uint64_t ntp = (0xe1234567ull << 32) | 0x89ab0000u;
  s.onSenderReport(ntp, kBase + 1000 * kMs);
  const ReportBlock b = s.makeReportBlock(7, kBase + 1500 * kMs);
  EXPECT_EQ(b.lastSr, 0x456789abu);
  EXPECT_EQ(b.delaySinceLastSr, 32768u);  // 0.5 s in 1/65536 s
}

TEST(ReceiveStats, ZeroClockRateThrows) { EXPECT_THROW(ReceiveStats(0), std::invalid_argument); }

TEST(Ntp, UnixToNtp) {
  EXPECT_EQ(ntpFromUnixNanos(0), 2208988800ull << 32);
  EXPECT_EQ(ntpFromUnixNanos(1'500'000'000), ((2208988800ull + 1) << 32) | 0x80000000u);
  EXPECT_EQ(ntpMiddle32(0x1122334455667788ull), 0x33445566u);
  EXPECT_EQ(nanosToNtpShort(250 * kMs), 16384u);
  EXPECT_EQ(nanosToNtpShort(~0ull), 0xffffffffu);
}

TEST(RoundTrip, Rfc3550Figure2Example) {
  // RFC 3550 6.4.1 Figure 2: A = 0xb710:8000, LSR = 0xb705:2000, DLSR = 0x0005:4000
  // -> delay 0x0006:2000 = 6.125 s.
  ReportBlock b;
  b.lastSr = 0xb7052000u;
  b.delaySinceLastSr = 0x00054000u;
  const auto rtt = roundTripNtpShort(b, 0xb7108000u);
  ASSERT_TRUE(rtt.has_value());
  EXPECT_EQ(*rtt, 0x00062000u);
  RttEstimator est;
  ASSERT_TRUE(est.onReportBlock(b, 0xb7108000u));
  EXPECT_DOUBLE_EQ(est.lastMs(), 6125.0);
  EXPECT_DOUBLE_EQ(est.smoothedMs(), 6125.0);
  // A second sample of 125 ms: smoothed moves 1/8 of the way.
  b.delaySinceLastSr = 0x000b4000u;  // A - LSR = 0x000b:6000, minus DLSR = 0x0000:2000 = 0.125 s
  ASSERT_TRUE(est.onReportBlock(b, 0xb7108000u));
  EXPECT_DOUBLE_EQ(est.lastMs(), 125.0);
  EXPECT_DOUBLE_EQ(est.smoothedMs(), 6125.0 - 6000.0 / 8);
  EXPECT_EQ(est.samples(), 2u);
}

TEST(RoundTrip, NoAnswerWithoutLsrOrWhenNegative) {
  ReportBlock b;
  EXPECT_FALSE(roundTripNtpShort(b, 0x10000).has_value());  // LSR 0: no SR seen yet
  b.lastSr = 0x10000;
  b.delaySinceLastSr = 0x20000;
  EXPECT_FALSE(roundTripNtpShort(b, 0x20000).has_value());  // DLSR longer than elapsed
  EXPECT_FALSE(roundTripNtpShort(b, 0x8000).has_value());   // arrival before LSR
  RttEstimator est;
  EXPECT_FALSE(est.onReportBlock(b, 0x8000));
  EXPECT_FALSE(est.valid());
  // Across the 2^32 wrap of the middle 32 bits.
  b.lastSr = 0xffff0000u;
  b.delaySinceLastSr = 0x8000;
  EXPECT_EQ(roundTripNtpShort(b, 0x00010000u), 0x18000u);
}

TEST(SenderStats, CountsAndExtrapolatesRtpTimestamp) {
  SenderStats s(8000);
  EXPECT_FALSE(s.hasSent());
  for (std::uint32_t i = 0; i < 3; ++i) s.onSent(160, 1000 + 160 * i, kBase + 20 * kMs * i);
  EXPECT_EQ(s.packets(), 3u);
  EXPECT_EQ(s.octets(), 480u);
  const std::uint64_t ntp = ntpFromUnixNanos(1'700'000'000'000'000'000ull);
  const SenderInfo si = s.senderInfo(ntp, kBase + 60 * kMs);  // 20 ms after the last packet
  EXPECT_EQ(si.ntpTimestamp, ntp);
  EXPECT_EQ(si.rtpTimestamp, 1000u + 320 + 160);
  EXPECT_EQ(si.packetCount, 3u);
  EXPECT_EQ(si.octetCount, 480u);
}

}  // namespace
}  // namespace medius::media::rtp
