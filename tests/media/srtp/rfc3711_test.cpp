// RFC 3711 Appendix B test vectors, reached through an independent model of the SRTP
// transform (RFC 3711 sections 3.3, 3.4, 4.1.1, 4.2.1, 4.3) written on OpenSSL here:
// libsrtp's public API cannot show its session keys, so the model's key derivation and
// AES-CM keystream are checked against the RFC's printed vectors (B.2, B.3), and then
// every packet SrtpSession protects with the B.3 master key must equal the model's output
// byte for byte, across the roll-over counter wrap and for SRTCP.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "medius/media/srtp/openssl_crypto.hpp"
#include "medius/media/srtp/session.hpp"

namespace medius::media::srtp {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes hex(const std::string& text) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoul(text.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// AES-128 in counter mode from `iv` (RFC 3711 section 4.1.1: the 128-bit counter block is
// incremented as a whole, which is OpenSSL's CTR mode).
Bytes aesCtr(const Bytes& key, const Bytes& iv, const Bytes& data) {
  Bytes out(data.size());
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int length = 0;
  EXPECT_EQ(EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), nullptr, key.data(), iv.data()), 1);
  EXPECT_EQ(EVP_EncryptUpdate(ctx, out.data(), &length, data.data(), static_cast<int>(data.size())), 1);
  EVP_CIPHER_CTX_free(ctx);
  return out;
}

Bytes keystream(const Bytes& key, const Bytes& iv, std::size_t n) { return aesCtr(key, iv, Bytes(n, 0)); }

// RFC 3711 section 4.3.1 with kdr = 0: x = (label || 0^48) XOR master salt, the PRF is
// AES-CM keyed with the master key from IV = x * 2^16.
Bytes derive(const Bytes& masterKey, const Bytes& masterSalt, std::uint8_t label, std::size_t n) {
  Bytes iv = masterSalt;
  iv[7] ^= label;
  iv.resize(16, 0);
  return keystream(masterKey, iv, n);
}

struct SessionKeys {
  Bytes cipher;
  Bytes salt;
  Bytes auth;
};

// Labels 0, 1, 2 for SRTP; 3, 4, 5 for SRTCP (section 4.3.2).
SessionKeys sessionKeys(const Bytes& masterKey, const Bytes& masterSalt, bool rtcp) {
  const std::uint8_t base = rtcp ? 3 : 0;
  return {derive(masterKey, masterSalt, base, 16), derive(masterKey, masterSalt, base + 2, 14),
          derive(masterKey, masterSalt, base + 1, 20)};
}

// IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16), section 4.1.1.
Bytes packetIv(const Bytes& salt, const std::uint8_t* ssrc, std::uint64_t index) {
  Bytes iv = salt;
  iv.resize(16, 0);
  for (int i = 0; i < 4; ++i) iv[4 + i] ^= ssrc[i];
  for (int i = 0; i < 6; ++i) iv[8 + i] ^= static_cast<std::uint8_t>(index >> (40 - 8 * i));
  return iv;
}

Bytes hmacSha1(const Bytes& key, const Bytes& data, std::size_t tagLength) {
  std::array<std::uint8_t, 20> mac{};
  unsigned int length = 0;
  HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), mac.data(), &length);
  return Bytes(mac.begin(), mac.begin() + static_cast<std::ptrdiff_t>(tagLength));
}

// SRTP (section 3.3): payload encrypted, tag = HMAC-SHA1(header || payload || ROC)[0..10).
Bytes modelSrtp(const SessionKeys& keys, const Bytes& rtp, std::uint32_t roc) {
  const std::uint16_t seq = static_cast<std::uint16_t>((rtp[2] << 8) | rtp[3]);
  const std::uint64_t index = (std::uint64_t{roc} << 16) | seq;
  const Bytes payload(rtp.begin() + 12, rtp.end());
  const Bytes encrypted = aesCtr(keys.cipher, packetIv(keys.salt, &rtp[8], index), payload);
  Bytes out(rtp.begin(), rtp.begin() + 12);
  out.insert(out.end(), encrypted.begin(), encrypted.end());
  Bytes authenticated = out;
  for (int i = 0; i < 4; ++i) authenticated.push_back(static_cast<std::uint8_t>(roc >> (24 - 8 * i)));
  const Bytes tag = hmacSha1(keys.auth, authenticated, 10);
  out.insert(out.end(), tag.begin(), tag.end());
  return out;
}

// SRTCP (section 3.4): everything after the first 8 octets encrypted, then E || index,
// then tag = HMAC-SHA1(header || encrypted || E || index)[0..10).
Bytes modelSrtcp(const SessionKeys& keys, const Bytes& rtcp, std::uint32_t index) {
  const Bytes body(rtcp.begin() + 8, rtcp.end());
  const Bytes encrypted = aesCtr(keys.cipher, packetIv(keys.salt, &rtcp[4], index), body);
  Bytes out(rtcp.begin(), rtcp.begin() + 8);
  out.insert(out.end(), encrypted.begin(), encrypted.end());
  const std::uint32_t word = 0x80000000u | index;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(word >> (24 - 8 * i)));
  const Bytes tag = hmacSha1(keys.auth, out, 10);
  out.insert(out.end(), tag.begin(), tag.end());
  return out;
}

const Bytes kMasterKey = hex("E1F97A0D3E018BE0D64FA32C06DE4139");  // RFC 3711 B.3
const Bytes kMasterSalt = hex("0EC675AD498AFEEBB6960B3AABE6");

TEST(Rfc3711, AppendixB2AesCmKeystream) {
  const Bytes key = hex("2B7E151628AED2A6ABF7158809CF4F3C");
  const Bytes iv = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000");
  const Bytes stream = keystream(key, iv, 0xff00 * 16 + 16);  // through counter FEFF
  EXPECT_EQ(Bytes(stream.begin(), stream.begin() + 48),
            hex("E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB"
                "41E95B3BB0A2E8DD477901E4FCA894C0"));
  EXPECT_EQ(Bytes(stream.begin() + 0xfeff * 16, stream.begin() + 0xff00 * 16),
            hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
}

TEST(Rfc3711, AppendixB3KeyDerivation) {
  const SessionKeys keys = sessionKeys(kMasterKey, kMasterSalt, false);
  EXPECT_EQ(keys.cipher, hex("C61E7A93744F39EE10734AFE3FF7A087"));
  EXPECT_EQ(keys.salt, hex("30CBBC08863D8C85D49DB34A9AE1"));
  EXPECT_EQ(derive(kMasterKey, kMasterSalt, 1, 32),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE"));
}

TEST(Rfc3711, SessionMatchesTheModelAcrossRocWrapAndForSrtcp) {
  Bytes keySalt = kMasterKey;
  keySalt.insert(keySalt.end(), kMasterSalt.begin(), kMasterSalt.end());
  const KeyMaterial key{std::span<const std::uint8_t>(keySalt)};
  SrtpSession out(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Outbound);
  SrtpSession in(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Inbound);
  const SessionKeys rtpKeys = sessionKeys(kMasterKey, kMasterSalt, false);
  const SessionKeys rtcpKeys = sessionKeys(kMasterKey, kMasterSalt, true);
  std::uint32_t roc = 0;
  std::uint16_t seq = 65400;
  for (int n = 0; n < 300; ++n, ++seq) {
    if (seq == 0) ++roc;  // RFC 3711 section 3.3.1
    Bytes rtp(12 + 20 + static_cast<std::size_t>(n % 160));
    rtp[0] = 0x80;
    rtp[1] = 0x08;
    rtp[2] = static_cast<std::uint8_t>(seq >> 8);
    rtp[3] = static_cast<std::uint8_t>(seq);
    rtp[8] = 0xca;
    rtp[9] = 0xfe;
    rtp[10] = 0xba;
    rtp[11] = 0xbe;
    for (std::size_t i = 12; i < rtp.size(); ++i) rtp[i] = static_cast<std::uint8_t>(i * 31 + n);
    Bytes buffer = rtp;
    buffer.resize(rtp.size() + out.rtpOverhead());
    std::size_t length = rtp.size();
    ASSERT_EQ(out.protectRtp(buffer, length), Status::Ok);
    buffer.resize(length);
    ASSERT_EQ(buffer, modelSrtp(rtpKeys, rtp, roc)) << "packet " << n << " roc " << roc;
    ASSERT_EQ(in.unprotectRtp(buffer, length), Status::Ok);
    buffer.resize(length);
    ASSERT_EQ(buffer, rtp);
  }
  EXPECT_EQ(roc, 1u);
  for (std::uint32_t index = 1; index <= 5; ++index) {  // libsrtp's first SRTCP index is 1
    Bytes rtcp(8 + 24 * index, static_cast<std::uint8_t>(index));
    rtcp[0] = 0x81;
    rtcp[1] = 200;
    rtcp[4] = 0xca;
    rtcp[5] = 0xfe;
    rtcp[6] = 0xba;
    rtcp[7] = 0xbe;
    Bytes buffer = rtcp;
    buffer.resize(rtcp.size() + out.rtcpOverhead());
    std::size_t length = rtcp.size();
    ASSERT_EQ(out.protectRtcp(buffer, length), Status::Ok);
    buffer.resize(length);
    ASSERT_EQ(buffer, modelSrtcp(rtcpKeys, rtcp, index)) << "srtcp index " << index;
  }
}

// AEAD_AES_128_GCM (RFC 7714): session key and 96-bit salt from the same PRF (section 11),
// IV = (0^16 || SSRC || ROC || SEQ) XOR salt (section 8.1), the RTP header as AAD, the
// 16-octet tag after the ciphertext.
Bytes modelSrtpGcm(const Bytes& key, const Bytes& salt, const Bytes& rtp, std::uint32_t roc) {
  Bytes iv = salt;
  for (int i = 0; i < 4; ++i) iv[2 + i] ^= rtp[8 + i];
  for (int i = 0; i < 4; ++i) iv[6 + i] ^= static_cast<std::uint8_t>(roc >> (24 - 8 * i));
  iv[10] ^= rtp[2];
  iv[11] ^= rtp[3];
  Bytes out(rtp.begin(), rtp.begin() + 12);
  out.resize(rtp.size() + 16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int length = 0;
  EXPECT_EQ(EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), nullptr, key.data(), iv.data()), 1);
  EXPECT_EQ(EVP_EncryptUpdate(ctx, nullptr, &length, rtp.data(), 12), 1);
  EXPECT_EQ(EVP_EncryptUpdate(ctx, out.data() + 12, &length, rtp.data() + 12,
                              static_cast<int>(rtp.size() - 12)), 1);
  EXPECT_EQ(EVP_EncryptFinal_ex(ctx, out.data() + 12 + length, &length), 1);
  EXPECT_EQ(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out.data() + rtp.size()), 1);
  EVP_CIPHER_CTX_free(ctx);
  return out;
}

TEST(Rfc7714, AeadAes128GcmSessionMatchesTheModel) {
  const Bytes masterSalt(kMasterSalt.begin(), kMasterSalt.begin() + 12);
  Bytes keySalt = kMasterKey;
  keySalt.insert(keySalt.end(), masterSalt.begin(), masterSalt.end());
  const KeyMaterial key{std::span<const std::uint8_t>(keySalt)};
  SrtpSession out(CryptoSuite::AeadAes128Gcm, key, Direction::Outbound);
  SrtpSession in(CryptoSuite::AeadAes128Gcm, key, Direction::Inbound);
  const Bytes sessionKey = derive(kMasterKey, masterSalt, 0, 16);
  const Bytes sessionSalt = derive(kMasterKey, masterSalt, 2, 12);
  std::uint32_t roc = 0;
  std::uint16_t seq = 65500;
  for (int n = 0; n < 100; ++n, ++seq) {
    if (seq == 0) ++roc;
    Bytes rtp(12 + 1 + static_cast<std::size_t>(n * 3 % 200));
    rtp[0] = 0x80;
    rtp[1] = 0x00;
    rtp[2] = static_cast<std::uint8_t>(seq >> 8);
    rtp[3] = static_cast<std::uint8_t>(seq);
    rtp[8] = 0x12;
    rtp[9] = 0x34;
    rtp[10] = 0x56;
    rtp[11] = 0x78;
    for (std::size_t i = 12; i < rtp.size(); ++i) rtp[i] = static_cast<std::uint8_t>(i * 7 + n);
    Bytes buffer = rtp;
    buffer.resize(rtp.size() + out.rtpOverhead());
    std::size_t length = rtp.size();
    ASSERT_EQ(out.protectRtp(buffer, length), Status::Ok);
    buffer.resize(length);
    ASSERT_EQ(buffer, modelSrtpGcm(sessionKey, sessionSalt, rtp, roc)) << "packet " << n;
    Bytes tampered = buffer;
    tampered.back() ^= 1;
    std::size_t tamperedLength = tampered.size();
    EXPECT_EQ(in.unprotectRtp(tampered, tamperedLength), Status::AuthFailed);
    ASSERT_EQ(in.unprotectRtp(buffer, length), Status::Ok);
    buffer.resize(length);
    ASSERT_EQ(buffer, rtp);
  }
}

TEST(CryptoBackend, LibsrtpRunsOnOpenSslPrimitives) {
  // Any session initializes libsrtp, which installs the OpenSSL types (openssl_crypto.hpp);
  // each passed the self-test of the NSS type it replaced.
  Bytes keySalt = kMasterKey;
  keySalt.insert(keySalt.end(), kMasterSalt.begin(), kMasterSalt.end());
  SrtpSession session(CryptoSuite::AesCm128HmacSha1_80, KeyMaterial{std::span<const std::uint8_t>(keySalt)},
                      Direction::Outbound);
  const CryptoBackendReport& report = installOpenSslCrypto();
  EXPECT_TRUE(report.allOpenSsl);
  EXPECT_EQ(report.types, (std::vector<std::string>{"AES-ICM-128: openssl", "AES-ICM-256: openssl",
                                                    "AES-GCM-128: openssl", "AES-GCM-256: openssl",
                                                    "HMAC-SHA1: openssl"}));
}

}  // namespace
}  // namespace medius::media::srtp
