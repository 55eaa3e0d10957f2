// CryptoSuite: names, sizes, preference order, and what this libsrtp2 supports.
#include "medius/media/srtp/suite.hpp"

#include <gtest/gtest.h>

#include <set>

namespace medius::media::srtp {
namespace {

TEST(CryptoSuite, SizesPerRfc) {
  // RFC 4568 section 6.2.1/6.2.2.
  const SuiteInfo& cm80 = suiteInfo(CryptoSuite::AesCm128HmacSha1_80);
  EXPECT_EQ(cm80.name, "AES_CM_128_HMAC_SHA1_80");
  EXPECT_EQ(cm80.keySaltLength(), 30u);
  EXPECT_EQ(cm80.rtpOverhead(), 10u);
  EXPECT_EQ(cm80.rtcpOverhead(), 14u);
  const SuiteInfo& cm32 = suiteInfo(CryptoSuite::AesCm128HmacSha1_32);
  EXPECT_EQ(cm32.keySaltLength(), 30u);
  EXPECT_EQ(cm32.rtpOverhead(), 4u);
  EXPECT_EQ(cm32.rtcpOverhead(), 14u);  // SRTCP keeps the 80-bit tag
  // RFC 6188 section 7.1.
  EXPECT_EQ(suiteInfo(CryptoSuite::Aes256CmHmacSha1_80).keySaltLength(), 46u);
  EXPECT_EQ(suiteInfo(CryptoSuite::Aes256CmHmacSha1_32).rtpOverhead(), 4u);
  // RFC 7714 section 14.2: 12-octet salt, 16-octet tag.
  const SuiteInfo& gcm128 = suiteInfo(CryptoSuite::AeadAes128Gcm);
  EXPECT_EQ(gcm128.keySaltLength(), 28u);
  EXPECT_EQ(gcm128.rtpOverhead(), 16u);
  EXPECT_EQ(gcm128.rtcpOverhead(), 20u);
  EXPECT_EQ(suiteInfo(CryptoSuite::AeadAes256Gcm).keySaltLength(), 44u);
  EXPECT_EQ(suiteInfo(CryptoSuite::AeadAes256Gcm).rtcpOverhead(), kMaxOverhead);
}

TEST(CryptoSuite, NamesRoundTripCaseInsensitively) {
  for (std::size_t i = 0; i < kSuiteCount; ++i) {
    const auto suite = static_cast<CryptoSuite>(i);
    EXPECT_EQ(suiteFromName(suiteName(suite)), suite);
  }
  EXPECT_EQ(suiteFromName("aes_cm_128_hmac_sha1_32"), CryptoSuite::AesCm128HmacSha1_32);
  EXPECT_EQ(suiteFromName("AEAD_AES_256_GCM"), CryptoSuite::AeadAes256Gcm);
  EXPECT_EQ(suiteFromName("F8_128_HMAC_SHA1_80"), std::nullopt);  // RFC 4568 suite we lack
  EXPECT_EQ(suiteFromName("AES_CM_128_HMAC_SHA1_8"), std::nullopt);
  EXPECT_EQ(suiteFromName(""), std::nullopt);
}

TEST(CryptoSuite, PreferenceListsEverySuiteOnceStrongestFirst) {
  const auto order = suitePreference();
  ASSERT_EQ(order.size(), kSuiteCount);
  EXPECT_EQ(std::set<CryptoSuite>(order.begin(), order.end()).size(), kSuiteCount);
  EXPECT_EQ(order.front(), CryptoSuite::AeadAes256Gcm);
  EXPECT_EQ(order.back(), CryptoSuite::AesCm128HmacSha1_32);
}

TEST(CryptoSuite, DebianLibsrtp2SupportsEverySuiteAtRunTime) {
  // Debian 12's libsrtp2 2.5.0 is built with NSS, which brings AES-256 and AES-GCM.
  for (std::size_t i = 0; i < kSuiteCount; ++i) {
    const auto suite = static_cast<CryptoSuite>(i);
    EXPECT_TRUE(suiteAvailable(suite)) << suiteName(suite);
  }
}

}  // namespace
}  // namespace medius::media::srtp
