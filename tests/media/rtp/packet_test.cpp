// RTP header parsing, RFC 5761 demultiplexing and header writing/rewriting.
#include "medius/media/rtp/packet.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

namespace medius::media::rtp {
namespace {

using Bytes = std::vector<std::uint8_t>;

// PCMU, M=1, seq 0x1234, ts 0xdeadbeef, ssrc 0x01020304, 4 payload octets.
Bytes basic() {
  return {0x80, 0x80, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0xa1, 0xa2, 0xa3, 0xa4};
}

TEST(RtpPacket, ParsesFixedHeaderFields) {
  const Bytes p = basic();
  RtpView v;
  ASSERT_EQ(parseRtp(p, v), RtpStatus::Ok);
  EXPECT_EQ(v.version, 2);
  EXPECT_FALSE(v.padding);
  EXPECT_FALSE(v.extension);
  EXPECT_TRUE(v.marker);
  EXPECT_EQ(v.payloadType, 0);
  EXPECT_EQ(v.sequence, 0x1234);
  EXPECT_EQ(v.timestamp, 0xdeadbeefu);
  EXPECT_EQ(v.ssrc, 0x01020304u);
  EXPECT_EQ(v.csrcCount, 0);
  EXPECT_EQ(v.headerSize, 12u);
  ASSERT_EQ(v.payload.size(), 4u);
  EXPECT_EQ(v.payload[0], 0xa1);
  EXPECT_EQ(v.payload.data(), p.data() + 12);
}

TEST(RtpPacket, ParsesCsrcExtensionAndPadding) {
  // V=2 P=1 X=1 CC=2, PT 111, then 2 CSRC, extension profile 0xBEDE with 1 word,
  // 3 payload octets and 3 octets of padding (count 3).
  Bytes p = {0xb2, 0x6f, 0x00, 0x01, 0,    0,    0,    160,  0, 0,
             0,    9,    0,    0,    0,    0x11, 0,    0,    0, 0x22,  // CSRCs
             0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00,           // extension, 1 word
             0x01, 0x02, 0x03, 0x00, 0x00, 0x03};                      // payload + padding
  RtpView v;
  ASSERT_EQ(parseRtp(p, v), RtpStatus::Ok);
  EXPECT_TRUE(v.padding);
  EXPECT_TRUE(v.extension);
  EXPECT_FALSE(v.marker);
  EXPECT_EQ(v.payloadType, 111);
  EXPECT_EQ(v.csrcCount, 2);
  EXPECT_EQ(v.csrc(0), 0x11u);
  EXPECT_EQ(v.csrc(1), 0x22u);
  EXPECT_EQ(v.csrc(2), 0u);
  EXPECT_EQ(v.extensionProfile, 0xbede);
  ASSERT_EQ(v.extensionData.size(), 4u);
  EXPECT_EQ(v.extensionData[1], 0xaa);
  EXPECT_EQ(v.headerSize, 28u);
  EXPECT_EQ(v.paddingSize, 3);
  ASSERT_EQ(v.payload.size(), 3u);
  EXPECT_EQ(v.payload[2], 0x03);
}

TEST(RtpPacket, HeaderOnlyPacketHasEmptyPayload) {
  Bytes p = basic();
  p.resize(12);
  RtpView v;
  ASSERT_EQ(parseRtp(p, v), RtpStatus::Ok);
  EXPECT_TRUE(v.payload.empty());
}

TEST(RtpPacket, RejectsTruncated) {
  const Bytes p = basic();
  for (std::size_t n = 0; n < 12; ++n) {
    EXPECT_EQ(parseRtp(std::span(p.data(), n)).has_value(), false) << n;
    RtpView v;
    EXPECT_EQ(parseRtp(std::span(p.data(), n), v), RtpStatus::TooShort) << n;
  }
}

TEST(RtpPacket, RejectsWrongVersion) {
  for (std::uint8_t version : {0, 1, 3}) {
    Bytes p = basic();
    p[0] = static_cast<std::uint8_t>((version << 6) | (p[0] & 0x3f));
    RtpView v;
    EXPECT_EQ(parseRtp(p, v), RtpStatus::BadVersion);
  }
}

TEST(RtpPacket, RejectsCsrcCountPastTheEnd) {
  Bytes p = basic();  // 16 octets: room for one CSRC only
  p[0] = 0x8f;        // CC = 15 needs 72 octets of header
  RtpView v;
  EXPECT_EQ(parseRtp(p, v), RtpStatus::CsrcOverrun);
  p[0] = 0x81;  // CC = 1 fits exactly (empty payload)
  ASSERT_EQ(parseRtp(p, v), RtpStatus::Ok);
  EXPECT_EQ(v.csrc(0), 0xa1a2a3a4u);
  EXPECT_TRUE(v.payload.empty());
  p[0] = 0x82;
  EXPECT_EQ(parseRtp(p, v), RtpStatus::CsrcOverrun);
}

TEST(RtpPacket, RejectsExtensionPastTheEnd) {
  Bytes p = basic();
  p[0] = 0x90;  // X=1: the 4 payload octets become the extension header
  p[12] = 0xbe;
  p[13] = 0xde;
  p[14] = 0x00;
  p[15] = 0x00;  // 0 words: fits
  RtpView v;
  ASSERT_EQ(parseRtp(p, v), RtpStatus::Ok);
  EXPECT_TRUE(v.extensionData.empty());
  EXPECT_TRUE(v.payload.empty());
  p[15] = 0x01;  // 1 word past the end
  EXPECT_EQ(parseRtp(p, v), RtpStatus::ExtensionOverrun);
  p[14] = 0xff;
  p[15] = 0xff;  // 65535 words
  EXPECT_EQ(parseRtp(p, v), RtpStatus::ExtensionOverrun);
  p.resize(14);  // not even the extension header
  EXPECT_EQ(parseRtp(p, v), RtpStatus::ExtensionOverrun);
}

TEST(RtpPacket, RejectsBadPadding) {
  Bytes p = basic();
  p[0] = 0xa0;  // P=1
  RtpView v;
  p[15] = 0;  // count 0
  EXPECT_EQ(parseRtp(p, v), RtpStatus::BadPadding);
  p[15] = 5;  // larger than the 4 octets after the header
  EXPECT_EQ(parseRtp(p, v), RtpStatus::BadPadding);
  p[15] = 4;  // all of it padding: valid, empty payload
  ASSERT_EQ(parseRtp(p, v), RtpStatus::Ok);
  EXPECT_TRUE(v.payload.empty());
  EXPECT_EQ(v.paddingSize, 4);
  p.resize(12);  // header only with P set: the padding count would be in the header
  p[11] = 1;
  EXPECT_EQ(parseRtp(p, v), RtpStatus::BadPadding);
}

TEST(RtpPacket, Rfc5761Demultiplexing) {
  Bytes p = basic();
  EXPECT_FALSE(isRtcp(p));
  for (int second : {192, 200, 201, 206, 207, 223}) {
    p[1] = static_cast<std::uint8_t>(second);
    EXPECT_TRUE(isRtcp(p)) << second;
  }
  for (int second : {0, 96, 127, 128, 191, 224, 255}) {
    p[1] = static_cast<std::uint8_t>(second);
    EXPECT_FALSE(isRtcp(p)) << second;
  }
  EXPECT_FALSE(isRtcp(std::span(p.data(), 1)));
  EXPECT_FALSE(isRtcp({}));
}

TEST(RtpPacket, WritesHeaderThatParsesBack) {
  std::array<std::uint8_t, 20> buf{};
  const RtpHeader h{
      .payloadType = 9, .marker = true, .sequence = 65535, .timestamp = 0xfffffff0u, .ssrc = 0xcafebabeu};
  ASSERT_EQ(writeRtpHeader(buf, h), 12u);
  const std::array<std::uint8_t, 12> expected = {0x80, 0x89, 0xff, 0xff, 0xff, 0xff,
                                                 0xff, 0xf0, 0xca, 0xfe, 0xba, 0xbe};
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), buf.begin()));
  const auto v = parseRtp(buf);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->payload.size(), 8u);
  EXPECT_EQ(writeRtpHeader(std::span(buf.data(), 11), h), 0u);
  EXPECT_EQ(writeRtpHeader(buf, RtpHeader{.payloadType = 128}), 0u);
}

TEST(RtpPacket, RewritesInPlace) {
  Bytes p = basic();
  ASSERT_TRUE(setPayloadType(p, 101));
  ASSERT_TRUE(setMarker(p, false));
  ASSERT_TRUE(setSequence(p, 7));
  ASSERT_TRUE(setTimestamp(p, 48000));
  ASSERT_TRUE(setSsrc(p, 0x0a0b0c0d));
  const auto v = parseRtp(p);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->payloadType, 101);
  EXPECT_FALSE(v->marker);
  EXPECT_EQ(v->sequence, 7);
  EXPECT_EQ(v->timestamp, 48000u);
  EXPECT_EQ(v->ssrc, 0x0a0b0c0du);
  EXPECT_EQ(v->payload[3], 0xa4);
  ASSERT_TRUE(setMarker(p, true));
  EXPECT_EQ(p[1], 0x80 | 101);
  EXPECT_FALSE(setPayloadType(p, 200));
  EXPECT_EQ(p[1], 0x80 | 101);
  Bytes shortPacket(11, 0x80);
  EXPECT_FALSE(setSequence(shortPacket, 1));
  EXPECT_FALSE(setSsrc(shortPacket, 1));
  EXPECT_FALSE(setTimestamp(shortPacket, 1));
  EXPECT_FALSE(setMarker(shortPacket, true));
  EXPECT_EQ(shortPacket, Bytes(11, 0x80));
}

}  // namespace
}  // namespace medius::media::rtp
