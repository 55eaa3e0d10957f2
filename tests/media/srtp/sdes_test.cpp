// SDES offer/answer (RFC 4568 section 7) end to end: lines chosen, counted, refused, and
// the negotiated keys carrying packets both ways through SrtpSessions.
#include "medius/media/srtp/sdes.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "medius/media/srtp/session.hpp"

namespace medius::media::srtp {
namespace {

const std::string kRfcKey = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

TEST(Sdes, OfferListsEveryAvailableSuiteStrongestFirstWithFreshKeys) {
  const std::vector<CryptoSuite> suites = defaultSuites();
  ASSERT_EQ(suites.size(), kSuiteCount);  // Debian's libsrtp2 has them all
  const std::vector<CryptoAttribute> offer = makeCryptoOffer(suites);
  ASSERT_EQ(offer.size(), kSuiteCount);
  std::set<std::vector<std::uint8_t>> keys;
  for (std::size_t i = 0; i < offer.size(); ++i) {
    EXPECT_EQ(offer[i].tag, i + 1);
    EXPECT_EQ(offer[i].suite, suites[i]);
    ASSERT_EQ(offer[i].keys.size(), 1u);
    keys.emplace(offer[i].keys[0].keySalt.bytes().begin(), offer[i].keys[0].keySalt.bytes().end());
  }
  EXPECT_EQ(keys.size(), kSuiteCount);
  EXPECT_EQ(formatCryptoAttribute(offer[0]).substr(0, 19), "1 AEAD_AES_256_GCM ");
  const std::vector<CryptoSuite> twice = {CryptoSuite::AeadAes128Gcm, CryptoSuite::AeadAes128Gcm};
  EXPECT_THROW(makeCryptoOffer(twice), std::invalid_argument);
  EXPECT_THROW(makeCryptoOffer(std::span<const CryptoSuite>()), std::invalid_argument);
}

TEST(Sdes, AnswerToRfc4568Section8OfferSkipsTheUnknownSuite) {
  const std::vector<std::string_view> offer = {
      "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 FEC_ORDER=FEC_SRTP",
      "2 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;"
      "inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP"};
  const SdesAnswer answer = answerCryptoOffer(offer, defaultSuites());
  ASSERT_TRUE(answer.choice.has_value()) << answer.error;
  EXPECT_EQ(answer.unknownSuite, 1u);
  EXPECT_EQ(answer.choice->remote.tag, 1u);
  EXPECT_EQ(answer.choice->remote.keys[0].mki, (Mki{1, 4}));
  EXPECT_EQ(answer.choice->local.tag, 1u);
  EXPECT_EQ(answer.choice->local.suite, CryptoSuite::AesCm128HmacSha1_80);
  EXPECT_FALSE(answer.choice->local.keys[0].keySalt == answer.choice->remote.keys[0].keySalt);
  EXPECT_FALSE(answer.choice->local.keys[0].mki.has_value());
  EXPECT_TRUE(answer.error.empty());
}

TEST(Sdes, AnswerFollowsTheOfferOrderWithinWhatWeAccept) {
  const std::string cm = "1 AES_CM_128_HMAC_SHA1_80 inline:" + kRfcKey;
  const std::string gcm = "2 AEAD_AES_128_GCM inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZA==";
  const std::vector<std::string_view> offer = {cm, gcm};
  SdesAnswer answer = answerCryptoOffer(offer, defaultSuites());
  ASSERT_TRUE(answer.choice.has_value());
  EXPECT_EQ(answer.choice->remote.tag, 1u);  // the offerer's first choice, not ours
  const std::vector<CryptoSuite> gcmOnly = {CryptoSuite::AeadAes128Gcm};
  answer = answerCryptoOffer(offer, gcmOnly);
  ASSERT_TRUE(answer.choice.has_value());
  EXPECT_EQ(answer.choice->remote.tag, 2u);
  EXPECT_EQ(answer.notAccepted, 1u);
}

TEST(Sdes, NoUsableLineExplainsWhy) {
  const std::string unknown = "1 F8_128_HMAC_SHA1_80 inline:" + kRfcKey;
  const std::string noKey = "2 AES_CM_128_HMAC_SHA1_80 inline:";
  const std::string unencrypted = "3 AES_CM_128_HMAC_SHA1_80 inline:" + kRfcKey + " UNENCRYPTED_SRTP";
  const std::vector<std::string_view> offer = {unknown, noKey, unencrypted};
  const SdesAnswer answer = answerCryptoOffer(offer, defaultSuites());
  EXPECT_FALSE(answer.choice.has_value());
  EXPECT_EQ(answer.unknownSuite, 1u);
  EXPECT_EQ(answer.malformed, 1u);
  EXPECT_EQ(answer.unsupported, 1u);
  EXPECT_EQ(answer.error,
            "no usable a=crypto among 3: 1 unknown suite, 1 unsupported, 1 malformed, 0 not accepted "
            "(unknown crypto suite \"F8_128_HMAC_SHA1_80\")");
  const SdesAnswer none = answerCryptoOffer({}, defaultSuites());
  EXPECT_FALSE(none.choice.has_value());
  EXPECT_EQ(none.error, "no usable a=crypto among 0: 0 unknown suite, 0 unsupported, 0 malformed, 0 not accepted");
}

TEST(Sdes, NoUsableLineNamesEveryProblem) {
  const std::string unknown = "1 F8_128_HMAC_SHA1_80 inline:" + kRfcKey;
  const std::string noKey = "2 AES_CM_128_HMAC_SHA1_80 inline:";
  const std::vector<std::string_view> offer = {unknown, noKey};
  const SdesAnswer answer = answerCryptoOffer(offer, defaultSuites());
  EXPECT_FALSE(answer.choice.has_value());
  EXPECT_EQ(answer.problems, "unknown crypto suite \"F8_128_HMAC_SHA1_80\"; key 1: missing key");
}

TEST(Sdes, InteropOfferPutsTheMandatorySuiteFirst) {
  const std::vector<CryptoSuite> suites = interopOfferSuites();
  EXPECT_EQ(suites, (std::vector<CryptoSuite>{CryptoSuite::AesCm128HmacSha1_80, CryptoSuite::AeadAes128Gcm,
                                              CryptoSuite::AeadAes256Gcm, CryptoSuite::AesCm128HmacSha1_32}));
}

TEST(Sdes, AnswerKeepsOurKeyWhileTheSuiteStays) {
  const CryptoAttribute before = makeLocalCryptoAttribute(1, CryptoSuite::AesCm128HmacSha1_80);
  const std::string same = "2 AES_CM_128_HMAC_SHA1_80 inline:" + kRfcKey;
  const std::vector<std::string_view> reoffer = {same};
  const SdesAnswer kept = answerCryptoOffer(reoffer, defaultSuites(), &before);
  ASSERT_TRUE(kept.choice.has_value()) << kept.error;
  EXPECT_EQ(kept.choice->local.tag, 2u);  // the tag of the line chosen now
  EXPECT_TRUE(kept.choice->local.keys[0].keySalt == before.keys[0].keySalt);
  const std::string other = "1 AES_CM_128_HMAC_SHA1_32 inline:" + kRfcKey;
  const std::vector<std::string_view> rekey = {other};
  const SdesAnswer fresh = answerCryptoOffer(rekey, defaultSuites(), &before);
  ASSERT_TRUE(fresh.choice.has_value()) << fresh.error;
  EXPECT_EQ(fresh.choice->local.suite, CryptoSuite::AesCm128HmacSha1_32);
  EXPECT_FALSE(fresh.choice->local.keys[0].keySalt == before.keys[0].keySalt);
}

TEST(Sdes, RepeatedTagIsMalformed) {
  const std::string first = "1 AES_CM_128_HMAC_SHA1_80 inline:" + kRfcKey;
  const std::string again = "1 AES_CM_128_HMAC_SHA1_32 inline:" + kRfcKey;
  const std::vector<std::string_view> offer = {first, again};
  const SdesAnswer answer = answerCryptoOffer(offer, defaultSuites());
  ASSERT_TRUE(answer.choice.has_value());
  EXPECT_EQ(answer.choice->remote.suite, CryptoSuite::AesCm128HmacSha1_80);
  EXPECT_EQ(answer.malformed, 1u);
}

TEST(Sdes, AcceptAnswerChecksTagAndSuite) {
  const std::vector<CryptoSuite> suites = {CryptoSuite::AeadAes128Gcm, CryptoSuite::AesCm128HmacSha1_80};
  const std::vector<CryptoAttribute> offer = makeCryptoOffer(suites);
  std::string error;
  auto choice = acceptCryptoAnswer(offer, "2 AES_CM_128_HMAC_SHA1_80 inline:" + kRfcKey, error);
  ASSERT_TRUE(choice.has_value()) << error;
  EXPECT_EQ(choice->local.tag, 2u);
  EXPECT_TRUE(choice->local.keys[0].keySalt == offer[1].keys[0].keySalt);
  EXPECT_EQ(choice->remote.suite, CryptoSuite::AesCm128HmacSha1_80);
  EXPECT_FALSE(acceptCryptoAnswer(offer, "3 AES_CM_128_HMAC_SHA1_80 inline:" + kRfcKey, error));
  EXPECT_EQ(error, "answer a=crypto tag 3 was not offered");
  EXPECT_FALSE(acceptCryptoAnswer(offer, "1 AES_CM_128_HMAC_SHA1_80 inline:" + kRfcKey, error));
  EXPECT_EQ(error, "answer a=crypto tag 1 has suite AES_CM_128_HMAC_SHA1_80, we offered AEAD_AES_128_GCM with that tag");
  EXPECT_FALSE(acceptCryptoAnswer(offer, "2 AES_CM_128_HMAC_SHA1_80 inline:", error));
  EXPECT_EQ(error, "answer a=crypto refused: key 1: missing key");
}

TEST(Sdes, NegotiatedKeysCarryMediaBothWays) {
  // Alice offers, Bob answers, Alice accepts; each builds its Inbound session from the
  // other's line and its Outbound one from its own.
  const std::vector<CryptoAttribute> offer = makeCryptoOffer(defaultSuites());
  std::vector<std::string> offerText;
  for (const auto& line : offer) offerText.push_back(formatCryptoAttribute(line));
  const std::vector<std::string_view> offerViews(offerText.begin(), offerText.end());
  const std::vector<CryptoSuite> bobAccepts = {CryptoSuite::AesCm128HmacSha1_80};
  const SdesAnswer bob = answerCryptoOffer(offerViews, bobAccepts);
  ASSERT_TRUE(bob.choice.has_value()) << bob.error;
  EXPECT_EQ(bob.notAccepted, kSuiteCount - 1);
  std::string error;
  const auto alice = acceptCryptoAnswer(offer, formatCryptoAttribute(bob.choice->local), error);
  ASSERT_TRUE(alice.has_value()) << error;
  const CryptoSuite suite = alice->local.suite;
  SrtpSession aliceOut(suite, alice->local.masterKeys(), Direction::Outbound);
  SrtpSession aliceIn(suite, alice->remote.masterKeys(), Direction::Inbound);
  SrtpSession bobOut(suite, bob.choice->local.masterKeys(), Direction::Outbound);
  SrtpSession bobIn(suite, bob.choice->remote.masterKeys(), Direction::Inbound);
  for (auto [out, in] : {std::pair{&aliceOut, &bobIn}, std::pair{&bobOut, &aliceIn}}) {
    std::vector<std::uint8_t> packet(172 + 10, 0x55);
    packet[0] = 0x80;
    packet[11] = 9;
    std::size_t length = 172;
    ASSERT_EQ(out->protectRtp(packet, length), Status::Ok);
    EXPECT_EQ(length, 182u);
    ASSERT_EQ(in->unprotectRtp(packet, length), Status::Ok);
    EXPECT_EQ(length, 172u);
    EXPECT_EQ(packet[100], 0x55);
  }
}

}  // namespace
}  // namespace medius::media::srtp
