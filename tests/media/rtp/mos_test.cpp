// E-model (ITU-T G.107) known points: R -> MOS (Annex B), delay impairment, Ie,eff, codecs.
#include "medius/media/rtp/mos.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace medius::media::rtp {
namespace {

TEST(Mos, AnnexBKnownPoints) {
  EXPECT_NEAR(mosFromR(93.2), 4.41, 0.005);  // 4.4093
  EXPECT_NEAR(mosFromR(50), 2.575, 1e-9);
  EXPECT_NEAR(mosFromR(50), 2.58, 0.01);
  EXPECT_NEAR(mosFromR(82.2), 4.1044, 1e-4);
  EXPECT_DOUBLE_EQ(mosFromR(-0.1), 1.0);
  EXPECT_DOUBLE_EQ(mosFromR(-50), 1.0);
  EXPECT_DOUBLE_EQ(mosFromR(100.1), 4.5);
  EXPECT_DOUBLE_EQ(mosFromR(150), 4.5);
  EXPECT_DOUBLE_EQ(mosFromR(5), 1.0);  // the cubic gives 0.992 here: floored
  EXPECT_DOUBLE_EQ(mosFromR(std::numeric_limits<double>::quiet_NaN()), 1.0);
  // Monotonic over the useful range.
  for (double r = 7; r < 100; r += 0.5) EXPECT_LT(mosFromR(r), mosFromR(r + 0.5)) << r;
}

TEST(Mos, DelayImpairment) {
  EXPECT_DOUBLE_EQ(delayImpairment(0, DelayModel::G107), 0.0);
  EXPECT_DOUBLE_EQ(delayImpairment(100, DelayModel::G107), 0.0);
  EXPECT_NEAR(delayImpairment(150, DelayModel::G107), 0.16353, 1e-4);
  EXPECT_NEAR(delayImpairment(200, DelayModel::G107), 3.04441, 1e-4);
  EXPECT_NEAR(delayImpairment(400, DelayModel::G107), 24.07009, 1e-4);
  EXPECT_NEAR(delayImpairment(100, DelayModel::ColeRosenbluth), 2.4, 1e-9);
  EXPECT_NEAR(delayImpairment(200, DelayModel::ColeRosenbluth), 4.8 + 0.11 * 22.7, 1e-9);
  EXPECT_DOUBLE_EQ(delayImpairment(-5, DelayModel::ColeRosenbluth), 0.0);
}

TEST(Mos, EffectiveEquipmentImpairment) {
  const CodecImpairment g711 = codecImpairment(Codec::Pcmu);
  EXPECT_DOUBLE_EQ(effectiveEquipmentImpairment(g711, 0, 1), 0.0);
  EXPECT_NEAR(effectiveEquipmentImpairment(g711, 1, 1), 95.0 / 26.1, 1e-12);
  const CodecImpairment g729 = codecImpairment(Codec::G729);
  EXPECT_NEAR(effectiveEquipmentImpairment(g729, 2, 2), 11 + 84.0 * 2 / (1 + 19), 1e-12);  // 19.4
  // Out-of-range inputs are clamped, not propagated.
  EXPECT_NEAR(effectiveEquipmentImpairment(g711, 1000, 1), effectiveEquipmentImpairment(g711, 100, 1), 1e-12);
  EXPECT_DOUBLE_EQ(effectiveEquipmentImpairment(g711, -3, 1), 0.0);
  EXPECT_NEAR(effectiveEquipmentImpairment(g711, 1, 0.1), 95.0 / 26.1, 1e-12);
}

TEST(Mos, CodecTable) {
  EXPECT_DOUBLE_EQ(codecImpairment(Codec::Pcma).bpl, 25.1);
  EXPECT_DOUBLE_EQ(codecImpairment(Codec::G711NoPlc).bpl, 4.3);
  EXPECT_DOUBLE_EQ(codecImpairment(Codec::G729).ie, 11.0);
  EXPECT_DOUBLE_EQ(codecImpairment(Codec::G729).bpl, 19.0);
  EXPECT_EQ(codecFromName("pcmu"), Codec::Pcmu);
  EXPECT_EQ(codecFromName("PCMA"), Codec::Pcma);
  EXPECT_EQ(codecFromName("G722"), Codec::G722);
  EXPECT_EQ(codecFromName("g729"), Codec::G729);
  EXPECT_EQ(codecFromName("OPUS"), Codec::Opus);
  EXPECT_EQ(codecFromName("telephone-event"), std::nullopt);
  EXPECT_EQ(codecFromName(""), std::nullopt);
}

TEST(Mos, WholeCalls) {
  QualityInput clean{.codec = codecImpairment(Codec::Pcmu)};
  EXPECT_DOUBLE_EQ(rFactor(clean), 93.2);
  EXPECT_NEAR(estimateMos(clean), 4.41, 0.005);
  QualityInput g729{.codec = codecImpairment(Codec::G729)};
  EXPECT_NEAR(rFactor(g729), 82.2, 1e-12);
  // G.711+PLC, 1 % random loss, 200 ms one way: R = 93.2 - 3.0444 - 3.6398 = 86.516.
  QualityInput lossy{.codec = codecImpairment(Codec::Pcma), .packetLossPercent = 1, .oneWayDelayMs = 200};
  EXPECT_NEAR(rFactor(lossy), 86.5157, 1e-3);
  EXPECT_NEAR(estimateMos(lossy), 4.2446, 1e-3);
  // Bursty loss is worse than random loss at the same rate.
  QualityInput bursty = lossy;
  bursty.burstRatio = 3;
  EXPECT_LT(estimateMos(bursty), estimateMos(lossy));
  // Everything lost: the floor.
  QualityInput dead{.codec = codecImpairment(Codec::G729), .packetLossPercent = 100, .oneWayDelayMs = 1000};
  EXPECT_DOUBLE_EQ(estimateMos(dead), 1.0);
}

}  // namespace
}  // namespace medius::media::rtp
