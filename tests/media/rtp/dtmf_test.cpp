// RFC 4733 telephone-event payloads, their mapping between 8 kHz and 48 kHz legs, and the
// packets of events we originate (TelephoneEventSender).
#include "medius/media/rtp/dtmf.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>

namespace medius::media::rtp {
namespace {

std::array<std::uint8_t, 4> payload(std::uint8_t event, bool end, std::uint16_t duration,
                                    std::uint8_t volume = 10) {
  std::array<std::uint8_t, 4> p{};
  writeTelephoneEvent(p, {.event = event, .end = end, .volume = volume, .duration = duration});
  return p;
}

TelephoneEvent decode(const MappedEvent& m) {
  TelephoneEvent ev;
  EXPECT_EQ(parseTelephoneEvent(m.payload, ev), DtmfStatus::Ok);
  return ev;
}

TEST(TelephoneEvent, ParseAndWrite) {
  const std::array<std::uint8_t, 4> wire = {0x05, 0xca, 0x03, 0x20};  // 5, E, R (ignored), vol 10, 800
  TelephoneEvent ev;
  ASSERT_EQ(parseTelephoneEvent(wire, ev), DtmfStatus::Ok);
  EXPECT_EQ(ev.event, 5);
  EXPECT_TRUE(ev.end);
  EXPECT_EQ(ev.volume, 10);
  EXPECT_EQ(ev.duration, 800);
  std::array<std::uint8_t, 4> out{};
  ASSERT_EQ(writeTelephoneEvent(out, ev), 4u);
  EXPECT_EQ(out, (std::array<std::uint8_t, 4>{0x05, 0x8a, 0x03, 0x20}));  // R written as 0
  EXPECT_EQ(parseTelephoneEvent(std::span(wire.data(), 3), ev), DtmfStatus::TooShort);
  EXPECT_EQ(writeTelephoneEvent(std::span(out.data(), 3), ev), 0u);
  ev.volume = 64;
  EXPECT_EQ(writeTelephoneEvent(out, ev), 0u);
}

TEST(TelephoneEventMapper, EightToFortyEightKilohertz) {
  // Audio anchor: input ts 1000 <-> output ts 50000. The event starts at input ts 1160
  // -> output 50000 + 160 * 6 = 50960 for every packet of the event.
  const RtpClockMap clock{.inRate = 8000, .outRate = 48000, .inAnchor = 1000, .outAnchor = 50000};
  TelephoneEventMapper mapper;
  std::array<MappedEvent, TelephoneEventMapper::kMaxOutput> out{};
  struct In {
    std::uint16_t duration;
    bool end;
    bool marker;
  };
  const In inputs[] = {{160, false, true}, {320, false, false}, {480, false, false},
                       {800, true, false}, {800, true, false},  {800, true, false}};
  const std::uint16_t expected[] = {960, 1920, 2880, 4800, 4800, 4800};
  for (int i = 0; i < 6; ++i) {
    const auto p = payload(1, inputs[i].end, inputs[i].duration);
    const MapResult r = mapper.map(1160, inputs[i].marker, p, clock, out);
    ASSERT_EQ(r.status, DtmfStatus::Ok);
    ASSERT_EQ(r.count, 1u) << i;
    EXPECT_EQ(out[0].timestamp, 50960u) << i;
    EXPECT_EQ(out[0].marker, i == 0) << i;
    const TelephoneEvent ev = decode(out[0]);
    EXPECT_EQ(ev.event, 1);
    EXPECT_EQ(ev.volume, 10);
    EXPECT_EQ(ev.end, inputs[i].end) << i;
    EXPECT_EQ(ev.duration, expected[i]) << i;
  }
  // The next digit: a new timestamp, a new event with its own marker.
  const auto p = payload(11, false, 160);
  ASSERT_EQ(mapper.map(3000, true, p, clock, out).count, 1u);
  EXPECT_EQ(out[0].timestamp, 50000u + 2000 * 6);
  EXPECT_TRUE(out[0].marker);
  EXPECT_EQ(decode(out[0]).event, 11);
}

TEST(TelephoneEventMapper, FortyEightToEightKilohertzRounds) {
  const RtpClockMap clock{.inRate = 48000, .outRate = 8000, .inAnchor = 0xfffffc40u, .outAnchor = 7};
  TelephoneEventMapper mapper;
  std::array<MappedEvent, 2> out{};
  // Input ts wraps past 2^32: 0xfffffc40 + 960 = 0 -> output 7 + 160.
  auto p = payload(9, false, 961);  // 160.17 -> 160
  ASSERT_EQ(mapper.map(0, true, p, clock, out).count, 1u);
  EXPECT_EQ(out[0].timestamp, 167u);
  EXPECT_EQ(decode(out[0]).duration, 160);
  p = payload(9, true, 4803);  // 800.5 -> 801 (round half up)
  ASSERT_EQ(mapper.map(0, false, p, clock, out).count, 1u);
  EXPECT_EQ(decode(out[0]).duration, 801);
  EXPECT_TRUE(decode(out[0]).end);
}

TEST(TelephoneEventMapper, LongEventIsSegmentedAtTheOutputClock) {
  // A 2 s key press at 8 kHz is 16000 units, 96000 at 48 kHz: more than 0xFFFF
  // (RFC 4733 2.5.1.3).
  const RtpClockMap clock{.inRate = 8000, .outRate = 48000, .inAnchor = 0, .outAnchor = 0};
  TelephoneEventMapper mapper;
  std::array<MappedEvent, 2> out{};
  auto p = payload(5, false, 10800);  // 64800: still segment 0
  ASSERT_EQ(mapper.map(8000, false, p, clock, out).count, 1u);
  EXPECT_EQ(out[0].timestamp, 48000u);
  EXPECT_EQ(decode(out[0]).duration, 64800);
  p = payload(5, false, 11200);  // 67200: segment 0 ends at 0xFFFF, segment 1 starts
  ASSERT_EQ(mapper.map(8000, false, p, clock, out).count, 2u);
  EXPECT_EQ(out[0].timestamp, 48000u);
  EXPECT_EQ(decode(out[0]).duration, 0xffff);
  EXPECT_FALSE(decode(out[0]).end);
  EXPECT_FALSE(out[0].marker);
  EXPECT_EQ(out[1].timestamp, 48000u + 0xffff);
  EXPECT_EQ(decode(out[1]).duration, 67200 - 0xffff);  // 1665
  EXPECT_FALSE(out[1].marker);
  for (int i = 0; i < 3; ++i) {  // three redundant end packets, identical
    p = payload(5, true, 16000);
    ASSERT_EQ(mapper.map(8000, false, p, clock, out).count, 1u);
    EXPECT_EQ(out[0].timestamp, 48000u + 0xffff);
    EXPECT_EQ(decode(out[0]).duration, 96000 - 0xffff);  // 30465
    EXPECT_TRUE(decode(out[0]).end);
  }
}

TEST(TelephoneEventMapper, InputSegmentsAreJoinedAtALowerClock) {
  // A long event sent at 48 kHz in two segments (0xFFFF then 100 units from ts + 0xFFFF)
  // is one 8 kHz event of (65535 + 100) / 6 = 10939 units.
  const RtpClockMap clock{.inRate = 48000, .outRate = 8000, .inAnchor = 0, .outAnchor = 0};
  TelephoneEventMapper mapper;
  std::array<MappedEvent, 2> out{};
  auto p = payload(0, false, 0xffff);
  ASSERT_EQ(mapper.map(96000, true, p, clock, out).count, 1u);
  EXPECT_EQ(out[0].timestamp, 16000u);
  EXPECT_TRUE(out[0].marker);
  EXPECT_EQ(decode(out[0]).duration, 10923);  // 65535 / 6 = 10922.5 -> 10923
  p = payload(0, true, 100);
  ASSERT_EQ(mapper.map(96000 + 0xffff, false, p, clock, out).count, 1u);
  EXPECT_EQ(out[0].timestamp, 16000u);
  EXPECT_FALSE(out[0].marker);
  EXPECT_EQ(decode(out[0]).duration, 10939);
  EXPECT_TRUE(decode(out[0]).end);
}

TEST(TelephoneEventMapper, RejectsShortPayloadAndSmallOutput) {
  const RtpClockMap clock{};
  TelephoneEventMapper mapper;
  std::array<MappedEvent, 2> out{};
  const std::array<std::uint8_t, 3> shortPayload{1, 2, 3};
  EXPECT_EQ(mapper.map(0, true, shortPayload, clock, out).status, DtmfStatus::TooShort);
  EXPECT_EQ(mapper.map(0, true, shortPayload, clock, out).count, 0u);
  const auto p = payload(1, false, 160);
  EXPECT_EQ(mapper.map(0, true, p, clock, std::span(out.data(), 1)).count, 0u);
}

TEST(TelephoneEvent, DigitCodes) {
  const char digits[] = "0123456789*#ABCD";
  for (int i = 0; i < 16; ++i) EXPECT_EQ(dtmfEventCode(digits[i]), i);
  EXPECT_EQ(dtmfEventCode('a'), -1);
  EXPECT_EQ(dtmfEventCode('x'), -1);
}

TEST(TelephoneEventSender, StartUpdatesAndThreeEndPacketsShareTheTimestamp) {
  TelephoneEventSender sender;
  std::array<MappedEvent, TelephoneEventSender::kMaxOutput> out{};
  EXPECT_EQ(sender.update(160, out), 0u);  // nothing in progress
  EXPECT_EQ(sender.end(160, out), 0u);
  ASSERT_EQ(sender.start(5, 12345, 80, out), 1u);
  EXPECT_TRUE(sender.active());
  EXPECT_TRUE(out[0].marker);
  EXPECT_EQ(out[0].timestamp, 12345u);
  TelephoneEvent ev = decode(out[0]);
  EXPECT_EQ(ev.event, 5);
  EXPECT_FALSE(ev.end);
  EXPECT_EQ(ev.volume, TelephoneEventSender::kVolume);
  EXPECT_EQ(ev.duration, 80);
  for (std::uint64_t d : {240u, 400u, 300u}) {  // a smaller duration never goes back
    ASSERT_EQ(sender.update(d, out), 1u);
    EXPECT_FALSE(out[0].marker);
    EXPECT_EQ(out[0].timestamp, 12345u);
    EXPECT_EQ(decode(out[0]).duration, d == 300 ? 400 : d);
  }
  ASSERT_EQ(sender.end(800, out), 1u);
  EXPECT_FALSE(sender.active());
  const MappedEvent last = out[0];
  EXPECT_FALSE(last.marker);
  EXPECT_EQ(last.timestamp, 12345u);
  EXPECT_TRUE(decode(last).end);
  EXPECT_EQ(decode(last).duration, 800);
  for (int i = 0; i < 2; ++i) {  // RFC 4733 2.5.1.4: the end packet three times in all
    ASSERT_EQ(sender.repeatEnd(out), 1u);
    EXPECT_EQ(out[0].timestamp, last.timestamp);
    EXPECT_EQ(out[0].payload, last.payload);
    EXPECT_FALSE(out[0].marker);
  }
  EXPECT_EQ(sender.repeatEnd(out), 0u);
  // A new digit drops repeats still pending.
  ASSERT_EQ(sender.start(11, 20000, 0, out), 1u);
  ASSERT_EQ(sender.end(160, out), 1u);
  ASSERT_EQ(sender.start(1, 30000, 0, out), 1u);
  EXPECT_EQ(decode(out[0]).event, 1);
  EXPECT_EQ(sender.repeatEnd(out), 0u);
  EXPECT_EQ(sender.start(1, 0, 0, std::span(out.data(), 1)), 0u);  // too small an output
}

TEST(TelephoneEventSender, LongDigitAt48kHzIsSegmented) {
  // A 1.5 s key press at 48 kHz: 72000 units, more than 0xFFFF (RFC 4733 2.5.1.3).
  TelephoneEventSender sender;
  std::array<MappedEvent, TelephoneEventSender::kMaxOutput> out{};
  ASSERT_EQ(sender.start(0, 1000, 960, out), 1u);
  ASSERT_EQ(sender.update(65000, out), 1u);
  ASSERT_EQ(sender.update(66000, out), 2u);
  EXPECT_EQ(out[0].timestamp, 1000u);
  EXPECT_EQ(decode(out[0]).duration, 0xffff);
  EXPECT_FALSE(decode(out[0]).end);
  EXPECT_EQ(out[1].timestamp, 1000u + 0xffff);
  EXPECT_EQ(decode(out[1]).duration, 66000 - 0xffff);
  EXPECT_FALSE(out[1].marker);
  ASSERT_EQ(sender.end(72000, out), 1u);
  EXPECT_EQ(out[0].timestamp, 1000u + 0xffff);
  EXPECT_EQ(decode(out[0]).duration, 72000 - 0xffff);
  EXPECT_TRUE(decode(out[0]).end);
}

}  // namespace
}  // namespace medius::media::rtp
