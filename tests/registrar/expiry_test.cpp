// Expiry arithmetic (RFC 3261 10.3 steps 6-8): min/default/max, clamp, 423.
#include <gtest/gtest.h>

#include "medius/registrar/expiry.hpp"

namespace medius::registrar {
namespace {

const ExpiryConfig kConfig{60, 3600, 7200};

TEST(Expiry, ContactParameterWinsOverHeader) {
  auto d = decideExpiry(kConfig, 120u, 600u);
  EXPECT_EQ(d.kind, ExpiryDecision::Kind::Keep);
  EXPECT_EQ(d.seconds, 120u);
}

TEST(Expiry, HeaderWhenNoParameter) {
  auto d = decideExpiry(kConfig, std::nullopt, 600u);
  EXPECT_EQ(d.kind, ExpiryDecision::Kind::Keep);
  EXPECT_EQ(d.seconds, 600u);
}

TEST(Expiry, DefaultWhenNeither) {
  auto d = decideExpiry(kConfig, std::nullopt, std::nullopt);
  EXPECT_EQ(d.kind, ExpiryDecision::Kind::Keep);
  EXPECT_EQ(d.seconds, 3600u);
}

TEST(Expiry, ZeroRemoves) {
  EXPECT_EQ(decideExpiry(kConfig, 0u, 600u).kind, ExpiryDecision::Kind::Remove);
  EXPECT_EQ(decideExpiry(kConfig, std::nullopt, 0u).kind, ExpiryDecision::Kind::Remove);
  // A contact parameter keeps a contact even when the header says 0.
  EXPECT_EQ(decideExpiry(kConfig, 300u, 0u).kind, ExpiryDecision::Kind::Keep);
}

TEST(Expiry, BelowMinimumIsTooBrief) {
  EXPECT_EQ(decideExpiry(kConfig, 59u, std::nullopt).kind, ExpiryDecision::Kind::TooBrief);
  EXPECT_EQ(decideExpiry(kConfig, std::nullopt, 1u).kind, ExpiryDecision::Kind::TooBrief);
  auto atMin = decideExpiry(kConfig, 60u, std::nullopt);
  EXPECT_EQ(atMin.kind, ExpiryDecision::Kind::Keep);
  EXPECT_EQ(atMin.seconds, 60u);
}

TEST(Expiry, AboveMaximumIsClamped) {
  auto d = decideExpiry(kConfig, 7201u, std::nullopt);
  EXPECT_EQ(d.kind, ExpiryDecision::Kind::Keep);
  EXPECT_EQ(d.seconds, 7200u);
  EXPECT_EQ(decideExpiry(kConfig, std::nullopt, 4'294'967'295u).seconds, 7200u);
  EXPECT_EQ(decideExpiry(kConfig, 7200u, std::nullopt).seconds, 7200u);
}

TEST(Expiry, SecondsLeftRoundsUp) {
  EXPECT_EQ(secondsLeft(10'000, 0), 10u);
  EXPECT_EQ(secondsLeft(10'000, 1), 10u);
  EXPECT_EQ(secondsLeft(10'000, 9'001), 1u);
  EXPECT_EQ(secondsLeft(10'000, 10'000), 0u);
  EXPECT_EQ(secondsLeft(10'000, 20'000), 0u);
}

}  // namespace
}  // namespace medius::registrar
