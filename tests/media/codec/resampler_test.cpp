// speexdsp resampler: frame-exact counts, frequency and level kept through 8k->48k->8k.
#include "medius/media/codec/resampler.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "signal.hpp"

namespace medius::media::codec {
namespace {

TEST(Resampler, UpAndDownKeepsFrequencyLevelAndCounts) {
  Resampler up(8000, 48000), down(48000, 8000);
  test::SineSource sine(1000, 8000);
  std::vector<std::int16_t> in(160), mid(up.maxOutput(160)), out(down.maxOutput(960));
  std::vector<std::int16_t> all48, all8;
  for (int i = 0; i < 50; ++i) {
    sine.fill(in);
    std::size_t n48 = up.process(in, mid);
    ASSERT_EQ(n48, 960u) << "frame " << i;
    all48.insert(all48.end(), mid.begin(), mid.begin() + 960);
    std::size_t n8 = down.process(std::span(mid.data(), n48), out);
    ASSERT_EQ(n8, 160u) << "frame " << i;
    all8.insert(all8.end(), out.begin(), out.begin() + 160);
  }
  std::span<const std::int16_t> w48(all48.data() + 4800, 24000), w8(all8.data() + 800, 4000);
  EXPECT_NEAR(test::dominantFrequency(std::span(w48.data(), 4800), 48000, 4000), 1000, 10);
  EXPECT_NEAR(test::dominantFrequency(w8, 8000), 1000, 10);
  double full = test::kMinus10Dbfs * test::kMinus10Dbfs / 2;
  EXPECT_NEAR(test::toDb(test::tonePower(w48, 1000, 48000) / full), 0, 0.5);
  EXPECT_NEAR(test::toDb(test::tonePower(w8, 1000, 8000) / full), 0, 0.5);
  EXPECT_GT(test::toneSnrDb(w8, 1000, 8000), 40);
  EXPECT_GT(up.latencySamples(), 0);
}

// Every pair of rates, 20 ms frames: each call writes exactly one 20 ms frame at the output
// rate (also the 3:2 ratios, whose phase is carried between calls).
TEST(Resampler, FrameExactForAllRatePairs) {
  for (std::uint32_t from : {8000u, 16000u, 24000u, 48000u}) {
    for (std::uint32_t to : {8000u, 16000u, 24000u, 48000u}) {
      Resampler r(from, to);
      std::vector<std::int16_t> in(from / 50), out(r.maxOutput(in.size()));
      test::SineSource sine(440, from);
      std::size_t total = 0;
      for (int i = 0; i < 50; ++i) {
        sine.fill(in);
        std::size_t n = r.process(in, out);
        EXPECT_EQ(n, to / 50) << from << "->" << to << " frame " << i;
        total += n;
      }
      EXPECT_EQ(total, to) << from << "->" << to;
    }
  }
}

TEST(Resampler, RejectsBadParameters) {
  EXPECT_THROW(Resampler(44100, 8000), std::invalid_argument);
  EXPECT_THROW(Resampler(8000, 16000, 11), std::invalid_argument);
  Resampler same(16000, 16000);
  std::vector<std::int16_t> in{1, 2, 3}, out(3);
  EXPECT_EQ(same.process(in, out), 3u);
  EXPECT_EQ(out, in);
}

}  // namespace
}  // namespace medius::media::codec
