// Jitter buffer schedules: start-up depth, reordering, duplicates, late packets, loss
// reported as Missing, wrap-around, SSRC change, overflow and adaptive depth.
#include "medius/media/rtp/jitter_buffer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace medius::media::rtp {
namespace {

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kT0 = 1'000 * kMs;
constexpr std::uint32_t kSsrc = 0x1234;

JitterBufferConfig fixed60() {
  JitterBufferConfig c;
  c.clockRate = 8000;
  c.frameMs = 20;
  c.depthMs = 60;
  c.adaptive = false;
  return c;
}

// Adaptive, 20 ms frames at 8 kHz, starting at 60 ms (the pipeline's defaults).
JitterBufferConfig adaptive60() {
  JitterBufferConfig c = fixed60();
  c.minDepthMs = 20;
  c.maxDepthMs = 200;
  c.adaptive = true;
  return c;
}

// A payload whose first octet is the low byte of the sequence number (to check identity).
std::array<std::uint8_t, 160> frameFor(std::uint16_t seq) {
  std::array<std::uint8_t, 160> p{};
  p.fill(static_cast<std::uint8_t>(seq));
  return p;
}

PutResult put(JitterBuffer& jb, std::uint16_t seq, std::uint64_t atMs, std::uint32_t ssrc = kSsrc,
              std::uint32_t tsBase = 0) {
  const auto p = frameFor(seq);
  return jb.put(ssrc, seq, tsBase + 160u * seq, 0, false, p, kT0 + atMs * kMs);
}

// What get() returned, as a compact string: "10" for a frame, "m12" for Missing, "-" Empty.
std::string take(JitterBuffer& jb, std::uint64_t atMs) {
  const JitterFrame f = jb.get(kT0 + atMs * kMs);
  switch (f.status) {
    case FrameStatus::Empty:
      return "-";
    case FrameStatus::Missing:
      return "m" + std::to_string(f.sequence);
    case FrameStatus::Frame:
      EXPECT_EQ(f.payload.size(), 160u);
      EXPECT_EQ(f.payload[0], static_cast<std::uint8_t>(f.sequence));
      return std::to_string(f.sequence);
  }
  return "?";
}

TEST(JitterBuffer, WaitsForTheDepthThenPlaysInOrder) {
  JitterBuffer jb(fixed60());
  std::vector<std::string> played;
  for (std::uint16_t i = 0; i < 8; ++i) {
    EXPECT_EQ(put(jb, static_cast<std::uint16_t>(10 + i), 20 * i), PutResult::Queued);
    played.push_back(take(jb, 20 * i));
  }
  EXPECT_EQ(played, (std::vector<std::string>{"-", "-", "-", "10", "11", "12", "13", "14"}));
  EXPECT_EQ(jb.bufferedPackets(), 3u);
  EXPECT_EQ(jb.bufferedMs(), 60u);
  EXPECT_EQ(jb.targetDepthMs(), 60u);
}

TEST(JitterBuffer, ReordersWithinTheDepth) {
  JitterBuffer jb(fixed60());
  put(jb, 10, 0);
  put(jb, 12, 20);
  put(jb, 11, 25);
  put(jb, 14, 60);
  put(jb, 13, 70);
  put(jb, 15, 100);
  std::vector<std::string> played;
  for (std::uint64_t t = 60; t <= 160; t += 20) played.push_back(take(jb, t));
  EXPECT_EQ(played, (std::vector<std::string>{"10", "11", "12", "13", "14", "15"}));
  EXPECT_EQ(jb.counters().missing, 0u);
}

TEST(JitterBuffer, ReorderedBeforeStartBecomesTheFirstFrame) {
  JitterBuffer jb(fixed60());
  put(jb, 11, 0);
  put(jb, 10, 10);
  EXPECT_EQ(take(jb, 60), "10");
  EXPECT_EQ(take(jb, 80), "11");
}

TEST(JitterBuffer, DropsDuplicatesAndLatePackets) {
  JitterBuffer jb(fixed60());
  EXPECT_EQ(put(jb, 10, 0), PutResult::Queued);
  EXPECT_EQ(put(jb, 10, 1), PutResult::Duplicate);
  put(jb, 11, 20);
  put(jb, 12, 40);
  EXPECT_EQ(take(jb, 60), "10");
  EXPECT_EQ(put(jb, 10, 61), PutResult::Late);  // already played
  EXPECT_EQ(put(jb, 12, 62), PutResult::Duplicate);
  EXPECT_EQ(take(jb, 80), "11");
  EXPECT_EQ(jb.counters().duplicates, 2u);
  EXPECT_EQ(jb.counters().late, 1u);
}

TEST(JitterBuffer, LossIsReportedAsMissingThenPlayoutGoesOn) {
  JitterBuffer jb(fixed60());
  for (std::uint16_t s : {10, 11, 13, 14, 15}) put(jb, s, 20 * (s - 10));
  std::vector<std::string> played;
  for (std::uint64_t t = 80; t <= 200; t += 20) played.push_back(take(jb, t));
  EXPECT_EQ(played, (std::vector<std::string>{"10", "11", "m12", "13", "14", "15", "-"}));
  EXPECT_EQ(jb.counters().missing, 1u);
  EXPECT_EQ(jb.counters().underruns, 1u);
  // A packet that comes after its Missing frame was played is late.
  EXPECT_EQ(put(jb, 12, 210), PutResult::Late);
}

TEST(JitterBuffer, MissingFrameCarriesTheEstimatedTimestamp) {
  JitterBuffer jb(fixed60());
  put(jb, 10, 0);
  put(jb, 12, 40);
  EXPECT_EQ(take(jb, 60), "10");
  const JitterFrame f = jb.get(kT0 + 80 * kMs);
  ASSERT_EQ(f.status, FrameStatus::Missing);
  EXPECT_EQ(f.sequence, 11);
  EXPECT_EQ(f.timestamp, 160u * 11);
  EXPECT_TRUE(f.payload.empty());
}

TEST(JitterBuffer, UnderrunRebuffersAndSkipsWhatNeverCame) {
  JitterBuffer jb(fixed60());
  put(jb, 10, 0);
  EXPECT_EQ(take(jb, 60), "10");
  EXPECT_EQ(take(jb, 80), "-");  // 11 and 12 lost while nothing else was buffered
  EXPECT_EQ(take(jb, 100), "-");
  put(jb, 13, 110);
  EXPECT_EQ(take(jb, 120), "-");  // waits the depth again from 110
  EXPECT_EQ(take(jb, 170), "13");
  EXPECT_EQ(jb.counters().skipped, 2u);
  EXPECT_EQ(jb.counters().underruns, 1u);
}

TEST(JitterBuffer, SequenceAndTimestampWrap) {
  JitterBuffer jb(fixed60());
  const std::uint16_t seqs[] = {65534, 65535, 0, 1, 2};
  for (int i = 0; i < 5; ++i) {
    const auto p = frameFor(seqs[i]);
    const std::uint32_t ts = 0xffffff60u + 160u * static_cast<std::uint32_t>(i);  // wraps at i = 1
    ASSERT_EQ(jb.put(kSsrc, seqs[i], ts, 0, false, p, kT0 + 20 * kMs * i), PutResult::Queued);
  }
  std::vector<std::string> played;
  for (std::uint64_t t = 60; t <= 140; t += 20) played.push_back(take(jb, t));
  EXPECT_EQ(played, (std::vector<std::string>{"65534", "65535", "0", "1", "2"}));
}

TEST(JitterBuffer, NewSsrcResets) {
  JitterBuffer jb(fixed60());
  put(jb, 10, 0);
  put(jb, 11, 20);
  EXPECT_EQ(take(jb, 60), "10");
  EXPECT_EQ(put(jb, 500, 70, 0x9999), PutResult::Reset);
  EXPECT_EQ(jb.bufferedPackets(), 1u);
  EXPECT_EQ(take(jb, 80), "-");  // buffering the new stream
  EXPECT_EQ(take(jb, 130), "500");
  EXPECT_EQ(jb.counters().resets, 1u);
  // A sequence jump without an SSRC change is a new stream too.
  EXPECT_EQ(put(jb, 9000, 140, 0x9999), PutResult::Reset);
}

TEST(JitterBuffer, BurstBeyondMaxDepthIsCutBackToTheTarget) {
  JitterBuffer jb(fixed60());
  for (std::uint16_t s = 0; s < 20; ++s) put(jb, s, 0);  // 400 ms of audio at once
  EXPECT_EQ(jb.bufferedMs(), 400u);
  EXPECT_EQ(take(jb, 60), "0");   // the first start plays the oldest
  EXPECT_EQ(take(jb, 80), "17");  // then 380 ms > 200 ms max: cut to 60 ms (17, 18, 19)
  EXPECT_EQ(jb.counters().dropped, 16u);
  EXPECT_EQ(take(jb, 100), "18");
}

TEST(JitterBuffer, FarAheadPacketMakesRoomInTheRing) {
  JitterBufferConfig c = fixed60();
  c.capacity = 8;
  JitterBuffer jb(c);
  put(jb, 0, 0);
  put(jb, 1, 0);
  EXPECT_EQ(put(jb, 20, 0), PutResult::Queued);  // 20 - 0 >= 8: 0..12 given up
  EXPECT_EQ(jb.bufferedPackets(), 1u);
  EXPECT_EQ(jb.counters().dropped, 2u);
  EXPECT_EQ(take(jb, 60), "20");
}

TEST(JitterBuffer, RefusesOversizedPayload) {
  JitterBufferConfig c = fixed60();
  c.maxPayload = 100;
  JitterBuffer jb(c);
  const std::array<std::uint8_t, 101> big{};
  EXPECT_EQ(jb.put(kSsrc, 1, 0, 0, false, big, kT0), PutResult::TooLarge);
  EXPECT_EQ(jb.bufferedPackets(), 0u);
  EXPECT_EQ(jb.counters().tooLarge, 1u);
}

TEST(JitterBuffer, AdaptiveTargetFollowsJitter) {
  JitterBufferConfig c;
  c.clockRate = 48000;
  c.frameMs = 20;
  c.depthMs = 40;
  c.minDepthMs = 20;
  c.maxDepthMs = 200;
  c.adaptive = true;
  {
    JitterBuffer clean(c);
    EXPECT_EQ(clean.targetDepthMs(), 40u);  // until enough samples: depthMs
    const std::array<std::uint8_t, 10> p{};
    for (std::uint32_t i = 0; i < 200; ++i)
      clean.put(1, static_cast<std::uint16_t>(i), 960 * i, 111, false, p, kT0 + 20 * kMs * i);
    EXPECT_EQ(clean.targetDepthMs(), 20u);  // no jitter: one frame, the minimum
  }
  JitterBuffer jittery(c);
  const std::array<std::uint8_t, 10> p{};
  // Delay alternating 0 / 30 ms: A.8 jitter -> 30 ms, target -> 20 + 3 x 30 = 110 ms.
  for (std::uint32_t i = 0; i < 400; ++i) {
    jittery.put(1, static_cast<std::uint16_t>(i), 960 * i, 111, false, p,
                kT0 + 20 * kMs * i + (i % 2) * 30 * kMs);
    jittery.get(kT0 + 20 * kMs * i);
  }
  EXPECT_NEAR(static_cast<double>(jittery.targetDepthMs()), 110.0, 3.0);
}

TEST(JitterBuffer, ShedsOneFrameAfterASecondTooDeep) {
  JitterBuffer jb(fixed60());
  // 6 packets (120 ms) at once, then one every 20 ms: the depth stays at 120 ms, more than
  // the 60 ms target + 2 frames, so after 1 s (50 gets) one frame is dropped -> 100 ms.
  for (std::uint16_t s = 0; s < 6; ++s) put(jb, s, 0);
  std::uint16_t next = 6;
  for (std::uint64_t t = 60; t < 60 + 20 * 60; t += 20) {
    put(jb, next++, t);
    take(jb, t);
  }
  EXPECT_EQ(jb.counters().dropped, 1u);
  EXPECT_EQ(jb.counters().missing, 0u);
  EXPECT_EQ(jb.bufferedMs(), 100u);
}

// The adaptive buffer converges to less than one frame of waiting on a clean link: it
// starts at depthMs (60 ms) and sheds by slack, one frame per second, instead of keeping the
// start-up depth for good (whole-frame depth cannot tell 21 ms buffered from 40 ms).
TEST(JitterBuffer, CleanLinkShedsTheStartupDepthBySlack) {
  JitterBuffer jb(adaptive60());
  const auto p = frameFor(0);
  // Packets every 20 ms, arriving 7 ms before the playout tick (a fixed phase).
  std::uint64_t worstWaitLast = 0;
  std::uint16_t next = 0;
  for (std::uint64_t tick = 0; tick < 400; ++tick) {  // 8 s of playout clock
    const std::uint64_t now = kT0 + tick * 20 * kMs;
    jb.put(kSsrc, next, 160u * next, 0, false, p, now - 7 * kMs);
    ++next;
    const JitterFrame f = jb.get(now);
    if (tick >= 300 && f.status == FrameStatus::Frame) {
      // The packet played now is the one put (highest - buffered frames) ago.
      const std::uint64_t waited = (static_cast<std::uint16_t>(next - 1 - f.sequence)) * 20 + 7;
      worstWaitLast = std::max(worstWaitLast, waited);
    }
  }
  EXPECT_EQ(jb.counters().missing, 0u);
  EXPECT_EQ(jb.counters().underruns, 0u);
  EXPECT_LE(jb.counters().dropped, 3u);  // 60 ms start-up depth -> one frame: two or three
  EXPECT_GE(jb.counters().dropped, 2u);
  EXPECT_EQ(worstWaitLast, 7u);  // every packet of the last 2 s waited only the phase
}

// Under a frame of spare slack, the buffer asks its caller to move the playout clock earlier
// by it (less the reserve): applied, every packet then waits about the reserve.
TEST(JitterBuffer, SubFrameSlackMovesThePlayoutClock) {
  JitterBuffer jb(adaptive60());
  const auto p = frameFor(0);
  std::uint64_t playAt = kT0 + 13 * kMs;  // packets arrive 13 ms before the first tick
  std::uint64_t shifts = 0;
  std::uint64_t worstWaitLast = 0;
  std::uint16_t next = 0;
  std::uint64_t arrive = kT0;
  for (int tick = 0; tick < 500; ++tick) {  // 10 s
    while (arrive <= playAt) {
      jb.put(kSsrc, next, 160u * next, 0, false, p, arrive);
      ++next;
      arrive += 20 * kMs;
    }
    const JitterFrame f = jb.get(playAt);
    if (tick >= 400 && f.status == FrameStatus::Frame) {
      const std::uint64_t arrived = kT0 + std::uint64_t{f.sequence} * 20 * kMs;
      worstWaitLast = std::max(worstWaitLast, playAt - arrived);
    }
    playAt += 20 * kMs;
    if (const std::uint64_t shift = jb.takePlayoutAdvance()) {
      playAt -= shift;
      ++shifts;
    }
  }
  EXPECT_EQ(jb.counters().missing, 0u);
  EXPECT_EQ(jb.counters().underruns, 0u);
  EXPECT_GE(shifts, 1u);
  EXPECT_GE(worstWaitLast, 2 * kMs);  // the reserve is kept
  EXPECT_LE(worstWaitLast, 4 * kMs);  // and not much more
  EXPECT_EQ(jb.takePlayoutAdvance(), 0u);
}

// Slack shedding never cuts into what jitter needs: delays alternating 0 / 30 ms keep a
// reserve of 3 x jitter, so nothing is concealed once the estimate has settled.
TEST(JitterBuffer, SlackSheddingKeepsTheJitterReserve) {
  JitterBuffer jb(adaptive60());
  const auto p = frameFor(0);
  std::uint64_t missingAfterWarmup = 0;
  for (std::uint32_t i = 0; i < 1000; ++i) {  // 20 s
    jb.put(kSsrc, static_cast<std::uint16_t>(i), 160 * i, 0, false, p,
           kT0 + 20 * kMs * i + (i % 2) * 30 * kMs);
    const std::uint64_t before = jb.counters().missing + jb.counters().underruns;
    jb.get(kT0 + 20 * kMs * i + 5 * kMs);
    if (i >= 200) missingAfterWarmup += jb.counters().missing + jb.counters().underruns - before;
  }
  EXPECT_EQ(missingAfterWarmup, 0u);
}

// Fixed mode keeps its depth: no slack shedding.
TEST(JitterBuffer, FixedModeDoesNotShedBySlack) {
  JitterBuffer jb(fixed60());
  const auto p = frameFor(0);
  for (std::uint16_t i = 0; i < 300; ++i) {
    jb.put(kSsrc, i, 160u * i, 0, false, p, kT0 + 20 * kMs * i);
    jb.get(kT0 + 20 * kMs * i + 7 * kMs);
  }
  EXPECT_EQ(jb.counters().dropped, 0u);
  EXPECT_GE(jb.bufferedMs(), 60u);
}

TEST(JitterBuffer, TimestampJumpWithoutSequenceGapIsNotLoss) {
  // DTX / silence suppression: sequence numbers continue, the timestamp jumps 1 s.
  JitterBuffer jb(fixed60());
  const auto p = frameFor(1);
  jb.put(kSsrc, 1, 160, 0, false, p, kT0);
  jb.put(kSsrc, 2, 320, 0, false, p, kT0 + 20 * kMs);
  jb.put(kSsrc, 3, 8320, 0, true, p, kT0 + 40 * kMs);  // talkspurt after silence: marker
  EXPECT_EQ(jb.get(kT0 + 60 * kMs).status, FrameStatus::Frame);
  EXPECT_EQ(jb.get(kT0 + 80 * kMs).status, FrameStatus::Frame);
  const JitterFrame f = jb.get(kT0 + 100 * kMs);
  ASSERT_EQ(f.status, FrameStatus::Frame);
  EXPECT_EQ(f.timestamp, 8320u);
  EXPECT_TRUE(f.marker);
  EXPECT_EQ(jb.counters().missing, 0u);
  EXPECT_EQ(jb.counters().dropped, 0u);
}

TEST(JitterBuffer, RejectsBadConfig) {
  JitterBufferConfig c = fixed60();
  c.capacity = 30;
  EXPECT_THROW(JitterBuffer{c}, std::invalid_argument);
  c = fixed60();
  c.depthMs = 300;
  EXPECT_THROW(JitterBuffer{c}, std::invalid_argument);
  c = fixed60();
  c.clockRate = 0;
  EXPECT_THROW(JitterBuffer{c}, std::invalid_argument);
}

}  // namespace
}  // namespace medius::media::rtp
