// KeyMaterial and generateKeyMaterial.
#include "medius/media/srtp/keys.hpp"

#include <gtest/gtest.h>

#include <array>
#include <set>
#include <vector>

namespace medius::media::srtp {
namespace {

TEST(Keys, FreshKeysHaveTheSuiteLengthAndDiffer) {
  for (std::size_t i = 0; i < kSuiteCount; ++i) {
    const auto suite = static_cast<CryptoSuite>(i);
    std::set<std::vector<std::uint8_t>> seen;
    for (int n = 0; n < 50; ++n) {
      const KeyMaterial key = generateKeyMaterial(suite);
      ASSERT_EQ(key.size(), suiteInfo(suite).keySaltLength());
      seen.emplace(key.bytes().begin(), key.bytes().end());
    }
    EXPECT_EQ(seen.size(), 50u) << suiteName(suite);
  }
}

TEST(Keys, FreshKeysLookUniform) {
  // 2000 keys of 30 octets = 480,000 bits: the share of ones is 0.5 within 5 sigma
  // (sigma = 0.5 / sqrt(480000) = 0.00072), and every octet value shows up.
  std::size_t ones = 0;
  std::size_t bits = 0;
  std::array<int, 256> histogram{};
  for (int n = 0; n < 2000; ++n) {
    const KeyMaterial key = generateKeyMaterial(CryptoSuite::AesCm128HmacSha1_80);
    for (std::uint8_t b : key.bytes()) {
      ones += static_cast<std::size_t>(__builtin_popcount(b));
      bits += 8;
      ++histogram[b];
    }
  }
  const double share = static_cast<double>(ones) / static_cast<double>(bits);
  EXPECT_NEAR(share, 0.5, 5 * 0.00072);
  for (int count : histogram) EXPECT_GT(count, 100);  // mean 234
}

TEST(Keys, ValueSemanticsAndWipeOnMove) {
  const std::vector<std::uint8_t> bytes(30, 0x42);
  KeyMaterial a{std::span<const std::uint8_t>(bytes)};
  KeyMaterial b = a;
  EXPECT_TRUE(a == b);
  EXPECT_EQ(b.size(), 30u);
  KeyMaterial c = std::move(a);
  EXPECT_TRUE(c == b);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is wiped and empty
  const std::vector<std::uint8_t> other(30, 0x43);
  EXPECT_FALSE(c == KeyMaterial{std::span<const std::uint8_t>(other)});
  EXPECT_FALSE(c == KeyMaterial{});
  const std::vector<std::uint8_t> tooLong(47, 1);
  EXPECT_THROW(KeyMaterial{std::span<const std::uint8_t>(tooLong)}, std::invalid_argument);
}

}  // namespace
}  // namespace medius::media::srtp
