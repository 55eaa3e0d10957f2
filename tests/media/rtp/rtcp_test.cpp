// RTCP compound parsing (good packets and each kind of malformed one) and the SR/RR+SDES
// builders.
#include "medius/media/rtp/rtcp.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

namespace medius::media::rtp {
namespace {

using Bytes = std::vector<std::uint8_t>;

void append(Bytes& b, std::initializer_list<int> octets) {
  for (int o : octets) b.push_back(static_cast<std::uint8_t>(o));
}
void append32(Bytes& b, std::uint32_t v) {
  append(b, {int(v >> 24), int((v >> 16) & 0xff), int((v >> 8) & 0xff), int(v & 0xff)});
}

// An RR from 0x11111111 with one block about 0x22222222 (fraction 64, lost -3, ext seq
// 0x0001fff0, jitter 80, LSR 0x12345678, DLSR 0x00018000), then BYE.
Bytes rrWithBye() {
  Bytes b;
  append(b, {0x81, 201, 0x00, 0x07});
  append32(b, 0x11111111);
  append32(b, 0x22222222);
  append(b, {64, 0xff, 0xff, 0xfd});
  append32(b, 0x0001fff0);
  append32(b, 80);
  append32(b, 0x12345678);
  append32(b, 0x00018000);
  append(b, {0x81, 203, 0x00, 0x01});
  append32(b, 0x11111111);
  return b;
}

TEST(Rtcp, ParsesReceiverReportBlockAndBye) {
  const Bytes b = rrWithBye();
  RtcpInfo info;
  ASSERT_EQ(parseRtcp(b, info), RtcpStatus::Ok);
  EXPECT_FALSE(info.hasSenderReport);
  EXPECT_EQ(info.senderSsrc, 0x11111111u);
  ASSERT_EQ(info.blockCount, 1u);
  const ReportBlock& r = info.blocks[0];
  EXPECT_EQ(r.ssrc, 0x22222222u);
  EXPECT_EQ(r.fractionLost, 64);
  EXPECT_EQ(r.cumulativeLost, -3);
  EXPECT_EQ(r.extHighestSeq, 0x0001fff0u);
  EXPECT_EQ(r.jitter, 80u);
  EXPECT_EQ(r.lastSr, 0x12345678u);
  EXPECT_EQ(r.delaySinceLastSr, 0x00018000u);
  EXPECT_TRUE(info.hasBye);
  EXPECT_EQ(info.packetCount, 2u);
}

TEST(Rtcp, BuildsSenderReportThatParsesBack) {
  const SenderInfo si{.ntpTimestamp = 0xe1a2b3c4d5e6f708ull,
                      .rtpTimestamp = 160000,
                      .packetCount = 1000,
                      .octetCount = 160000};
  std::array<ReportBlock, 2> blocks{};
  blocks[0] = {.ssrc = 0xaaaa,
               .fractionLost = 25,
               .cumulativeLost = 0x7fffff + 10,
               .extHighestSeq = 70000,
               .jitter = 12,
               .lastSr = 0x11112222,
               .delaySinceLastSr = 65536};
  blocks[1] = {.ssrc = 0xbbbb,
               .fractionLost = 0,
               .cumulativeLost = -5,
               .extHighestSeq = 3,
               .jitter = 0,
               .lastSr = 0,
               .delaySinceLastSr = 0};
  std::array<std::uint8_t, 256> buf{};
  const std::size_t n = writeSenderReport(buf, 0x5555, si, blocks, "medius@worker1");
  // SR: 4 + 4 + 20 + 2 * 24 = 76; SDES: 4 + (4 + 2 + 14 + 1 -> 24) = 28.
  ASSERT_EQ(n, 104u);
  EXPECT_EQ(n, rtcpReportSize(true, 2, 14));
  EXPECT_EQ(buf[0], 0x82);
  EXPECT_EQ(buf[1], 200);
  EXPECT_EQ(buf[3], 76 / 4 - 1);
  EXPECT_EQ(buf[76], 0x81);
  EXPECT_EQ(buf[77], 202);
  EXPECT_EQ(buf[79], 28 / 4 - 1);
  RtcpInfo info;
  ASSERT_EQ(parseRtcp(std::span(buf.data(), n), info), RtcpStatus::Ok);
  EXPECT_TRUE(info.hasSenderReport);
  EXPECT_EQ(info.senderSsrc, 0x5555u);
  EXPECT_EQ(info.sender.ntpTimestamp, si.ntpTimestamp);
  EXPECT_EQ(info.sender.rtpTimestamp, 160000u);
  EXPECT_EQ(info.sender.packetCount, 1000u);
  EXPECT_EQ(info.sender.octetCount, 160000u);
  ASSERT_EQ(info.blockCount, 2u);
  EXPECT_EQ(info.blocks[0].cumulativeLost, 0x7fffff);  // clamped (RFC 3550 A.3)
  EXPECT_EQ(info.blocks[0].extHighestSeq, 70000u);
  EXPECT_EQ(info.blocks[0].delaySinceLastSr, 65536u);
  EXPECT_EQ(info.blocks[1].cumulativeLost, -5);
  EXPECT_EQ(info.cname, "medius@worker1");
  EXPECT_EQ(info.packetCount, 2u);
}

TEST(Rtcp, BuildsReceiverReportWithExactBytes) {
  std::array<std::uint8_t, 64> buf{};
  buf.fill(0xee);
  const std::size_t n = writeReceiverReport(buf, 0x01020304, {}, "ab");
  const std::array<std::uint8_t, 24> expected = {0x80, 201, 0, 1, 1, 2, 3, 4,                  // RR, RC=0
                                                 0x81, 202, 0, 3, 1, 2, 3, 4, 1, 2, 'a', 'b',  // SDES CNAME
                                                 0,    0,   0, 0};                             // null + pad
  ASSERT_EQ(n, expected.size());
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), buf.begin()));
  // Every CNAME length lands on a 32-bit boundary with at least one null octet.
  for (std::size_t len = 1; len <= 255; ++len) {
    std::array<std::uint8_t, 512> big{};
    const std::string cname(len, 'x');
    const std::size_t m = writeReceiverReport(big, 1, {}, cname);
    ASSERT_EQ(m % 4, 0u) << len;
    RtcpInfo info;
    ASSERT_EQ(parseRtcp(std::span(big.data(), m), info), RtcpStatus::Ok) << len;
    EXPECT_EQ(info.cname.size(), len);
    EXPECT_EQ(big[m - 1], 0) << len;
  }
}

TEST(Rtcp, BuilderRefusesWhatDoesNotFit) {
  std::array<std::uint8_t, 23> small{};
  EXPECT_EQ(writeReceiverReport(small, 1, {}, "ab"), 0u);
  std::array<std::uint8_t, 2048> buf{};
  std::array<ReportBlock, 32> tooMany{};
  EXPECT_EQ(writeReceiverReport(buf, 1, tooMany, "ab"), 0u);
  EXPECT_EQ(writeReceiverReport(buf, 1, std::span(tooMany.data(), 31), "ab"), rtcpReportSize(false, 31, 2));
  EXPECT_EQ(writeReceiverReport(buf, 1, {}, ""), 0u);
  EXPECT_EQ(writeReceiverReport(buf, 1, {}, std::string(256, 'x')), 0u);
}

TEST(Rtcp, SkipsAppXrAndUnknownTypes) {
  Bytes b = rrWithBye();
  append(b, {0x80, 204, 0x00, 0x02});  // APP: ssrc + name
  append32(b, 1);
  append(b, {'t', 'e', 's', 't'});
  append(b, {0x80, 207, 0x00, 0x01});  // XR with an (opaque) word
  append32(b, 1);
  append(b, {0x80, 99, 0x00, 0x00});  // unknown type, header only
  RtcpInfo info;
  ASSERT_EQ(parseRtcp(b, info), RtcpStatus::Ok);
  EXPECT_EQ(info.packetCount, 5u);
  EXPECT_EQ(info.otherCount, 3u);
  EXPECT_EQ(info.blockCount, 1u);
}

TEST(Rtcp, RejectsEmptyAndTruncatedHeaders) {
  RtcpInfo info;
  EXPECT_EQ(parseRtcp({}, info), RtcpStatus::Empty);
  const Bytes b = rrWithBye();
  EXPECT_EQ(parseRtcp(std::span(b.data(), 3), info), RtcpStatus::TooShort);
  // A compound ending in a partial header.
  EXPECT_EQ(parseRtcp(std::span(b.data(), b.size() - 6), info), RtcpStatus::TooShort);
}

TEST(Rtcp, RejectsLyingLengths) {
  RtcpInfo info;
  Bytes b = rrWithBye();
  // Each truncation point inside a sub-packet makes its length word lie.
  for (std::size_t n = 4; n < b.size(); ++n) {
    if (n == 32) continue;  // the RR alone is a valid compound packet
    const RtcpStatus s = parseRtcp(std::span(b.data(), n), info);
    EXPECT_NE(s, RtcpStatus::Ok) << n;
  }
  b[3] = 0xff;  // RR claims 1024 octets
  EXPECT_EQ(parseRtcp(b, info), RtcpStatus::BadLength);
  b = rrWithBye();
  b[35] = 0x02;  // BYE claims 12 octets, 8 remain
  EXPECT_EQ(parseRtcp(b, info), RtcpStatus::BadLength);
  b = rrWithBye();
  b[3] = 0x00;  // RR says 4 octets but RC=1 needs 32: the next "packet" is the block
  EXPECT_NE(parseRtcp(b, info), RtcpStatus::Ok);
  b = rrWithBye();
  b[0] = 0x82;  // RC=2 in a packet with room for one block
  EXPECT_EQ(parseRtcp(b, info), RtcpStatus::Truncated);
}

TEST(Rtcp, RejectsVersionFirstTypeAndPadding) {
  RtcpInfo info;
  Bytes b = rrWithBye();
  b[0] = 0x41;
  EXPECT_EQ(parseRtcp(b, info), RtcpStatus::BadVersion);
  b = rrWithBye();
  b[32] = 0xc1;  // BYE with version 3
  EXPECT_EQ(parseRtcp(b, info), RtcpStatus::BadVersion);
  b = rrWithBye();
  b[1] = 203;  // first is BYE
  EXPECT_EQ(parseRtcp(b, info), RtcpStatus::FirstNotReport);
  b = rrWithBye();
  b[0] = 0xa1;  // padding on the first (not last) packet
  EXPECT_EQ(parseRtcp(b, info), RtcpStatus::BadPadding);
  b = rrWithBye();
  append(b, {0xa0, 203, 0x00, 0x01, 0, 0, 0, 4});  // last packet: P, count 4 (its body)
  EXPECT_EQ(parseRtcp(b, info), RtcpStatus::Ok);
  b.back() = 5;  // larger than the body
  EXPECT_EQ(parseRtcp(b, info), RtcpStatus::BadPadding);
  b.back() = 0;
  EXPECT_EQ(parseRtcp(b, info), RtcpStatus::BadPadding);
}

TEST(Rtcp, MalformedSdesCnameIsIgnoredNotOverread) {
  Bytes b;
  append(b, {0x80, 201, 0x00, 0x01});
  append32(b, 7);
  append(b, {0x81, 202, 0x00, 0x02});
  append32(b, 7);
  append(b, {1, 200, 'x', 'y'});  // CNAME item claims 200 octets
  RtcpInfo info;
  ASSERT_EQ(parseRtcp(b, info), RtcpStatus::Ok);
  EXPECT_TRUE(info.cname.empty());
}

TEST(Rtcp, CollectsAtMost31BlocksAcrossReports) {
  std::array<ReportBlock, 31> blocks{};
  for (std::size_t i = 0; i < blocks.size(); ++i) blocks[i].ssrc = static_cast<std::uint32_t>(i + 1);
  std::array<std::uint8_t, 2048> buf{};
  const std::size_t n1 = writeReceiverReport(buf, 9, blocks, "a");
  const std::size_t n2 = writeReceiverReport(std::span(buf).subspan(n1), 9, std::span(blocks.data(), 3), "a");
  RtcpInfo info;
  ASSERT_EQ(parseRtcp(std::span(buf.data(), n1 + n2), info), RtcpStatus::Ok);
  EXPECT_EQ(info.blockCount, 31u);
  EXPECT_EQ(info.droppedBlocks, 3u);
  EXPECT_EQ(info.blocks[30].ssrc, 31u);
  EXPECT_EQ(info.reportBlocks().size(), 31u);
}

TEST(Rtcp, IteratorWalksSubPackets) {
  const Bytes b = rrWithBye();
  RtcpIterator it(b);
  RtcpPacketView p;
  ASSERT_TRUE(it.next(p));
  EXPECT_EQ(p.type, 201);
  EXPECT_EQ(p.count, 1);
  EXPECT_EQ(p.body.size(), 28u);
  ASSERT_TRUE(it.next(p));
  EXPECT_EQ(p.type, 203);
  EXPECT_FALSE(it.next(p));
  EXPECT_EQ(validateRtcp(b), RtcpStatus::Ok);
}

}  // namespace
}  // namespace medius::media::rtp
