// a=crypto (RFC 4568 section 9.1): RFC examples, round trips, and every error kind.
#include "medius/media/srtp/crypto_attribute.hpp"

#include <gtest/gtest.h>

#include <string>

namespace medius::media::srtp {
namespace {

std::string keyText(const KeyParam& key) {
  return std::string(key.keySalt.bytes().begin(), key.keySalt.bytes().end());
}

CryptoParseResult parseOk(std::string_view line) {
  CryptoParseResult result = parseCryptoAttribute(line);
  EXPECT_EQ(result.status, ParseStatus::Ok) << line << ": " << result.error;
  EXPECT_TRUE(result.error.empty());
  EXPECT_TRUE(result.attribute.has_value());
  return result;
}

void expectFailure(std::string_view line, ParseStatus status, std::string_view errorPart) {
  const CryptoParseResult result = parseCryptoAttribute(line);
  EXPECT_EQ(result.status, status) << line << ": " << result.error;
  EXPECT_NE(result.error.find(errorPart), std::string::npos) << line << ": " << result.error;
}

TEST(CryptoAttribute, Rfc4568Section8OfferFirstLine) {
  // RFC 4568 section 8.1, offer.
  const auto result = parseOk(
      "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 FEC_ORDER=FEC_SRTP");
  const CryptoAttribute& a = *result.attribute;
  EXPECT_EQ(a.tag, 1u);
  EXPECT_EQ(a.suite, CryptoSuite::AesCm128HmacSha1_80);
  ASSERT_EQ(a.keys.size(), 1u);
  EXPECT_EQ(keyText(a.keys[0]), std::string("YS___semctl () {\t220;}\n}\nunles"));
  EXPECT_EQ(a.keys[0].lifetime, std::uint64_t{1} << 20);
  EXPECT_EQ(a.keys[0].mki, (Mki{1, 4}));
  EXPECT_EQ(a.params.fecOrder, "FEC_SRTP");
  EXPECT_EQ(formatCryptoAttribute(a),
            "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 FEC_ORDER=FEC_SRTP");
}

TEST(CryptoAttribute, Rfc4568Section8OfferSecondLineIsUnknownSuite) {
  // F8_128_HMAC_SHA1_80 (RFC 4568 section 6.2.3) is not in libsrtp2: the answerer skips it.
  const auto result = parseCryptoAttribute(
      "2 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;"
      "inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP");
  EXPECT_EQ(result.status, ParseStatus::UnknownSuite);
  EXPECT_EQ(result.tag, 2u);
  EXPECT_EQ(result.suiteName, "F8_128_HMAC_SHA1_80");
  EXPECT_FALSE(result.attribute.has_value());
  EXPECT_EQ(result.error, "unknown crypto suite \"F8_128_HMAC_SHA1_80\"");
}

TEST(CryptoAttribute, Rfc4568Section8Answer) {
  const auto result = parseOk("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4");
  EXPECT_EQ(keyText(result.attribute->keys[0]), std::string("=-n@%^x!Bjufr9)?,#5h\\`=&]{qiPQ"));
}

TEST(CryptoAttribute, TwoKeysWithMkis) {
  // The same two keys as RFC 4568 section 8.1's second line, on a suite we support.
  const std::string line =
      "7 AES_CM_128_HMAC_SHA1_32 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;"
      "inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4";
  const auto result = parseOk(line);
  const CryptoAttribute& a = *result.attribute;
  ASSERT_EQ(a.keys.size(), 2u);
  EXPECT_EQ(keyText(a.keys[0]), "123456789ABCDE0123456789ABcdef");
  EXPECT_EQ(keyText(a.keys[1]), "ABcdef123456789ABCDE0123456789");
  EXPECT_EQ(a.keys[1].mki, (Mki{2, 4}));
  const auto masterKeys = a.masterKeys();
  ASSERT_EQ(masterKeys.size(), 2u);
  EXPECT_EQ(masterKeys[1].mki, (Mki{2, 4}));
  EXPECT_EQ(formatCryptoAttribute(a), line);
}

TEST(CryptoAttribute, PlainLineWithoutLifetimeOrMkiAndEverySuite) {
  for (std::size_t i = 0; i < kSuiteCount; ++i) {
    const auto suite = static_cast<CryptoSuite>(i);
    const CryptoAttribute ours = makeLocalCryptoAttribute(static_cast<std::uint32_t>(i + 1), suite);
    const std::string line = formatCryptoAttribute(ours);
    const std::size_t b64 = 4 * ((suiteInfo(suite).keySaltLength() + 2) / 3);
    EXPECT_EQ(line.size(), std::to_string(i + 1).size() + 1 + suiteName(suite).size() + 1 + 7 + b64) << line;
    const auto back = parseOk(line);
    EXPECT_EQ(back.attribute->suite, suite);
    EXPECT_EQ(back.attribute->tag, i + 1);
    EXPECT_TRUE(back.attribute->keys[0].keySalt == ours.keys[0].keySalt);
    EXPECT_FALSE(back.attribute->keys[0].lifetime.has_value());
    EXPECT_FALSE(back.attribute->keys[0].mki.has_value());
    EXPECT_EQ(formatCryptoAttribute(*back.attribute), line);
  }
}

TEST(CryptoAttribute, LenientWhereRfcAllowsIt) {
  // Tabs and runs of spaces between fields, lower-case names, CRLF, unpadded base64
  // (GCM-128 has 28 octets: "==" padding omitted), decimal lifetime, an MKI without lifetime.
  const auto a = parseOk("3\t aes_cm_128_hmac_sha1_80  INLINE:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|1048576\r\n");
  EXPECT_EQ(a.attribute->keys[0].lifetime, 1048576u);
  const CryptoAttribute gcm = makeLocalCryptoAttribute(1, CryptoSuite::AeadAes128Gcm);
  std::string line = formatCryptoAttribute(gcm);
  ASSERT_EQ(line.substr(line.size() - 2), "==");
  line.resize(line.size() - 2);
  const auto b = parseOk(line);
  EXPECT_TRUE(b.attribute->keys[0].keySalt == gcm.keys[0].keySalt);
  const auto c = parseOk("4 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|5:1");
  EXPECT_FALSE(c.attribute->keys[0].lifetime.has_value());
  EXPECT_EQ(c.attribute->keys[0].mki, (Mki{5, 1}));
  // An optional unknown session parameter ("-" prefix, section 6.3) is ignored and kept.
  const auto d = parseOk("5 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz -FOO=1 WSH=128");
  ASSERT_EQ(d.attribute->params.ignored.size(), 1u);
  EXPECT_EQ(d.attribute->params.ignored[0], "-FOO=1");
  EXPECT_EQ(d.attribute->params.wsh, 128u);
  EXPECT_EQ(formatCryptoAttribute(*d.attribute),
            "5 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz WSH=128 -FOO=1");
}

TEST(CryptoAttribute, MalformedLinesNameTheProblem) {
  const std::string key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
  expectFailure("", ParseStatus::Malformed, "empty a=crypto");
  expectFailure("x AES_CM_128_HMAC_SHA1_80 inline:" + key, ParseStatus::Malformed, "tag \"x\"");
  expectFailure("1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + key, ParseStatus::Malformed, "1 to 9 digits");
  expectFailure("1", ParseStatus::Malformed, "missing crypto suite");
  expectFailure("1 AES-CM inline:" + key, ParseStatus::Malformed, "invalid characters");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80", ParseStatus::Malformed, "missing key");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:", ParseStatus::Malformed, "key 1: missing key");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 " + key, ParseStatus::Malformed, "expected \"inline:<key>\"");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGV*",
                ParseStatus::Malformed, "not valid base64 (character 40)");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGU=",
                ParseStatus::Malformed, "29 octets of key and salt, AES_CM_128_HMAC_SHA1_80 needs 30");
  expectFailure("1 AEAD_AES_256_GCM inline:" + key, ParseStatus::Malformed, "30 octets of key and salt, AEAD_AES_256_GCM needs 44");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz=",
                ParseStatus::Malformed, "bad length or padding");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:WVNf=X19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
                ParseStatus::Malformed, "not valid base64");
  // 28 octets end in "ZA=="; "ZB==" sets pad bits of its last character (RFC 4648 3.5).
  expectFailure("1 AEAD_AES_128_GCM inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZB==",
                ParseStatus::Malformed, "non-zero pad bits");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^49", ParseStatus::Malformed, "lifetime \"2^49\"");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|0", ParseStatus::Malformed, "lifetime \"0\"");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^x", ParseStatus::Malformed, "lifetime");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:0", ParseStatus::Malformed, "MKI length");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:129", ParseStatus::Malformed, "MKI length");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|256:1", ParseStatus::Malformed, "does not fit in 1 octets");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|a:1", ParseStatus::Malformed, "MKI value");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:4|2^20", ParseStatus::Malformed, "unexpected field");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^20|1:4|x", ParseStatus::Malformed, "too many");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + ";inline:" + key, ParseStatus::Malformed,
                "several keys, but key 1 has no MKI");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:4;inline:" + key + "|1:4", ParseStatus::Malformed,
                "same MKI 1");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:4;inline:" + key + "|2:2", ParseStatus::Malformed,
                "different lengths");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + " WSH=10", ParseStatus::Malformed, "WSH=10");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + " KDR=25", ParseStatus::Malformed, "KDR=25");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + " FEC_ORDER=X", ParseStatus::Malformed, "FEC_ORDER=X");
}

TEST(CryptoAttribute, RefusedParametersAreUnsupportedButExposed) {
  const std::string line = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
  auto r = parseCryptoAttribute(line + " UNENCRYPTED_SRTP");
  EXPECT_EQ(r.status, ParseStatus::Unsupported);
  EXPECT_EQ(r.error, "UNENCRYPTED_SRTP is not supported: SRTP is always encrypted here");
  ASSERT_TRUE(r.attribute.has_value());
  EXPECT_TRUE(r.attribute->params.unencryptedSrtp);
  r = parseCryptoAttribute(line + " UNENCRYPTED_SRTCP UNAUTHENTICATED_SRTP");
  EXPECT_EQ(r.status, ParseStatus::Unsupported);
  EXPECT_NE(r.error.find("UNENCRYPTED_SRTCP"), std::string::npos);  // the first reason
  EXPECT_TRUE(r.attribute->params.unencryptedSrtcp);
  EXPECT_TRUE(r.attribute->params.unauthenticatedSrtp);
  EXPECT_EQ(formatCryptoAttribute(*r.attribute), line + " UNENCRYPTED_SRTCP UNAUTHENTICATED_SRTP");
  r = parseCryptoAttribute(line + " KDR=0");
  EXPECT_EQ(r.status, ParseStatus::Unsupported);
  EXPECT_EQ(r.attribute->params.kdr, 0u);
  expectFailure(line + " FEC_KEY=inline:" + line.substr(33), ParseStatus::Unsupported, "FEC_KEY");
  expectFailure(line + " FOO=1", ParseStatus::Unsupported, "unknown session parameter \"FOO=1\"");
  expectFailure("1 AES_CM_128_HMAC_SHA1_80 uri:http://example.com/key", ParseStatus::Unsupported,
                "key method \"uri\" is not supported");
  // A malformed parameter after a refused one still makes the line Malformed.
  expectFailure(line + " UNENCRYPTED_SRTP WSH=1", ParseStatus::Malformed, "WSH=1");
  // MKI values beyond 2^64-1.
  expectFailure(line + "|99999999999999999999:16", ParseStatus::Unsupported, "above 2^64-1");
  // 17 keys: more than libsrtp takes.
  std::string many = "1 AES_CM_128_HMAC_SHA1_80 ";
  for (int i = 1; i <= 17; ++i) {
    if (i > 1) many += ';';
    many += "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|" + std::to_string(i) + ":1";
  }
  expectFailure(many, ParseStatus::Unsupported, "more than 16 keys");
}

TEST(CryptoAttribute, ErrorsNeverContainKeyBytes) {
  const auto r = parseCryptoAttribute("1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubG");
  EXPECT_EQ(r.error.find("WVNf"), std::string::npos);
}

TEST(CryptoAttribute, FormatRefusesWhatCannotBeParsedBack) {
  CryptoAttribute empty;
  EXPECT_THROW(formatCryptoAttribute(empty), std::invalid_argument);
  CryptoAttribute wrongLength = makeLocalCryptoAttribute(1, CryptoSuite::AesCm128HmacSha1_80);
  wrongLength.suite = CryptoSuite::AeadAes128Gcm;
  EXPECT_THROW(formatCryptoAttribute(wrongLength), std::invalid_argument);
  CryptoAttribute twoKeys = makeLocalCryptoAttribute(1, CryptoSuite::AesCm128HmacSha1_80);
  twoKeys.keys.push_back(twoKeys.keys[0]);
  EXPECT_THROW(formatCryptoAttribute(twoKeys), std::invalid_argument);
  CryptoAttribute badLifetime = makeLocalCryptoAttribute(1, CryptoSuite::AesCm128HmacSha1_80);
  badLifetime.keys[0].lifetime = 0;
  EXPECT_THROW(formatCryptoAttribute(badLifetime), std::invalid_argument);
}

TEST(Base64, StrictDecoder) {
  std::array<std::uint8_t, 8> out{};
  std::string error;
  EXPECT_EQ(decodeBase64("TWFu", out, error), 3u);
  EXPECT_EQ(std::string(out.begin(), out.begin() + 3), "Man");
  EXPECT_EQ(decodeBase64("TWE=", out, error), 2u);
  EXPECT_EQ(decodeBase64("TWE", out, error), 2u);
  EXPECT_EQ(decodeBase64("TQ==", out, error), 1u);
  EXPECT_EQ(decodeBase64("TQ", out, error), 1u);
  EXPECT_FALSE(decodeBase64("TR==", out, error));  // pad bits set
  EXPECT_FALSE(decodeBase64("T", out, error));
  EXPECT_FALSE(decodeBase64("TQ=", out, error));
  EXPECT_FALSE(decodeBase64("TQ===", out, error));
  EXPECT_FALSE(decodeBase64("", out, error));
  EXPECT_FALSE(decodeBase64("TW Fu", out, error));
  EXPECT_FALSE(decodeBase64("TWFuTWFuTWFu", out, error));  // 9 octets > 8
  EXPECT_EQ(encodeBase64(std::span<const std::uint8_t>(out.data(), 0)), "");
  const std::array<std::uint8_t, 2> ma{'M', 'a'};
  EXPECT_EQ(encodeBase64(ma), "TWE=");
}

}  // namespace
}  // namespace medius::media::srtp
