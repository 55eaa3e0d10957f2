// RFC 3389 comfort noise: payload parsing/writing, levels, generator round trip.
#include "medius/media/codec/comfort_noise.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "signal.hpp"

namespace medius::media::codec {
namespace {

TEST(ComfortNoise, ParsesLevelAndIgnoresSpectrum) {
  std::array<std::uint8_t, 4> withSpectrum{40, 0x81, 0x22, 0x7f};
  CnPayload p = parseComfortNoise(withSpectrum);
  EXPECT_EQ(p.status, CnStatus::Ok);
  EXPECT_EQ(p.levelDbov, 40);
  EXPECT_EQ(p.spectralCoefficients, 3u);
  std::array<std::uint8_t, 1> reserved{0x85};
  p = parseComfortNoise(reserved);
  EXPECT_EQ(p.status, CnStatus::ReservedBitSet);
  EXPECT_EQ(p.levelDbov, 5);
  EXPECT_EQ(parseComfortNoise({}).status, CnStatus::Empty);
}

TEST(ComfortNoise, MeasuresDbov) {
  // Full-scale square wave is 0 dBov (RFC 3389 3.1); a full-scale sine -3 dBov.
  std::vector<std::int16_t> square(160);
  for (std::size_t i = 0; i < square.size(); ++i) square[i] = (i / 4) % 2 ? 32767 : -32767;
  EXPECT_EQ(measureLevelDbov(square), 0);
  test::SineSource fullSine(1000, 8000, 32767);
  EXPECT_EQ(measureLevelDbov(fullSine.take(160)), 3);
  test::SineSource quiet(1000, 8000, 32767 * 0.01);  // -40 dBFS sine = -43 dBov
  EXPECT_EQ(measureLevelDbov(quiet.take(160)), 43);
  std::vector<std::int16_t> zeros(160, 0);
  EXPECT_EQ(measureLevelDbov(zeros), kComfortNoiseMinLevel);
  std::array<std::uint8_t, 2> out{};
  EXPECT_EQ(comfortNoiseFor(zeros, out), 1u);
  EXPECT_EQ(out[0], 127);
  EXPECT_EQ(writeComfortNoise(200, out), 1u);
  EXPECT_EQ(out[0], 127);
  EXPECT_EQ(writeComfortNoise(10, {}), 0u);
}

// Generator at a level -> measured -> CN payload -> parsed -> generator -> measured: within
// 3 dB of the original level at every step.
TEST(ComfortNoise, RoundTripKeepsLevelWithin3Db) {
  for (std::uint8_t level : {30, 50, 70, 90}) {
    ComfortNoiseGenerator gen(level);
    std::vector<std::int16_t> frame(8000);
    gen.generate(frame);
    std::uint8_t measured = measureLevelDbov(frame);
    EXPECT_NEAR(measured, level, 3) << int(level);
    std::array<std::uint8_t, 1> payload{};
    ASSERT_EQ(comfortNoiseFor(frame, payload), 1u);
    CnPayload parsed = parseComfortNoise(payload);
    ASSERT_EQ(parsed.status, CnStatus::Ok);
    ComfortNoiseGenerator regen(0);
    regen.setLevel(parsed.levelDbov);
    EXPECT_EQ(regen.level(), parsed.levelDbov);
    regen.generate(frame);
    EXPECT_NEAR(measureLevelDbov(frame), level, 3) << int(level);
    // White: no single tone dominates (the strongest 10 Hz bin holds < 5% of the power).
    double strongest =
        test::tonePower(std::span(frame.data(), 800),
                        test::dominantFrequency(std::span(frame.data(), 800), 8000), 8000);
    EXPECT_LT(strongest, 0.05 * test::meanPower(std::span(frame.data(), 800)));
  }
  ComfortNoiseGenerator silent(127);
  std::vector<std::int16_t> frame(160, 5);
  silent.generate(frame);
  EXPECT_EQ(test::meanPower(frame), 0);
}

}  // namespace
}  // namespace medius::media::codec
