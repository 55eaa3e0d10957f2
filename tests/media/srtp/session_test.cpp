// SrtpSession over libsrtp2: known answers, round trips for every suite, replay, tampering,
// wrong keys, MKI, and lengths from 0 to huge.
#include "medius/media/srtp/session.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace medius::media::srtp {
namespace {

using Bytes = std::vector<std::uint8_t>;

// Known answers from libsrtp's own test driver, test/srtp_driver.c (v2.5.0):
// srtp_validate() for AES_CM_128_HMAC_SHA1_80 and srtp_validate_gcm() for AES-GCM-128
// (16-octet tag), SSRC 0xcafebabe, first packet. test_key is the RFC 3711 Appendix B.3
// master key E1F97A0D3E018BE0D64FA32C06DE4139 and salt 0EC675AD498AFEEBB6960B3AABE6.
const Bytes kTestKey = {0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f,
                        0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39, 0x0e, 0xc6, 0x75, 0xad,
                        0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6};
const Bytes kRtpPlain = {0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe,
                         0xba, 0xbe, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
                         0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab};
const Bytes kSrtpCipher = {0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe,
                           0xba, 0xbe, 0x4e, 0x55, 0xdc, 0x4c, 0xe7, 0x99, 0x78, 0xd8,
                           0x8c, 0xa4, 0xd2, 0x15, 0x94, 0x9d, 0x24, 0x02, 0xb7, 0x8d,
                           0x6a, 0xcc, 0x99, 0xea, 0x17, 0x9b, 0x8d, 0xbb};
const Bytes kRtcpPlain = {0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0xab, 0xab, 0xab, 0xab,
                          0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab};
const Bytes kSrtcpCipher = {0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0x71, 0x28,
                            0x03, 0x5b, 0xe4, 0x87, 0xb9, 0xbd, 0xbe, 0xf8, 0x90, 0x41,
                            0xf9, 0x77, 0xa5, 0xa8, 0x80, 0x00, 0x00, 0x01, 0x99, 0x3e,
                            0x08, 0xcd, 0x54, 0xd6, 0xc1, 0x23, 0x07, 0x98};
const Bytes kGcmKey = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
                       0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0xa0, 0xa1, 0xa2, 0xa3,
                       0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab};
const Bytes kGcmSrtpCipher = {0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba,
                              0xbe, 0xc5, 0x00, 0x2e, 0xde, 0x04, 0xcf, 0xdd, 0x2e, 0xb9, 0x11,
                              0x59, 0xe0, 0x88, 0x0a, 0xa0, 0x6e, 0xd2, 0x97, 0x68, 0x26, 0xf7,
                              0x96, 0xb2, 0x01, 0xdf, 0x31, 0x31, 0xa1, 0x27, 0xe8, 0xa3, 0x92};
const Bytes kGcmSrtcpCipher = {0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0xc9, 0x8b, 0x8b,
                               0x5d, 0xf0, 0x39, 0x2a, 0x55, 0x85, 0x2b, 0x6c, 0x21, 0xac, 0x8e,
                               0x70, 0x25, 0xc5, 0x2c, 0x6f, 0xbe, 0xa2, 0xb3, 0xb4, 0x46, 0xea,
                               0x31, 0x12, 0x3b, 0xa8, 0x8c, 0xe6, 0x1e, 0x80, 0x00, 0x00, 0x01};
// srtp_validate_aes_256() (AES_256_CM_HMAC_SHA1_80), RTP only.
const Bytes kAes256Key = {0xf0, 0xf0, 0x49, 0x14, 0xb5, 0x13, 0xf2, 0x76, 0x3a, 0x1b, 0x1f, 0xa1,
                          0x30, 0xf1, 0x0e, 0x29, 0x98, 0xf6, 0xf6, 0xe4, 0x3e, 0x43, 0x09, 0xd1,
                          0xe6, 0x22, 0xa0, 0xe3, 0x32, 0xb9, 0xf1, 0xb6, 0x3b, 0x04, 0x80, 0x3d,
                          0xe5, 0x1e, 0xe7, 0xc9, 0x64, 0x23, 0xab, 0x5b, 0x78, 0xd2};
const Bytes kAes256SrtpCipher = {0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe,
                                 0xba, 0xbe, 0xf1, 0xd9, 0xde, 0x17, 0xff, 0x25, 0x1f, 0xf1,
                                 0xaa, 0x00, 0x77, 0x74, 0xb0, 0xb4, 0xb4, 0x0d, 0xa0, 0x8d,
                                 0x9d, 0x9a, 0x5b, 0x3a, 0x55, 0xd8, 0x87, 0x3b};

KeyMaterial keyOf(const Bytes& bytes) { return KeyMaterial(std::span<const std::uint8_t>(bytes)); }

// Protects `plain` into a buffer with exactly the room the session says it needs.
Bytes protect(SrtpSession& session, const Bytes& plain, bool rtcp, Status expected = Status::Ok) {
  Bytes buffer = plain;
  buffer.resize(plain.size() + (rtcp ? session.rtcpOverhead() : session.rtpOverhead()));
  std::size_t length = plain.size();
  const Status status = rtcp ? session.protectRtcp(buffer, length) : session.protectRtp(buffer, length);
  EXPECT_EQ(status, expected);
  buffer.resize(status == Status::Ok ? length : 0);
  return buffer;
}

Status unprotect(SrtpSession& session, Bytes& packet, bool rtcp) {
  std::size_t length = packet.size();
  const Status status = rtcp ? session.unprotectRtcp(packet, length) : session.unprotectRtp(packet, length);
  if (status == Status::Ok) {
    packet.resize(length);
  } else {
    EXPECT_EQ(length, packet.size()) << "length must not change on failure";
  }
  return status;
}

// A G.711-sized RTP packet: 12-octet header, PT 0, 160 octets of payload.
Bytes rtpPacket(std::uint16_t seq, std::uint32_t ssrc = 0x11223344, std::size_t payload = 160) {
  Bytes p(12 + payload);
  p[0] = 0x80;
  p[1] = 0x00;
  p[2] = static_cast<std::uint8_t>(seq >> 8);
  p[3] = static_cast<std::uint8_t>(seq);
  const std::uint32_t ts = 160u * seq;
  for (int i = 0; i < 4; ++i) p[4 + i] = static_cast<std::uint8_t>(ts >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) p[8 + i] = static_cast<std::uint8_t>(ssrc >> (24 - 8 * i));
  for (std::size_t i = 0; i < payload; ++i) p[12 + i] = static_cast<std::uint8_t>(i * 7 + seq);
  return p;
}

// An RTCP receiver report with one report block (RFC 3550 section 6.4.2), 32 octets.
Bytes rtcpPacket(std::uint32_t ssrc = 0x11223344) {
  Bytes p(32, 0x5a);
  p[0] = 0x81;
  p[1] = 201;
  p[2] = 0;
  p[3] = 7;
  for (int i = 0; i < 4; ++i) p[4 + i] = static_cast<std::uint8_t>(ssrc >> (24 - 8 * i));
  return p;
}

TEST(SrtpSession, KnownAnswerAesCm128Sha1_80FromLibsrtpDriver) {
  SrtpSession out(CryptoSuite::AesCm128HmacSha1_80, keyOf(kTestKey), Direction::Outbound);
  EXPECT_EQ(protect(out, kRtpPlain, false), kSrtpCipher);
  EXPECT_EQ(protect(out, kRtcpPlain, true), kSrtcpCipher);

  SrtpSession in(CryptoSuite::AesCm128HmacSha1_80, keyOf(kTestKey), Direction::Inbound);
  Bytes packet = kSrtpCipher;
  EXPECT_EQ(unprotect(in, packet, false), Status::Ok);
  EXPECT_EQ(packet, kRtpPlain);
  Bytes unencrypted = kSrtcpCipher;
  unencrypted[24] &= 0x7f;  // E flag cleared: unencrypted SRTCP, which we never accept
  EXPECT_EQ(unprotect(in, unencrypted, true), Status::AuthFailed);
  Bytes control = kSrtcpCipher;
  EXPECT_EQ(unprotect(in, control, true), Status::Ok);
  EXPECT_EQ(control, kRtcpPlain);
}

TEST(SrtpSession, KnownAnswerAes256CmSha1_80FromLibsrtpDriver) {
  SrtpSession out(CryptoSuite::Aes256CmHmacSha1_80, keyOf(kAes256Key), Direction::Outbound);
  EXPECT_EQ(protect(out, kRtpPlain, false), kAes256SrtpCipher);
  SrtpSession in(CryptoSuite::Aes256CmHmacSha1_80, keyOf(kAes256Key), Direction::Inbound);
  Bytes packet = kAes256SrtpCipher;
  EXPECT_EQ(unprotect(in, packet, false), Status::Ok);
  EXPECT_EQ(packet, kRtpPlain);
}

TEST(SrtpSession, KnownAnswerAeadAes128GcmFromLibsrtpDriver) {
  ASSERT_TRUE(suiteAvailable(CryptoSuite::AeadAes128Gcm)) << "Debian's libsrtp2 (NSS) has GCM";
  SrtpSession out(CryptoSuite::AeadAes128Gcm, keyOf(kGcmKey), Direction::Outbound);
  EXPECT_EQ(protect(out, kRtpPlain, false), kGcmSrtpCipher);
  EXPECT_EQ(protect(out, kRtcpPlain, true), kGcmSrtcpCipher);
  SrtpSession in(CryptoSuite::AeadAes128Gcm, keyOf(kGcmKey), Direction::Inbound);
  Bytes packet = kGcmSrtpCipher;
  EXPECT_EQ(unprotect(in, packet, false), Status::Ok);
  EXPECT_EQ(packet, kRtpPlain);
  Bytes control = kGcmSrtcpCipher;
  EXPECT_EQ(unprotect(in, control, true), Status::Ok);
  EXPECT_EQ(control, kRtcpPlain);
}

class EverySuite : public ::testing::TestWithParam<CryptoSuite> {};

TEST_P(EverySuite, RoundTripRtpAndRtcp) {
  const CryptoSuite suite = GetParam();
  ASSERT_TRUE(suiteAvailable(suite));
  const KeyMaterial key = generateKeyMaterial(suite);
  SrtpSession out(suite, key, Direction::Outbound);
  SrtpSession in(suite, key, Direction::Inbound);
  const SuiteInfo& info = suiteInfo(suite);
  EXPECT_EQ(out.rtpOverhead(), info.rtpTagLength);
  EXPECT_EQ(out.rtcpOverhead(), 4 + info.rtcpTagLength);
  for (std::uint16_t seq = 65530; seq != 10; ++seq) {  // crosses the ROC wrap at 65535
    const Bytes plain = rtpPacket(seq);
    Bytes packet = protect(out, plain, false);
    ASSERT_EQ(packet.size(), plain.size() + info.rtpTagLength);
    EXPECT_TRUE(std::equal(plain.begin(), plain.begin() + 12, packet.begin())) << "header in clear";
    EXPECT_FALSE(std::equal(plain.begin() + 12, plain.end(), packet.begin() + 12)) << "payload encrypted";
    ASSERT_EQ(unprotect(in, packet, false), Status::Ok) << "seq " << seq;
    EXPECT_EQ(packet, plain);
  }
  for (int i = 0; i < 3; ++i) {
    const Bytes plain = rtcpPacket();
    Bytes packet = protect(out, plain, true);
    ASSERT_EQ(packet.size(), plain.size() + 4 + info.rtcpTagLength);
    // E flag set and the SRTCP index (RFC 3711 section 3.4): before the tag for AES-CM,
    // after it for AEAD (RFC 7714 section 17).
    const std::size_t e = plain.size() + (info.aead ? info.rtcpTagLength : 0);
    EXPECT_EQ(packet[e], 0x80);
    EXPECT_EQ(packet[e + 3], i + 1);  // libsrtp starts SRTCP indexes at 1
    ASSERT_EQ(unprotect(in, packet, true), Status::Ok);
    EXPECT_EQ(packet, plain);
  }
}

TEST_P(EverySuite, ProtectWritesNothingPastTheOverhead) {
  const CryptoSuite suite = GetParam();
  const KeyMaterial key = generateKeyMaterial(suite);
  SrtpSession out(suite, key, Direction::Outbound);
  for (bool rtcp : {false, true}) {
    const Bytes plain = rtcp ? rtcpPacket() : rtpPacket(1);
    const std::size_t overhead = rtcp ? out.rtcpOverhead() : out.rtpOverhead();
    Bytes buffer(plain.size() + overhead + 64, 0xee);
    std::copy(plain.begin(), plain.end(), buffer.begin());
    std::size_t length = plain.size();
    const std::span<std::uint8_t> room(buffer.data(), plain.size() + overhead);
    ASSERT_EQ(rtcp ? out.protectRtcp(room, length) : out.protectRtp(room, length), Status::Ok);
    EXPECT_EQ(length, plain.size() + overhead);
    EXPECT_TRUE(std::all_of(buffer.begin() + static_cast<std::ptrdiff_t>(length), buffer.end(),
                            [](std::uint8_t b) { return b == 0xee; }));
    // One octet less room: refused before libsrtp writes anything.
    std::size_t again = plain.size();
    Bytes tight = plain;
    tight.resize(plain.size() + overhead - 1);
    EXPECT_EQ(rtcp ? out.protectRtcp(tight, again) : out.protectRtp(tight, again), Status::BadPacket);
    EXPECT_EQ(again, plain.size());
  }
}

TEST_P(EverySuite, ReplayedPacketIsReplayed) {
  const CryptoSuite suite = GetParam();
  const KeyMaterial key = generateKeyMaterial(suite);
  SrtpSession out(suite, key, Direction::Outbound);
  SrtpSession in(suite, key, Direction::Inbound);
  const Bytes first = protect(out, rtpPacket(100), false);
  Bytes copy = first;
  EXPECT_EQ(unprotect(in, copy, false), Status::Ok);
  copy = first;
  EXPECT_EQ(unprotect(in, copy, false), Status::Replayed);
  const Bytes control = protect(out, rtcpPacket(), true);
  copy = control;
  EXPECT_EQ(unprotect(in, copy, true), Status::Ok);
  copy = control;
  EXPECT_EQ(unprotect(in, copy, true), Status::Replayed);
}

TEST_P(EverySuite, EveryFlippedBitIsAuthFailed) {
  const CryptoSuite suite = GetParam();
  const KeyMaterial key = generateKeyMaterial(suite);
  SrtpSession out(suite, key, Direction::Outbound);
  SrtpSession in(suite, key, Direction::Inbound);
  const Bytes plain = rtpPacket(7, 0x11223344, 20);
  const Bytes packet = protect(out, plain, false);
  int authFailed = 0;
  for (std::size_t bit = 0; bit < packet.size() * 8; ++bit) {
    Bytes tampered = packet;
    tampered[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    const Status status = unprotect(in, tampered, false);
    // Flipping the version bits, the CSRC count or the X bit makes the header itself
    // invalid (BadPacket); every other bit must fail authentication.
    const bool headerShape = bit < 8 && (bit % 8 == 7 || bit % 8 == 6 || bit % 8 <= 4);
    if (headerShape && status == Status::BadPacket) continue;
    EXPECT_EQ(status, Status::AuthFailed) << "bit " << bit;
    authFailed += status == Status::AuthFailed;
  }
  EXPECT_GE(authFailed, static_cast<int>(packet.size() * 8) - 8);
  // The genuine packet still passes afterwards: failures did not touch the replay window.
  Bytes genuine = packet;
  EXPECT_EQ(unprotect(in, genuine, false), Status::Ok);
  EXPECT_EQ(genuine, plain);

  const Bytes control = protect(out, rtcpPacket(), true);
  for (std::size_t bit = 0; bit < control.size() * 8; bit += 3) {
    Bytes tampered = control;
    tampered[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    const Status status = unprotect(in, tampered, true);
    if (bit / 8 == 0 && (bit % 8 >= 6) && status == Status::BadPacket) continue;  // version
    EXPECT_EQ(status, Status::AuthFailed) << "rtcp bit " << bit;
  }
}

TEST_P(EverySuite, WrongKeyIsAuthFailed) {
  const CryptoSuite suite = GetParam();
  SrtpSession out(suite, generateKeyMaterial(suite), Direction::Outbound);
  SrtpSession in(suite, generateKeyMaterial(suite), Direction::Inbound);
  Bytes packet = protect(out, rtpPacket(1), false);
  EXPECT_EQ(unprotect(in, packet, false), Status::AuthFailed);
  Bytes control = protect(out, rtcpPacket(), true);
  EXPECT_EQ(unprotect(in, control, true), Status::AuthFailed);
}

TEST_P(EverySuite, TruncatedAndTinyPacketsNeverCrash) {
  const CryptoSuite suite = GetParam();
  const KeyMaterial key = generateKeyMaterial(suite);
  SrtpSession out(suite, key, Direction::Outbound);
  SrtpSession in(suite, key, Direction::Inbound);
  const Bytes packet = protect(out, rtpPacket(3), false);
  const Bytes control = protect(out, rtcpPacket(), true);
  for (std::size_t length = 0; length < packet.size(); ++length) {
    Bytes cut(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(length));
    const Status status = unprotect(in, cut, false);
    if (length < 12 + suiteInfo(suite).rtpTagLength) {
      EXPECT_EQ(status, Status::BadPacket) << length;
    } else {
      EXPECT_EQ(status, Status::AuthFailed) << length;
    }
  }
  for (std::size_t length = 0; length < control.size(); ++length) {
    Bytes cut(control.begin(), control.begin() + static_cast<std::ptrdiff_t>(length));
    const Status status = unprotect(in, cut, true);
    EXPECT_TRUE(status == Status::BadPacket || status == Status::AuthFailed) << length;
    if (length < 12 + suiteInfo(suite).rtcpTagLength) {
      EXPECT_EQ(status, Status::BadPacket) << length;
    }
  }
  // The untouched packets still authenticate: nothing above advanced the replay window.
  Bytes whole = packet;
  EXPECT_EQ(unprotect(in, whole, false), Status::Ok);
  whole = control;
  EXPECT_EQ(unprotect(in, whole, true), Status::Ok);
}

INSTANTIATE_TEST_SUITE_P(Suites, EverySuite,
                         ::testing::Values(CryptoSuite::AesCm128HmacSha1_80, CryptoSuite::AesCm128HmacSha1_32,
                                           CryptoSuite::Aes256CmHmacSha1_80, CryptoSuite::Aes256CmHmacSha1_32,
                                           CryptoSuite::AeadAes128Gcm, CryptoSuite::AeadAes256Gcm),
                         [](const auto& param) { return std::string(suiteName(param.param)); });

TEST(SrtpSession, GarbageOfAnyLengthIsRejectedWithoutCrash) {
  SrtpSession in(CryptoSuite::AesCm128HmacSha1_80, generateKeyMaterial(CryptoSuite::AesCm128HmacSha1_80),
                 Direction::Inbound);
  std::uint32_t x = 12345;
  for (std::size_t length : {0, 1, 2, 11, 12, 13, 21, 22, 23, 100, 1500, 65535, 65536}) {
    for (int round = 0; round < 4; ++round) {
      Bytes garbage(length);
      for (auto& b : garbage) b = static_cast<std::uint8_t>((x = x * 1103515245 + 12345) >> 24);
      if (length > 0 && round % 2 == 0) garbage[0] = static_cast<std::uint8_t>(0x80 | (garbage[0] & 0x3f));
      Bytes copy = garbage;
      const Status rtp = unprotect(in, copy, false);
      EXPECT_TRUE(rtp == Status::BadPacket || rtp == Status::AuthFailed) << length;
      copy = garbage;
      const Status rtcp = unprotect(in, copy, true);
      EXPECT_TRUE(rtcp == Status::BadPacket || rtcp == Status::AuthFailed) << length << " " << statusName(rtcp);
    }
  }
  // Longer than kMaxPacketLength, and a length beyond the span: BadPacket, not read.
  Bytes huge(SrtpSession::kMaxPacketLength + 100, 0x80);
  std::size_t length = huge.size();
  EXPECT_EQ(in.unprotectRtp(huge, length), Status::BadPacket);
  Bytes small(40, 0x80);
  length = 4000;
  EXPECT_EQ(in.unprotectRtp(small, length), Status::BadPacket);
  EXPECT_EQ(in.unprotectRtcp(small, length), Status::BadPacket);
  EXPECT_EQ(in.unprotectRtp(std::span<std::uint8_t>(), length = 0), Status::BadPacket);
}

TEST(SrtpSession, HeaderLengthsPastTheEndAreBadPacket) {
  const KeyMaterial key = generateKeyMaterial(CryptoSuite::AesCm128HmacSha1_80);
  SrtpSession out(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Outbound);
  SrtpSession in(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Inbound);
  Bytes packet = rtpPacket(1, 0x11223344, 20);
  packet[0] = 0x8f;  // 15 CSRCs = 60 octets, more than the packet
  EXPECT_TRUE(protect(out, packet, false, Status::BadPacket).empty());
  std::size_t length = packet.size();
  EXPECT_EQ(in.unprotectRtp(packet, length), Status::BadPacket);
  packet[0] = 0x90;  // extension header claiming 0xffff words
  packet[12] = 0xbe;
  packet[13] = 0xde;
  packet[14] = 0xff;
  packet[15] = 0xff;
  EXPECT_TRUE(protect(out, packet, false, Status::BadPacket).empty());
  EXPECT_EQ(in.unprotectRtp(packet, length), Status::BadPacket);
  packet[0] = 0x40;  // version 1
  EXPECT_TRUE(protect(out, packet, false, Status::BadPacket).empty());
  Bytes control = rtcpPacket();
  control[0] = 0x01;  // version 0
  EXPECT_TRUE(protect(out, control, true, Status::BadPacket).empty());
  // A valid extension is protected and comes back.
  Bytes withExtension = rtpPacket(2, 0x11223344, 20);
  withExtension[0] = 0x90;
  withExtension[12] = 0xbe;
  withExtension[13] = 0xde;
  withExtension[14] = 0x00;
  withExtension[15] = 0x01;
  Bytes protectedPacket = protect(out, withExtension, false);
  ASSERT_FALSE(protectedPacket.empty());
  EXPECT_EQ(unprotect(in, protectedPacket, false), Status::Ok);
  EXPECT_EQ(protectedPacket, withExtension);
}

TEST(SrtpSession, RetransmittedPacketIsProtectedAgainIdentically) {
  // allow_repeat_tx: a duplicate handed to protect gives the same SRTP packet, and the
  // receiver drops the second copy as Replayed.
  const KeyMaterial key = generateKeyMaterial(CryptoSuite::AesCm128HmacSha1_80);
  SrtpSession out(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Outbound);
  SrtpSession in(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Inbound);
  const Bytes first = protect(out, rtpPacket(5), false);
  const Bytes second = protect(out, rtpPacket(5), false);
  EXPECT_EQ(first, second);
  Bytes copy = first;
  EXPECT_EQ(unprotect(in, copy, false), Status::Ok);
  copy = second;
  EXPECT_EQ(unprotect(in, copy, false), Status::Replayed);
}

TEST(SrtpSession, OutboundSequenceJumpingBackFailsOnlyBeyondTheWindow) {
  const KeyMaterial key = generateKeyMaterial(CryptoSuite::AesCm128HmacSha1_80);
  SrtpSession out(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Outbound);
  SrtpSession in(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Inbound);
  Bytes p = protect(out, rtpPacket(30000), false);
  EXPECT_EQ(unprotect(in, p, false), Status::Ok);
  // 500 back, never sent: inside the window, a fresh index, protected and accepted.
  p = protect(out, rtpPacket(29500), false);
  EXPECT_EQ(unprotect(in, p, false), Status::Ok);
  // A source restarting at 5 with the same SSRC: older than the window, refused.
  EXPECT_TRUE(protect(out, rtpPacket(5), false, Status::Replayed).empty());
  // Going forward again works.
  p = protect(out, rtpPacket(30001), false);
  EXPECT_EQ(unprotect(in, p, false), Status::Ok);
}

TEST(SrtpSession, ReorderingInsideTheWindowIsAcceptedOutsideIsReplayed) {
  const KeyMaterial key = generateKeyMaterial(CryptoSuite::AesCm128HmacSha1_80);
  SrtpSession out(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Outbound);
  SrtpSession in(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Inbound);
  std::vector<Bytes> sent;
  for (std::uint16_t seq = 0; seq < 1200; ++seq) sent.push_back(protect(out, rtpPacket(seq), false));
  Bytes p = sent[1100];
  EXPECT_EQ(unprotect(in, p, false), Status::Ok);
  p = sent[1100 - 1000];  // 1000 behind: inside the 1024-packet window
  EXPECT_EQ(unprotect(in, p, false), Status::Ok);
  p = sent[1100 - 1030];  // 1030 behind: too old
  EXPECT_EQ(unprotect(in, p, false), Status::Replayed);
}

TEST(SrtpSession, ManySsrcsAreServedAndBounded) {
  const KeyMaterial key = generateKeyMaterial(CryptoSuite::AesCm128HmacSha1_80);
  SrtpSession out(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Outbound);
  SrtpSession in(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Inbound);
  // 40 SSRCs (more than kMaxStreams): each is protected and unprotected correctly.
  for (std::uint32_t ssrc = 1; ssrc <= 40; ++ssrc) {
    for (std::uint16_t seq = 0; seq < 3; ++seq) {
      const Bytes plain = rtpPacket(seq, ssrc);
      Bytes packet = protect(out, plain, false);
      ASSERT_EQ(unprotect(in, packet, false), Status::Ok) << ssrc;
      EXPECT_EQ(packet, plain);
    }
  }
  // The most recent SSRC still has its replay window.
  Bytes replay = protect(out, rtpPacket(1, 40), false);
  EXPECT_EQ(unprotect(in, replay, false), Status::Replayed);
}

TEST(SrtpSession, MkiKeysSelectedByThePacket) {
  const CryptoSuite suite = CryptoSuite::AesCm128HmacSha1_80;
  const std::vector<MasterKey> keys = {{generateKeyMaterial(suite), Mki{1, 4}},
                                       {generateKeyMaterial(suite), Mki{2, 4}}};
  SrtpSession out1(suite, keys, Direction::Outbound);
  const std::vector<MasterKey> second = {keys[1]};
  SrtpSession out2(suite, second, Direction::Outbound);
  SrtpSession in(suite, keys, Direction::Inbound);
  EXPECT_EQ(out1.rtpOverhead(), 10u + 4u);
  EXPECT_EQ(out1.rtcpOverhead(), 14u + 4u);
  Bytes a = protect(out1, rtpPacket(1), false);
  ASSERT_EQ(a.size(), 172u + 14u);
  // The MKI sits between payload and tag, big-endian (RFC 3711 section 3.1).
  EXPECT_EQ(Bytes(a.begin() + 172, a.begin() + 176), (Bytes{0, 0, 0, 1}));
  Bytes b = protect(out2, rtpPacket(2), false);
  EXPECT_EQ(Bytes(b.begin() + 172, b.begin() + 176), (Bytes{0, 0, 0, 2}));
  EXPECT_EQ(unprotect(in, a, false), Status::Ok);
  EXPECT_EQ(a, rtpPacket(1));
  EXPECT_EQ(unprotect(in, b, false), Status::Ok);
  EXPECT_EQ(b, rtpPacket(2));
  Bytes c = protect(out1, rtcpPacket(), true);
  EXPECT_EQ(unprotect(in, c, true), Status::Ok);
  // An MKI we do not know: AuthFailed.
  Bytes d = protect(out1, rtpPacket(3), false);
  d[175] = 9;
  EXPECT_EQ(unprotect(in, d, false), Status::AuthFailed);
}

TEST(SrtpSession, ConstructorRefusesBadParameters) {
  const CryptoSuite suite = CryptoSuite::AesCm128HmacSha1_80;
  const Bytes shortKey(29, 1);
  EXPECT_THROW(SrtpSession(suite, keyOf(shortKey), Direction::Inbound), SrtpError);
  EXPECT_THROW(SrtpSession(CryptoSuite::AeadAes128Gcm, keyOf(kTestKey), Direction::Inbound), SrtpError);
  const std::vector<MasterKey> noMkis = {{generateKeyMaterial(suite), std::nullopt},
                                         {generateKeyMaterial(suite), std::nullopt}};
  EXPECT_THROW(SrtpSession(suite, noMkis, Direction::Inbound), SrtpError);
  const std::vector<MasterKey> sameMki = {{generateKeyMaterial(suite), Mki{1, 2}},
                                          {generateKeyMaterial(suite), Mki{1, 2}}};
  EXPECT_THROW(SrtpSession(suite, sameMki, Direction::Inbound), SrtpError);
  const std::vector<MasterKey> tooBig = {{generateKeyMaterial(suite), Mki{256, 1}}};
  EXPECT_THROW(SrtpSession(suite, tooBig, Direction::Inbound), SrtpError);
  EXPECT_THROW(SrtpSession(suite, std::span<const MasterKey>(), Direction::Inbound), SrtpError);
}

TEST(SrtpSession, WrongDirectionIsError) {
  const KeyMaterial key = generateKeyMaterial(CryptoSuite::AesCm128HmacSha1_80);
  SrtpSession in(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Inbound);
  SrtpSession out(CryptoSuite::AesCm128HmacSha1_80, key, Direction::Outbound);
  Bytes packet = rtpPacket(1);
  packet.resize(200);
  std::size_t length = 172;
  EXPECT_EQ(in.protectRtp(packet, length), Status::Error);
  EXPECT_EQ(in.protectRtcp(packet, length), Status::Error);
  EXPECT_EQ(out.unprotectRtp(packet, length), Status::Error);
  EXPECT_EQ(out.unprotectRtcp(packet, length), Status::Error);
  EXPECT_EQ(length, 172u);
}

TEST(SrtpSession, RekeyingIsANewSession) {
  // RFC 4568 section 7.1.4: new keys on re-INVITE; the old receiver rejects the new key's
  // packets, the new receiver accepts them from sequence number 0 again.
  const CryptoSuite suite = CryptoSuite::AesCm128HmacSha1_80;
  const KeyMaterial oldKey = generateKeyMaterial(suite);
  const KeyMaterial newKey = generateKeyMaterial(suite);
  SrtpSession oldIn(suite, oldKey, Direction::Inbound);
  SrtpSession newOut(suite, newKey, Direction::Outbound);
  SrtpSession newIn(suite, newKey, Direction::Inbound);
  Bytes packet = protect(newOut, rtpPacket(0), false);
  Bytes copy = packet;
  EXPECT_EQ(unprotect(oldIn, copy, false), Status::AuthFailed);
  EXPECT_EQ(unprotect(newIn, packet, false), Status::Ok);
}

TEST(SrtpSession, StatusNames) {
  EXPECT_EQ(statusName(Status::Ok), "ok");
  EXPECT_EQ(statusName(Status::AuthFailed), "auth_failed");
  EXPECT_EQ(statusName(Status::Replayed), "replayed");
  EXPECT_EQ(statusName(Status::BadPacket), "bad_packet");
  EXPECT_EQ(statusName(Status::Error), "error");
}

}  // namespace
}  // namespace medius::media::srtp
