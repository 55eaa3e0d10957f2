// MediaPipeline on buffers (no sockets): SRTP in and out checked with independent SRTP
// contexts, PT rewriting, transcoding a tone through the jitter buffer, telephone-event
// clock mapping, RTCP generation and consumption, bad input, re-negotiation, allocations.
#include "medius/media/pipeline.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <random>

#include "allocation_counter.hpp"
#include "medius/media/codec/dtmf_tones.hpp"
#include "medius/media/rtp/dtmf.hpp"
#include "medius/media/rtp/rtcp.hpp"
#include "medius/media/rtp/stats.hpp"
#include "pipeline_support.hpp"

namespace medius::media {
namespace {

using test::Bytes;
using test::rtpPacket;
using test::Harness;
using test::kMs;
using test::load;
using test::Out;

// ---- relay -------------------------------------------------------------------------------

TEST(PipelineRelay, SrtpToRtpAndBackChangesOnlyTheEncryption) {
  MediaPlan plan = test::relayPlan();
  test::LegKeys keysA;
  keysA.apply(plan.legs[0]);
  Harness h(plan);
  test::SrtpPeer peerA = keysA.peerSide();

  for (std::uint16_t seq = 1; seq <= 5; ++seq) {
    Bytes plain =
        rtpPacket(seq, seq * 160u, 0, 0xa1a1a1a1, test::filler(160, static_cast<std::uint8_t>(seq)));
    auto out = h.receive(0, peerA.protect(plain));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].leg, 1);
    EXPECT_FALSE(out[0].rtcpSocket);
    EXPECT_EQ(out[0].data, plain) << "B must get A's packet decrypted, header untouched";
  }
  for (std::uint16_t seq = 100; seq < 105; ++seq) {
    Bytes plain = rtpPacket(seq, seq * 160u, 0, 0xb2b2b2b2, test::filler(160, 0x11));
    auto out = h.receive(1, plain);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].leg, 0);
    EXPECT_EQ(out[0].data.size(), plain.size() + 10);  // HMAC-SHA1-80 tag
    auto decrypted = peerA.unprotect(out[0].data);
    ASSERT_TRUE(decrypted) << "A cannot authenticate what we sent it";
    EXPECT_EQ(*decrypted, plain);
  }
  EXPECT_EQ(load(h.counters(0).srtpAuthFailures), 0u);
  EXPECT_EQ(load(h.counters(0).expected), 5u);
  EXPECT_EQ(load(h.counters(0).lost), 0u);
}

// RFC 4568 section 6.1: a peer's a=crypto with two keys, each with an MKI; the MKI in each
// packet says which key protected it, and the sender may move to the second key mid-call.
TEST(PipelineRelay, EveryMasterKeyOfThePeersCryptoLineIsUsedByItsMki) {
  const auto suite = srtp::CryptoSuite::AesCm128HmacSha1_80;
  const srtp::KeyMaterial first = srtp::generateKeyMaterial(suite);
  const srtp::KeyMaterial second = srtp::generateKeyMaterial(suite);
  MediaPlan plan = test::relayPlan();
  SrtpParams inbound{suite, first, srtp::Mki{1, 1}, {}};
  inbound.moreKeys.push_back(srtp::MasterKey{second, srtp::Mki{2, 1}});
  plan.legs[0].inbound = inbound;
  plan.legs[0].outbound = SrtpParams{suite, srtp::generateKeyMaterial(suite), std::nullopt, {}};
  Harness h(plan);

  const srtp::MasterKey withFirst{first, srtp::Mki{1, 1}};
  const srtp::MasterKey withSecond{second, srtp::Mki{2, 1}};
  const srtp::MasterKey withUnknown{second, srtp::Mki{3, 1}};
  srtp::SrtpSession senderFirst(suite, std::span<const srtp::MasterKey>(&withFirst, 1), srtp::Direction::Outbound);
  srtp::SrtpSession senderSecond(suite, std::span<const srtp::MasterKey>(&withSecond, 1), srtp::Direction::Outbound);
  srtp::SrtpSession senderUnknown(suite, std::span<const srtp::MasterKey>(&withUnknown, 1), srtp::Direction::Outbound);
  auto protect = [](srtp::SrtpSession& session, const Bytes& plain) {
    std::vector<std::uint8_t> buffer(plain.size() + 64);
    std::copy(plain.begin(), plain.end(), buffer.begin());
    std::size_t length = plain.size();
    EXPECT_EQ(session.protectRtp(buffer, length), srtp::Status::Ok);
    buffer.resize(length);
    return buffer;
  };

  for (std::uint16_t seq = 1; seq <= 6; ++seq) {
    Bytes plain = rtpPacket(seq, seq * 160u, 0, 0xa1a1a1a1, test::filler(160, static_cast<std::uint8_t>(seq)));
    auto out = h.receive(0, protect(seq <= 3 ? senderFirst : senderSecond, plain));
    ASSERT_EQ(out.size(), 1u) << "packet " << seq << " (key " << (seq <= 3 ? 1 : 2) << ") was dropped";
    EXPECT_EQ(out[0].data, plain);
  }
  // A key the peer never offered (MKI 3) is not accepted, whatever the key bytes.
  Bytes plain = rtpPacket(7, 7 * 160u, 0, 0xa1a1a1a1, test::filler(160, 7));
  EXPECT_TRUE(h.receive(0, protect(senderUnknown, plain)).empty());
  EXPECT_EQ(load(h.counters(0).srtpAuthFailures), 1u);
}

TEST(PipelineRelay, SrtpToSrtpWithDifferentKeysAndSuites) {
  MediaPlan plan = test::relayPlan();
  test::LegKeys keysA(srtp::CryptoSuite::AesCm128HmacSha1_80);
  const auto suiteB = srtp::suiteAvailable(srtp::CryptoSuite::AeadAes128Gcm)
                          ? srtp::CryptoSuite::AeadAes128Gcm
                          : srtp::CryptoSuite::AesCm128HmacSha1_32;
  test::LegKeys keysB(suiteB);
  keysA.apply(plan.legs[0]);
  keysB.apply(plan.legs[1]);
  Harness h(plan);
  test::SrtpPeer peerA = keysA.peerSide();
  test::SrtpPeer peerB = keysB.peerSide();
  for (std::uint16_t seq = 1; seq <= 3; ++seq) {
    Bytes plain = rtpPacket(seq, seq * 160u, 0, 0xa1, test::filler(160, 7));
    auto out = h.receive(0, peerA.protect(plain));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_FALSE(peerA.unprotect(out[0].data)) << "leg B's packet must not be under A's keys";
    auto atB = peerB.unprotect(out[0].data);
    ASSERT_TRUE(atB);
    EXPECT_EQ(*atB, plain);

    Bytes back = rtpPacket(seq, seq * 160u, 0, 0xb1, test::filler(160, 9));
    out = h.receive(1, peerB.protect(back));
    ASSERT_EQ(out.size(), 1u);
    auto atA = peerA.unprotect(out[0].data);
    ASSERT_TRUE(atA);
    EXPECT_EQ(*atA, back);
  }
}

TEST(PipelineRelay, TamperedAndReplayedSrtpIsDroppedAndCounted) {
  MediaPlan plan = test::relayPlan();
  test::LegKeys keysA;
  keysA.apply(plan.legs[0]);
  Harness h(plan);
  test::SrtpPeer peerA = keysA.peerSide();
  Bytes first;
  for (std::uint16_t seq = 1; seq <= 3; ++seq) {
    first = peerA.protect(rtpPacket(seq, seq * 160u, 0, 0xa1, test::filler(160)));
    ASSERT_EQ(h.receive(0, first).size(), 1u);
  }
  EXPECT_TRUE(h.receive(0, first).empty()) << "a replay went through";
  EXPECT_EQ(h.last, ReceiveResult::Dropped);
  Bytes tampered = peerA.protect(rtpPacket(4, 640, 0, 0xa1, test::filler(160)));
  tampered[40] ^= 0x01;
  EXPECT_TRUE(h.receive(0, tampered).empty());
  Bytes badTag = peerA.protect(rtpPacket(5, 800, 0, 0xa1, test::filler(160)));
  badTag.back() ^= 0x80;
  EXPECT_TRUE(h.receive(0, badTag).empty());
  // An SRTP peer's plain RTP (a downgrade) fails authentication too.
  EXPECT_TRUE(h.receive(0, rtpPacket(6, 960, 0, 0xa1, test::filler(160))).empty());
  // SRTCP: tampered.
  Bytes rr{0x80, 201, 0x00, 0x01, 0x00, 0x00, 0x00, 0xa1};
  Bytes srtcp = peerA.protect(rr, true);
  srtcp[5] ^= 0x40;
  EXPECT_TRUE(h.receive(0, srtcp, true).empty());
  EXPECT_EQ(load(h.counters(0).srtpReplays), 1u);
  EXPECT_EQ(load(h.counters(0).srtpAuthFailures), 4u);
  EXPECT_EQ(load(h.counters(0).expected), 3u) << "dropped packets must not reach the statistics";
}

TEST(PipelineRelay, PayloadTypesAreRewrittenAndUnmappedOnesDropped) {
  MediaPlan plan = test::relayPlan();
  plan.flows[0].payloadMap[101] = 96;  // A calls telephone-event 101, B 96
  plan.flows[1].payloadMap[96] = 101;
  plan.flows[1].payloadMap[101] = -1;
  Harness h(plan);
  Bytes event = rtpPacket(7, 1120, 101, 0xa1, {5, 0x8a, 0x01, 0x40}, true);
  auto out = h.receive(0, event);
  ASSERT_EQ(out.size(), 1u);
  Bytes expected = event;
  expected[1] = static_cast<std::uint8_t>(0x80 | 96);  // marker kept, PT rewritten
  EXPECT_EQ(out[0].data, expected);
  Bytes audio = rtpPacket(8, 1280, 0, 0xa1, test::filler(160));
  out = h.receive(0, audio);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, audio);
  out = h.receive(1, rtpPacket(1, 0, 96, 0xb1, {1, 0, 0, 160}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data[1], 101);
  EXPECT_TRUE(h.receive(1, rtpPacket(2, 0, 101, 0xb1, {1, 0, 0, 160})).empty());
  EXPECT_TRUE(h.receive(1, rtpPacket(3, 0, 8, 0xb1, test::filler(160))).empty());
  EXPECT_EQ(load(h.counters(1).payloadDrops), 2u);
  EXPECT_EQ(load(h.counters(0).payloadDrops), 0u);
}

TEST(PipelineRelay, SrtcpIsRelayedThroughBothTransforms) {
  MediaPlan plan = test::relayPlan();
  test::LegKeys keysA;
  keysA.apply(plan.legs[0]);
  Harness h(plan);
  test::SrtpPeer peerA = keysA.peerSide();
  // An RR with one report block from A (on A's RTCP port).
  Bytes rr{0x81, 201,  0x00, 0x07, 0x00, 0x00, 0x00, 0xa1, 0x00, 0x00, 0x00, 0xb1, 0x40, 0x00, 0x00, 0x02,
           0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  auto out = h.receive(0, peerA.protect(rr, true), true);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].leg, 1);
  EXPECT_TRUE(out[0].rtcpSocket);
  EXPECT_EQ(out[0].data, rr);
  EXPECT_EQ(load(h.counters(0).peerFractionLost), 0x40u);
  EXPECT_EQ(load(h.counters(0).peerJitterMicros), 0x50u * 1'000'000 / 8000);
  // B's RTCP, multiplexed on its RTP port (RFC 5761), reaches A as SRTCP on A's RTP port.
  out = h.receive(1, rr, false);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].rtcpSocket);
  auto atA = peerA.unprotect(out[0].data, true);
  ASSERT_TRUE(atA);
  EXPECT_EQ(*atA, rr);
  EXPECT_EQ(load(h.counters(1).rtcpIn), 1u);
}

TEST(PipelineRelay, RoundTripToEachPeerFromTheRtcpWeRelay) {
  Harness h(test::relayPlan());
  // A's SR crosses us toward B; B's RR about it comes back 100 ms later with DLSR 40 ms:
  // 60 ms between us and B, whatever A's clock says (its NTP time is arbitrary here).
  rtp::SenderInfo info;
  info.ntpTimestamp = 0x0123456789abcdefULL;
  std::array<std::uint8_t, 200> sr{};
  std::size_t length = rtp::writeSenderReport(sr, 0xa1, info, {}, "peer-a");
  ASSERT_EQ(h.receive(0, Bytes(sr.begin(), sr.begin() + static_cast<std::ptrdiff_t>(length)), true).size(),
            1u);
  h.now += 100 * kMs;
  rtp::ReportBlock block;
  block.ssrc = 0xa1;
  block.lastSr = rtp::ntpMiddle32(info.ntpTimestamp);
  block.delaySinceLastSr = rtp::nanosToNtpShort(40 * kMs);
  std::array<std::uint8_t, 200> rr{};
  length = rtp::writeReceiverReport(rr, 0xb1, std::span(&block, 1), "peer-b");
  ASSERT_EQ(h.receive(1, Bytes(rr.begin(), rr.begin() + static_cast<std::ptrdiff_t>(length)), true).size(),
            1u);
  EXPECT_NEAR(static_cast<double>(load(h.counters(1).rttMicros)), 60'000.0, 20.0);
  EXPECT_EQ(load(h.counters(0).rttMicros), 0u);
  // A block about an SR we never relayed measures nothing.
  block.lastSr ^= 0x1000;
  length = rtp::writeReceiverReport(rr, 0xb1, std::span(&block, 1), "peer-b");
  h.now += 500 * kMs;
  h.receive(1, Bytes(rr.begin(), rr.begin() + static_cast<std::ptrdiff_t>(length)), true);
  EXPECT_NEAR(static_cast<double>(load(h.counters(1).rttMicros)), 60'000.0, 20.0);
}

TEST(PipelineRelay, BadPacketsAreCountedNeverForwarded) {
  for (bool srtpLeg : {false, true}) {
    MediaPlan plan = test::relayPlan();
    test::LegKeys keysA;
    if (srtpLeg) keysA.apply(plan.legs[0]);
    Harness h(plan);
    std::vector<Bytes> bad;
    bad.push_back({0x80, 0x00, 0x00});                       // truncated
    bad.push_back(rtpPacket(1, 0, 0, 1, test::filler(20)));  // wrong version
    bad.back()[0] = 0x40;
    bad.push_back(rtpPacket(2, 0, 0, 1, test::filler(20)));  // 15 CSRCs, 20 octets
    bad.back()[0] = 0x8f;
    bad.push_back(rtpPacket(3, 0, 0, 1, {}));  // padding, no payload
    bad.back()[0] = 0xa0;
    bad.push_back({});                                           // empty
    Bytes lying{0x80, 200, 0x00, 0x40, 0, 0, 0, 1, 0, 0, 0, 0};  // length 0x40 words
    std::size_t counted = 0;
    for (const Bytes& packet : bad) {
      EXPECT_TRUE(h.receive(0, packet).empty());
      ++counted;
    }
    EXPECT_TRUE(h.receive(0, lying, true).empty());
    EXPECT_TRUE(h.receive(0, lying, false).empty());  // muxed: recognised as RTCP, rejected
    counted += 2;
    const auto& c = h.counters(0);
    EXPECT_EQ(load(c.badPackets) + load(c.srtpAuthFailures), counted) << "srtp " << srtpLeg;
    if (!srtpLeg) {
      EXPECT_EQ(load(c.badPackets), counted);
    }
    EXPECT_EQ(load(c.expected), 0u);
    // Still working afterwards.
    Bytes good = rtpPacket(9, 0, 0, 1, test::filler(160));
    if (srtpLeg) good = keysA.peerSide().protect(good);
    EXPECT_EQ(h.receive(0, good).size(), 1u);
  }
}

// ---- transcoding -------------------------------------------------------------------------

struct ToneCase {
  codec::CodecId a;
  std::uint8_t ptA;
  codec::CodecId b;
  std::uint8_t ptB;
};

class PipelineTranscodeTone : public ::testing::TestWithParam<ToneCase> {};

// 1 s of a 1 kHz tone from A and 440 Hz from B, 20 ms apart; each side decodes what it gets.
TEST_P(PipelineTranscodeTone, EachSideHearsTheOthersToneInItsCodec) {
  const ToneCase& tc = GetParam();
  MediaPlan plan = test::transcodePlan({tc.a, tc.ptA, 101}, {tc.b, tc.ptB, 110});
  Harness h(plan);
  test::ToneSender fromA(tc.a, 1000, tc.ptA, 0xa1a1a1a1);
  test::ToneSender fromB(tc.b, 440, tc.ptB, 0xb2b2b2b2);
  test::ToneReceiver atA(tc.a), atB(tc.b);
  std::vector<Bytes> toA, toB;
  auto collect = [&](std::vector<Out> outs) {
    for (auto& o : outs) (o.leg == 0 ? toA : toB).push_back(std::move(o.data));
  };
  for (std::uint16_t i = 0; i < 50; ++i) {
    collect(h.receive(0, fromA.packet(i)));
    collect(h.receive(1, fromB.packet(i)));
    collect(h.advance(20));
  }
  collect(h.advance(200));
  ASSERT_GE(toB.size(), 45u);
  ASSERT_GE(toA.size(), 45u);
  // Our stream toward B: our SSRC, consecutive sequence numbers, one ptime per packet.
  const std::uint32_t incrementB = codec::codecInfo(tc.b).rtpClockRate / 50;
  rtp::RtpView first, view;
  ASSERT_EQ(rtp::parseRtp(toB[0], first), rtp::RtpStatus::Ok);
  EXPECT_EQ(first.ssrc, *h.pipeline->generatedSsrc(1));
  EXPECT_EQ(first.payloadType, tc.ptB);
  EXPECT_TRUE(first.marker);
  for (std::size_t i = 1; i < toB.size(); ++i) {
    ASSERT_EQ(rtp::parseRtp(toB[i], view), rtp::RtpStatus::Ok);
    EXPECT_EQ(view.ssrc, first.ssrc);
    EXPECT_EQ(view.sequence, static_cast<std::uint16_t>(first.sequence + i));
    EXPECT_EQ(view.timestamp, first.timestamp + i * incrementB);
    EXPECT_FALSE(view.marker);
  }
  for (const auto& p : toB) atB.add(p);
  for (const auto& p : toA) atA.add(p);
  auto heardAtB = atB.after(200);
  auto heardAtA = atA.after(200);
  ASSERT_FALSE(heardAtB.empty());
  ASSERT_FALSE(heardAtA.empty());
  EXPECT_NEAR(codec::test::dominantFrequency(heardAtB, atB.rate(), 3000), 1000, 10);
  EXPECT_NEAR(codec::test::dominantFrequency(heardAtA, atA.rate(), 3000), 440, 10);
  EXPECT_GT(codec::test::toneSnrDb(heardAtB, 1000, atB.rate()), 10.0);
  EXPECT_GT(codec::test::toneSnrDb(heardAtA, 440, atA.rate()), 10.0);
  EXPECT_EQ(load(h.counters(0).concealedFrames), 0u);
  EXPECT_EQ(load(h.counters(0).decodeErrors), 0u);
}

INSTANTIATE_TEST_SUITE_P(Codecs, PipelineTranscodeTone,
                         ::testing::Values(ToneCase{codec::CodecId::Pcmu, 0, codec::CodecId::Opus, 111},
                                           ToneCase{codec::CodecId::G722, 9, codec::CodecId::Pcma, 8},
                                           ToneCase{codec::CodecId::Pcmu, 0, codec::CodecId::G729, 18}),
                         [](const auto& param) {
                           return std::string(codec::codecInfo(param.param.a).encodingName) + "_" +
                                  std::string(codec::codecInfo(param.param.b).encodingName);
                         });

TEST(PipelineTranscode, ReorderedAndLostPacketsGoThroughTheJitterBuffer) {
  for (bool opusSource : {false, true}) {
    SCOPED_TRACE(opusSource ? "opus -> PCMU (FEC)" : "PCMU -> opus (PLC)");
    const test::Side pcmu{codec::CodecId::Pcmu, 0, 101};
    const test::Side opus{codec::CodecId::Opus, 111, 110};
    MediaPlan plan = opusSource ? test::transcodePlan(opus, pcmu) : test::transcodePlan(pcmu, opus);
    const codec::CodecId source = opusSource ? codec::CodecId::Opus : codec::CodecId::Pcmu;
    const codec::CodecId target = opusSource ? codec::CodecId::Pcmu : codec::CodecId::Opus;
    Harness h(plan);
    test::ToneSender sender(source, 1000, opusSource ? 111 : 0, 0xa1);
    std::vector<Bytes> packets;
    for (std::uint16_t i = 0; i < 60; ++i) packets.push_back(sender.packet(i));
    std::swap(packets[20], packets[21]);  // reordered
    packets.erase(packets.begin() + 30);  // lost
    std::vector<Bytes> got;
    for (std::size_t i = 0; i < packets.size(); ++i) {
      for (auto& o : h.receive(0, packets[i])) got.push_back(o.data);
      for (auto& o : h.advance(i == 29 ? 40 : 20)) got.push_back(o.data);  // the loss: its time passes
    }
    for (auto& o : h.advance(200)) got.push_back(o.data);
    // One output packet per source frame, the lost one concealed, less any frame the
    // adaptive jitter buffer shed once the clean link let it play sooner (at most one in
    // this 1.2 s).
    const std::uint64_t shed = load(h.counters(0).jitterFramesShed);
    EXPECT_LE(shed, 1u);
    ASSERT_EQ(got.size() + shed, 60u) << "one output packet per source frame, the lost one concealed";
    rtp::RtpView a, b;
    for (std::size_t i = 1; i < got.size(); ++i) {
      ASSERT_EQ(rtp::parseRtp(got[i - 1], a), rtp::RtpStatus::Ok);
      ASSERT_EQ(rtp::parseRtp(got[i], b), rtp::RtpStatus::Ok);
      EXPECT_EQ(static_cast<std::uint16_t>(b.sequence - a.sequence), 1);
      EXPECT_EQ(b.timestamp - a.timestamp, codec::codecInfo(target).rtpClockRate / 50);
    }
    EXPECT_EQ(load(h.counters(0).concealedFrames), 1u);
    EXPECT_EQ(load(h.counters(0).lost), 1u);
    EXPECT_EQ(load(h.counters(0).outOfOrder), 1u);
    test::ToneReceiver receiver(target);
    for (const auto& p : got) receiver.add(p);
    EXPECT_NEAR(codec::test::dominantFrequency(receiver.after(200), receiver.rate(), 3000), 1000, 10);
  }
}

TEST(PipelineTranscode, ComfortNoiseFillsTheSourcesSilence) {
  const test::Side pcmu{codec::CodecId::Pcmu, 0, 101, 13};
  const test::Side opus{codec::CodecId::Opus, 111, 110};
  Harness h(test::transcodePlan(pcmu, opus));
  test::ToneSender sender(codec::CodecId::Pcmu, 1000, 0, 0xa1);
  std::size_t sent = 0;
  for (std::uint16_t i = 0; i < 10; ++i) {
    sent += h.receive(0, sender.packet(i)).size();
    sent += h.advance(20).size();
  }
  // CN at -40 dBov (RFC 3389), then 200 ms of silence from the source.
  auto cn = h.receive(0, rtpPacket(1010, 5000 + 1600, 13, 0xa1, {40}));
  EXPECT_TRUE(cn.empty()) << "CN is consumed";
  sent += h.advance(300).size();
  EXPECT_GE(load(h.counters(0).comfortNoiseFrames), 8u);
  EXPECT_GE(sent, 20u) << "noise packets keep flowing toward the leg without CN";
}

TEST(PipelineTranscode, SilenceKeepsOurClockRunningAndMarksTheNextTalkspurt) {
  Harness h(test::transcodePlan({codec::CodecId::Pcmu, 0, 101}, {codec::CodecId::Opus, 111, 110}));
  test::ToneSender sender(codec::CodecId::Pcmu, 1000, 0, 0xa1);
  std::vector<Bytes> out;
  auto run = [&](std::uint16_t from, std::uint16_t to, std::uint16_t seqShift) {
    for (std::uint16_t i = from; i < to; ++i) {
      Bytes p = sender.packet(i);
      const std::uint16_t seq = static_cast<std::uint16_t>(1000 + i - seqShift);  // no gap in sequence
      p[2] = static_cast<std::uint8_t>(seq >> 8);
      p[3] = static_cast<std::uint8_t>(seq);
      for (auto& o : h.receive(0, p)) out.push_back(o.data);
      for (auto& o : h.advance(20)) out.push_back(o.data);
    }
  };
  run(0, 10, 0);
  for (auto& o : h.advance(200)) out.push_back(o.data);  // 10 frames of silence (VAD, no CN)
  run(20, 30, 10);
  for (auto& o : h.advance(200)) out.push_back(o.data);
  ASSERT_EQ(out.size(), 20u);
  rtp::RtpView before, after;
  ASSERT_EQ(rtp::parseRtp(out[9], before), rtp::RtpStatus::Ok);
  ASSERT_EQ(rtp::parseRtp(out[10], after), rtp::RtpStatus::Ok);
  EXPECT_EQ(after.sequence, static_cast<std::uint16_t>(before.sequence + 1));
  EXPECT_TRUE(after.marker) << "first packet of a talkspurt (RFC 3551 4.1)";
  // The source paused 10 frames; our timestamps jump by about as much (the jitter buffer's
  // re-buffering may add a frame or two of its own).
  const auto frames = static_cast<std::int64_t>(after.timestamp - before.timestamp) / 960;
  EXPECT_GE(frames, 11);
  EXPECT_LE(frames, 15);
}

TEST(PipelineTranscode, TelephoneEventsAreMappedBetween8And48kHz) {
  const test::Side pcmu{codec::CodecId::Pcmu, 0, 101};
  const test::Side opus{codec::CodecId::Opus, 111, 110};
  Harness h(test::transcodePlan(pcmu, opus));
  test::ToneSender sender(codec::CodecId::Pcmu, 1000, 0, 0xa1);
  std::vector<Bytes> toB;
  for (std::uint16_t i = 0; i < 10; ++i) {
    for (auto& o : h.receive(0, sender.packet(i))) toB.push_back(o.data);
    for (auto& o : h.advance(20)) toB.push_back(o.data);
  }
  // Digit 5 starting at timestamp 5000 + 10 * 160, 3 updates of 160 then the end 3 times.
  const std::uint32_t start = 5000 + 1600;
  std::vector<Bytes> events;
  std::uint16_t seq = 1010;
  for (std::uint16_t d : {160, 320, 480}) {
    auto out = h.receive(
        0, rtpPacket(seq++, start, 101, 0xa1,
                     {5, 10, static_cast<std::uint8_t>(d >> 8), static_cast<std::uint8_t>(d)}, d == 160));
    ASSERT_EQ(out.size(), 1u) << "events are sent at once, not after the jitter buffer";
    events.push_back(out[0].data);
  }
  for (int i = 0; i < 3; ++i) {
    auto out = h.receive(0, rtpPacket(seq++, start, 101, 0xa1, {5, 0x80 | 10, 0x02, 0x80}));
    ASSERT_EQ(out.size(), 1u);
    events.push_back(out[0].data);
  }
  rtp::RtpView first;
  ASSERT_EQ(rtp::parseRtp(events[0], first), rtp::RtpStatus::Ok);
  EXPECT_TRUE(first.marker);
  const std::uint32_t durations[] = {960, 1920, 2880, 3840, 3840, 3840};
  for (std::size_t i = 0; i < events.size(); ++i) {
    rtp::RtpView v;
    ASSERT_EQ(rtp::parseRtp(events[i], v), rtp::RtpStatus::Ok);
    EXPECT_EQ(v.payloadType, 110);
    EXPECT_EQ(v.ssrc, *h.pipeline->generatedSsrc(1));
    EXPECT_EQ(v.timestamp, first.timestamp) << "one timestamp per event (RFC 4733 2.5)";
    rtp::TelephoneEvent ev;
    ASSERT_EQ(rtp::parseTelephoneEvent(v.payload, ev), rtp::DtmfStatus::Ok);
    EXPECT_EQ(ev.event, 5);
    EXPECT_EQ(ev.volume, 10);
    EXPECT_EQ(ev.duration, durations[i]);
    EXPECT_EQ(ev.end, i >= 3);
  }
  // Audio and events share our sequence space; the event starts where its audio will play.
  rtp::RtpView lastAudio;
  ASSERT_EQ(rtp::parseRtp(toB.back(), lastAudio), rtp::RtpStatus::Ok);
  EXPECT_EQ(first.sequence, static_cast<std::uint16_t>(lastAudio.sequence + 1));
  const auto ahead = static_cast<std::int32_t>(first.timestamp - lastAudio.timestamp);
  EXPECT_GT(ahead, 0);
  EXPECT_LE(ahead, 48 * 200) << "within the jitter buffer's depth of the audio";
  // The audio after the event continues the sequence; no frame was concealed for the
  // event packets' sequence numbers.
  for (std::uint16_t i = 0; i < 10; ++i) {
    auto p = sender.packet(static_cast<std::uint16_t>(16 + i));
    p[2] = static_cast<std::uint8_t>(seq >> 8);
    p[3] = static_cast<std::uint8_t>(seq++);
    h.receive(0, p);
    h.advance(20);
  }
  EXPECT_EQ(load(h.counters(0).concealedFrames), 0u);
  EXPECT_EQ(load(h.counters(0).eventsMapped), 6u);

  // The other way: 48 kHz durations become 8 kHz ones.
  auto out = h.receive(1, rtpPacket(1, 90000, 110, 0xb1, {11, 10, 0x03, 0xc0}, true));  // 960 at 48 kHz
  ASSERT_EQ(out.size(), 1u);
  rtp::RtpView v;
  ASSERT_EQ(rtp::parseRtp(out[0].data, v), rtp::RtpStatus::Ok);
  EXPECT_EQ(v.payloadType, 101);
  rtp::TelephoneEvent ev;
  ASSERT_EQ(rtp::parseTelephoneEvent(v.payload, ev), rtp::DtmfStatus::Ok);
  EXPECT_EQ(ev.event, 11);
  EXPECT_EQ(ev.duration, 160);
}

TEST(PipelineTranscode, EventsBecomeInBandTonesForALegWithoutTelephoneEvent) {
  MediaPlan plan = test::transcodePlan({codec::CodecId::Pcmu, 0, 101}, {codec::CodecId::Pcma, 8, 0});
  plan.legs[1].eventPt.reset();
  plan.flows[0].targetEventPt.reset();
  Harness h(plan);
  test::ToneSender sender(codec::CodecId::Pcmu, 440, 0, 0xa1);
  std::vector<Bytes> toB;
  std::uint16_t seq = 1000;
  auto audio = [&](std::uint16_t i) {
    Bytes p = sender.packet(i);
    p[2] = static_cast<std::uint8_t>(seq >> 8);
    p[3] = static_cast<std::uint8_t>(seq++);
    for (auto& o : h.receive(0, p)) toB.push_back(o.data);
    for (auto& o : h.advance(20)) toB.push_back(o.data);
  };
  for (std::uint16_t i = 0; i < 10; ++i) audio(i);
  // Digit 7 for 120 ms (960 units at 8 kHz): updates, then the end packet three times.
  const std::uint32_t start = 5000 + 1600;
  for (std::uint16_t d : {320, 640}) {
    EXPECT_TRUE(
        h.receive(
             0, rtpPacket(seq++, start, 101, 0xa1,
                          {7, 10, static_cast<std::uint8_t>(d >> 8), static_cast<std::uint8_t>(d)}, d == 320))
            .empty());
    audio(static_cast<std::uint16_t>(seq - 1000));
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(h.receive(0, rtpPacket(seq++, start, 101, 0xa1, {7, 0x80 | 10, 0x03, 0xc0})).empty());
  }
  for (std::uint16_t i = 0; i < 20; ++i) audio(static_cast<std::uint16_t>(seq - 1000));
  for (auto& o : h.advance(200)) toB.push_back(o.data);
  EXPECT_EQ(load(h.counters(0).eventsMapped), 1u);
  EXPECT_EQ(load(h.counters(0).payloadDrops), 0u);
  // Decode B's PCMA and run a DTMF detector over it: exactly one '7'.
  test::ToneReceiver atB(codec::CodecId::Pcma);
  for (const auto& p : toB) atB.add(p);
  auto pcm = atB.after(0);
  codec::DtmfDetector detector(8000);
  std::string digits;
  std::array<codec::DtmfEvent, codec::DtmfDetector::kMaxEventsPerFrame> events{};
  for (std::size_t at = 0; at + 160 <= pcm.size(); at += 160) {
    std::size_t n = detector.process(pcm.subspan(at, 160), events);
    for (std::size_t i = 0; i < n; ++i) {
      if (events[i].edge == codec::DtmfEdge::Start) digits += events[i].digit;
    }
  }
  EXPECT_EQ(digits, "7");
  // The tone replaced 120 ms of the 440 Hz audio: six 20 ms packets carry 1209 Hz (7's
  // column), none of them 440 Hz.
  auto decoder = codec::makeDecoder(codec::CodecId::Pcma, {});
  int toneFrames = 0;
  for (const auto& packet : toB) {
    rtp::RtpView v;
    ASSERT_EQ(rtp::parseRtp(packet, v), rtp::RtpStatus::Ok);
    std::vector<std::int16_t> frame(codec::kMaxDecodedSamples);
    auto r = decoder->decode(v.payload, frame);
    frame.resize(r.samples);
    if (codec::test::tonePower(frame, 1209, 8000) > 10 * codec::test::tonePower(frame, 440, 8000))
      ++toneFrames;
  }
  EXPECT_EQ(toneFrames, 6);
}

// A leg whose peer sends digits as tones only: PCMU packets, each 20 ms frame from spandsp's
// generator (silence between digits).
class InbandDigitSender {
 public:
  InbandDigitSender(std::uint32_t ssrc) : ssrc_(ssrc), encoder_(codec::makeEncoder(codec::CodecId::Pcmu)) {}
  void digit(char d, unsigned ms) { ASSERT_TRUE(gen_.start(d, ms)); }
  Bytes packet() {
    std::vector<std::int16_t> pcm(160);
    gen_.generate(pcm);
    Bytes payload(160);
    EXPECT_EQ(encoder_->encode(pcm, payload).bytes, 160u);
    Bytes p = rtpPacket(seq_, ts_, 0, ssrc_, payload);
    ++seq_;
    ts_ += 160;
    return p;
  }

 private:
  std::uint32_t ssrc_;
  std::uint16_t seq_ = 7000;
  std::uint32_t ts_ = 90000;
  codec::DtmfGenerator gen_{8000};
  std::unique_ptr<codec::Encoder> encoder_;
};

// Digits heard in decoded audio by spandsp's detector.
std::string digitsHeard(std::span<const std::int16_t> pcm, std::uint32_t rate) {
  codec::DtmfDetector detector(rate);
  std::array<codec::DtmfEvent, codec::DtmfDetector::kMaxEventsPerFrame> events{};
  std::string digits;
  const std::size_t frame = rate / 50;
  for (std::size_t at = 0; at + frame <= pcm.size(); at += frame) {
    std::size_t n = detector.process(pcm.subspan(at, frame), events);
    for (std::size_t i = 0; i < n; ++i) {
      if (events[i].edge == codec::DtmfEdge::Start) digits += events[i].digit;
    }
  }
  return digits;
}

class PipelineInbandDtmf : public ::testing::TestWithParam<test::Side> {};

// A PCMU leg A without telephone-event transcoded toward `target` (which has events).
MediaPlan inbandPlan(const test::Side& target) {
  MediaPlan plan = test::transcodePlan({codec::CodecId::Pcmu, 0, 101}, target);
  plan.legs[0].eventPt.reset();
  plan.flows[0].sourceEventPt.reset();
  plan.flows[1].targetEventPt.reset();
  return plan;
}

// RFC 4733 3.1 / 2.5.1: A has no telephone-event and sends a 200 ms "5" as tones; B has
// telephone-event: B gets event 5 (M on the first packet, one timestamp, growing durations,
// the end packet three times) and audio without the tone.
TEST_P(PipelineInbandDtmf, ToneFromALegWithoutEventsBecomesTelephoneEvents) {
  const test::Side target = GetParam();
  Harness h(inbandPlan(target));
  InbandDigitSender a(0xa1);
  std::vector<Bytes> toB;
  auto frames = [&](int n) {
    for (int i = 0; i < n; ++i) {
      for (auto& o : h.receive(0, a.packet())) toB.push_back(std::move(o.data));
      for (auto& o : h.advance(20)) toB.push_back(std::move(o.data));
    }
  };
  frames(10);  // 200 ms of silence
  a.digit('5', 200);
  frames(30);  // the digit, then 400 ms of silence
  for (auto& o : h.advance(200)) toB.push_back(std::move(o.data));

  const std::uint32_t eventClock = codec::codecInfo(target.codec).rtpClockRate;
  const std::uint32_t perMs = eventClock / 1000;
  std::vector<rtp::RtpView> events;
  std::vector<rtp::TelephoneEvent> payloads;
  rtp::RtpView firstAudio;
  bool haveAudio = false;
  test::ToneReceiver atB(target.codec);
  std::uint16_t expectSeq = 0;
  for (std::size_t i = 0; i < toB.size(); ++i) {
    rtp::RtpView v;
    ASSERT_EQ(rtp::parseRtp(toB[i], v), rtp::RtpStatus::Ok);
    EXPECT_EQ(v.ssrc, *h.pipeline->generatedSsrc(1));
    if (i > 0) {
      EXPECT_EQ(v.sequence, expectSeq) << "audio and events share one sequence space";
    }
    expectSeq = static_cast<std::uint16_t>(v.sequence + 1);
    if (v.payloadType == target.pt) {
      if (!haveAudio) firstAudio = v;
      haveAudio = true;
      atB.add(toB[i]);
      continue;
    }
    ASSERT_EQ(v.payloadType, target.eventPt);
    rtp::TelephoneEvent ev;
    ASSERT_EQ(rtp::parseTelephoneEvent(v.payload, ev), rtp::DtmfStatus::Ok);
    events.push_back(v);
    payloads.push_back(ev);
  }
  ASSERT_TRUE(haveAudio);
  ASSERT_GE(events.size(), 8u);  // start, ~20 ms updates, 3 end packets
  EXPECT_TRUE(events.front().marker);
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(payloads[i].event, 5);
    EXPECT_EQ(events[i].timestamp, events[0].timestamp) << "one timestamp per event";
    if (i > 0) {
      EXPECT_FALSE(events[i].marker);
      EXPECT_GE(payloads[i].duration, payloads[i - 1].duration);
    }
    EXPECT_EQ(payloads[i].end, i + 3 >= events.size()) << i;
  }
  const rtp::TelephoneEvent& last = payloads.back();
  EXPECT_EQ(payloads[payloads.size() - 2].duration, last.duration);
  EXPECT_EQ(payloads[payloads.size() - 3].duration, last.duration);
  EXPECT_NEAR(last.duration, 200.0 * perMs, 15.0 * perMs);
  // The event starts where the tone was in the (40 ms look-ahead delayed) audio: 200 ms +
  // 40 ms after the first audio sample.
  const auto startMs = static_cast<std::int32_t>(events[0].timestamp - firstAudio.timestamp) /
                       static_cast<std::int32_t>(perMs);
  EXPECT_NEAR(startMs, 240, 15);
  EXPECT_EQ(load(h.counters(0).eventsMapped), 1u);
  // The tone is not in B's audio (it would be detected twice downstream), the rest is.
  EXPECT_EQ(digitsHeard(atB.after(0), atB.rate()), "");
  EXPECT_GE(atB.after(0).size(), std::size_t{atB.rate()} * 600 / 1000);
}

INSTANTIATE_TEST_SUITE_P(Targets, PipelineInbandDtmf,
                         ::testing::Values(test::Side{codec::CodecId::Opus, 111, 110},
                                           test::Side{codec::CodecId::Pcmu, 0, 101}),
                         [](const auto& param) { return std::string(codec::codecInfo(param.param.codec).encodingName); });

TEST(PipelineInbandDtmf, ToneFromALegWithEventsIsNotDetected) {
  // Both legs have telephone-event: no detection, the source's tones are its business.
  Harness h(test::transcodePlan({codec::CodecId::Pcmu, 0, 101}, {codec::CodecId::Opus, 111, 110}));
  InbandDigitSender a(0xa1);
  std::size_t events = 0;
  a.digit('1', 200);
  for (int i = 0; i < 30; ++i) {
    for (auto& o : h.receive(0, a.packet())) events += o.data[1] == 110 ? 1 : 0;
    for (auto& o : h.advance(20)) events += (o.data[1] & 0x7f) == 110 ? 1 : 0;
  }
  EXPECT_EQ(events, 0u);
  EXPECT_EQ(load(h.counters(0).eventsMapped), 0u);
}

TEST(PipelineInbandDtmf, ADigitInProgressEndsWithItsStream) {
  Harness h(inbandPlan({codec::CodecId::Opus, 111, 110}));
  InbandDigitSender before(0xa1), after(0xa2);
  std::vector<rtp::TelephoneEvent> events;
  std::vector<bool> afterSwitch;
  bool switched = false;
  auto take = [&](const std::vector<Out>& outs) {
    for (const auto& o : outs) {
      rtp::RtpView v;
      ASSERT_EQ(rtp::parseRtp(o.data, v), rtp::RtpStatus::Ok);
      if (v.payloadType != 110) continue;
      rtp::TelephoneEvent ev;
      ASSERT_EQ(rtp::parseTelephoneEvent(v.payload, ev), rtp::DtmfStatus::Ok);
      events.push_back(ev);
      afterSwitch.push_back(switched);
    }
  };
  before.digit('7', 2000);
  for (int i = 0; i < 15; ++i) {
    take(h.receive(0, before.packet()));
    take(h.advance(20));
  }
  switched = true;  // a re-INVITE: another SSRC, no tone
  for (int i = 0; i < 15; ++i) {
    take(h.receive(0, after.packet()));
    take(h.advance(20));
  }
  ASSERT_FALSE(events.empty());
  std::size_t ends = 0, updatesAfter = 0;
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].event, 7);
    if (events[i].end) ++ends;
    if (afterSwitch[i] && !events[i].end) ++updatesAfter;
  }
  EXPECT_EQ(ends, 3u);
  EXPECT_EQ(updatesAfter, 0u);
  EXPECT_TRUE(events.back().end);
}

TEST(PipelineInbandDtmf, TheLookaheadIsPlayedOutWhenTheSourceStops) {
  // 200 ms of a 1 kHz tone then nothing (DTX without CN): the last 40 ms, still in the
  // detector's delay line, go out right after it, not at the next talkspurt.
  Harness h(inbandPlan({codec::CodecId::Pcmu, 0, 101}));
  test::ToneSender a(codec::CodecId::Pcmu, 1000, 0, 0xa1);
  std::vector<Bytes> toB;
  for (std::uint16_t i = 0; i < 10; ++i) {
    for (auto& o : h.receive(0, a.packet(i))) toB.push_back(std::move(o.data));
    for (auto& o : h.advance(20)) toB.push_back(std::move(o.data));
  }
  for (auto& o : h.advance(300)) toB.push_back(std::move(o.data));
  ASSERT_EQ(toB.size(), 12u);  // 40 ms of look-ahead silence first, then the 200 ms
  std::vector<double> power;
  for (const auto& p : toB) {
    test::ToneReceiver one(codec::CodecId::Pcmu);
    one.add(p);
    power.push_back(codec::test::tonePower(one.after(0), 1000, 8000));
  }
  EXPECT_LT(power[0], 1e3);
  EXPECT_LT(power[1], 1e3);
  for (std::size_t i = 2; i < 12; ++i) EXPECT_GT(power[i], 1e6) << "packet " << i;
}

// A new SSRC on a transcoded flow (re-INVITE, fork switch) restarts the decoding: the
// second stream comes out as from a pipeline that never saw the first.
TEST(PipelineTranscode, NewSourceSsrcRestartsTheDecoding) {
  const MediaPlan plan = test::transcodePlan({codec::CodecId::G722, 9, 101}, {codec::CodecId::Pcmu, 0, 101});
  Harness reused(plan);
  Harness fresh(plan);
  test::ToneSender first(codec::CodecId::G722, 440, 9, 0x1111);
  test::ToneSender second(codec::CodecId::G722, 1000, 9, 0x2222);
  auto payloads = [](const std::vector<Out>& outs, std::vector<Bytes>& into) {
    for (const auto& o : outs) {
      rtp::RtpView v;
      ASSERT_EQ(rtp::parseRtp(o.data, v), rtp::RtpStatus::Ok);
      into.emplace_back(v.payload.begin(), v.payload.end());
    }
  };
  std::vector<Bytes> ignored, afterSwitch, alone;
  for (std::uint16_t i = 0; i < 25; ++i) {
    payloads(reused.receive(0, first.packet(i)), ignored);
    payloads(reused.advance(20), ignored);
  }
  payloads(reused.advance(200), ignored);  // the first stream has played out
  for (std::uint16_t i = 0; i < 25; ++i) {
    const Bytes packet = second.packet(i);
    payloads(reused.receive(0, packet), afterSwitch);
    payloads(reused.advance(20), afterSwitch);
    payloads(fresh.receive(0, packet), alone);
    payloads(fresh.advance(20), alone);
  }
  ASSERT_GE(alone.size(), 20u);
  ASSERT_EQ(afterSwitch.size(), alone.size());
  for (std::size_t i = 0; i < alone.size(); ++i) EXPECT_TRUE(afterSwitch[i] == alone[i]) << "packet " << i;
  EXPECT_EQ(load(reused.counters(0).concealedFrames), 0u);
}

// ---- RTCP --------------------------------------------------------------------------------

TEST(PipelineRtcp, TranscodedLegGetsOurSenderReportsAndRttIsMeasured) {
  const test::Side pcmu{codec::CodecId::Pcmu, 0, 101};
  const test::Side opus{codec::CodecId::Opus, 111, 110};
  PipelineOptions options;
  options.cname = "medius@test";
  options.rtcpIntervalMs = 1000;
  Harness h(test::transcodePlan(pcmu, opus), options);
  test::ToneSender fromA(codec::CodecId::Pcmu, 1000, 0, 0xa1);
  test::ToneSender fromB(codec::CodecId::Opus, 440, 111, 0xb1);
  std::vector<Out> rtcpOut;
  std::size_t audioToB = 0;
  for (std::uint16_t i = 0; i < 150; ++i) {  // 3 s
    auto outs = h.receive(0, fromA.packet(i));
    auto more = h.receive(1, fromB.packet(i));
    outs.insert(outs.end(), more.begin(), more.end());
    more = h.advance(20);
    outs.insert(outs.end(), more.begin(), more.end());
    for (auto& o : outs) {
      if (rtp::isRtcp(o.data)) {
        rtcpOut.push_back(o);
      } else if (o.leg == 1) {
        ++audioToB;
      }
    }
  }
  ASSERT_GE(rtcpOut.size(), 4u) << "an SR/RR per leg every ~1 s";
  bool sawSrToB = false;
  for (const Out& o : rtcpOut) {
    EXPECT_TRUE(o.rtcpSocket);
    rtp::RtcpInfo info;
    ASSERT_EQ(rtp::parseRtcp(o.data, info), rtp::RtcpStatus::Ok);
    EXPECT_EQ(info.cname, "medius@test");
    if (o.leg != 1) continue;
    ASSERT_TRUE(info.hasSenderReport);
    EXPECT_EQ(info.senderSsrc, *h.pipeline->generatedSsrc(1));
    EXPECT_GT(info.sender.packetCount, 0u);
    EXPECT_LE(info.sender.packetCount, audioToB);
    ASSERT_EQ(info.blockCount, 1u);
    EXPECT_EQ(info.blocks[0].ssrc, 0xb1u) << "the block is about what B sends";
    sawSrToB = true;
  }
  ASSERT_TRUE(sawSrToB);

  // B answers with an RR about our last SR: DLSR = 40 ms, arriving 100 ms after that SR
  // left, so RTT = 60 ms (RFC 3550 6.4.1).
  const Out* lastSr = nullptr;
  for (const Out& o : rtcpOut) {
    if (o.leg == 1) lastSr = &o;
  }
  rtp::RtcpInfo last;
  ASSERT_EQ(rtp::parseRtcp(lastSr->data, last), rtp::RtcpStatus::Ok);
  const std::uint64_t srNtp = last.sender.ntpTimestamp;
  h.now = lastSr->at + 100 * kMs;
  rtp::ReportBlock block;
  block.ssrc = *h.pipeline->generatedSsrc(1);
  block.fractionLost = 25;
  block.jitter = 480;  // 10 ms at 48 kHz
  block.lastSr = rtp::ntpMiddle32(srNtp);
  block.delaySinceLastSr = rtp::nanosToNtpShort(40 * kMs);
  std::array<std::uint8_t, 200> rr{};
  std::size_t length = rtp::writeReceiverReport(rr, 0xb1, std::span(&block, 1), "peer-b");
  ASSERT_GT(length, 0u);
  h.receive(1, Bytes(rr.begin(), rr.begin() + static_cast<std::ptrdiff_t>(length)), true);
  EXPECT_EQ(load(h.counters(1).peerFractionLost), 25u);
  EXPECT_EQ(load(h.counters(1).peerJitterMicros), 10'000u);
  EXPECT_NEAR(static_cast<double>(load(h.counters(1).rttMicros)), 60'000.0, 100.0);
  EXPECT_GE(load(h.counters(1).rtcpOut), 2u);
  EXPECT_EQ(load(h.counters(1).rtcpIn), 1u);
}

TEST(PipelineRtcp, ReportsFollowAPeerThatMultiplexesRtcp) {
  PipelineOptions options;
  options.rtcpIntervalMs = 200;
  MediaPlan plan = test::transcodePlan({codec::CodecId::Pcmu, 0, 101}, {codec::CodecId::Opus, 111, 110});
  plan.legs[0].rtcpMux = true;  // agreed in SDP with A; B says nothing but sends muxed RTCP
  Harness h(plan, options);
  // A forged RTCP-looking datagram on B's RTP port does not move B's reports.
  EXPECT_TRUE(h.receive(1, {0x80, 201, 0x00, 0x40, 0, 0, 0, 1}).empty());
  auto where = [&](int leg) {
    std::vector<bool> sockets;
    for (const Out& o : h.advance(1000)) {
      if (o.leg == leg && rtp::isRtcp(o.data)) sockets.push_back(o.rtcpSocket);
    }
    return sockets;
  };
  const auto toB = where(1);
  const auto toA = where(0);
  ASSERT_FALSE(toB.empty());
  ASSERT_FALSE(toA.empty());
  for (bool rtcpSocket : toB) EXPECT_TRUE(rtcpSocket);
  for (bool rtcpSocket : toA) EXPECT_FALSE(rtcpSocket) << "rtcp-mux from the plan";
  std::array<std::uint8_t, 100> rr{};
  const std::size_t length = rtp::writeReceiverReport(rr, 0xb1, {}, "peer-b");
  h.receive(1, Bytes(rr.begin(), rr.begin() + static_cast<std::ptrdiff_t>(length)), false);
  auto after = where(1);
  ASSERT_FALSE(after.empty());
  for (bool rtcpSocket : after) EXPECT_FALSE(rtcpSocket) << "learned from B's muxed RTCP";
}

// ---- hostile input -------------------------------------------------------------------------

// Random datagrams, half of them shaped like RTP/RTCP (valid headers, random flags, counts,
// lengths and payloads), on both legs and both sockets of four kinds of sessions. What
// comes out of a plain relay must be valid RTP/RTCP, every drop must be counted, and
// nothing may crash (the ASan/UBSan build runs this too).
TEST(PipelineHostileInput, RandomDatagramsAreCountedAndNeverForwardedMalformed) {
  std::mt19937 rng(20261126);
  auto byte = [&] { return static_cast<std::uint8_t>(rng()); };
  auto datagram = [&]() {
    const std::size_t length = rng() % 4 == 0 ? rng() % 12 : rng() % 400;
    Bytes b(length);
    for (auto& x : b) x = byte();
    if (length >= 12 && rng() % 2 == 0) {
      b[0] = static_cast<std::uint8_t>(0x80 | (b[0] & 0x3f));  // version 2, random P/X/CC
      const std::uint8_t pts[] = {0, 8, 9, 13, 18, 96, 101, 110, 111, 127, 200, 201, 202, 203};
      b[1] = static_cast<std::uint8_t>((b[1] & 0x80) | pts[rng() % std::size(pts)]);
      if (rng() % 2 == 0) b[0] &= 0xc0;  // no padding, extension or CSRC: mostly valid RTP
      if (b[1] >= 200 || (b[1] & 0x7f) >= 72) {
        b[1] = pts[10 + rng() % 4];
        b[2] = 0;
        b[3] = static_cast<std::uint8_t>(rng() % 2 == 0 ? length / 4 - 1 : rng());  // maybe lying
      }
    }
    return b;
  };
  test::LegKeys keysA, keysB;
  MediaPlan plain = test::relayPlan();
  MediaPlan srtp = test::relayPlan();
  keysA.apply(srtp.legs[0]);
  keysB.apply(srtp.legs[1]);
  MediaPlan opus = test::transcodePlan({codec::CodecId::Pcmu, 0, 101, 13}, {codec::CodecId::Opus, 111, 110});
  keysA.apply(opus.legs[0]);
  MediaPlan g729 = test::transcodePlan({codec::CodecId::G722, 9, 101, 13}, {codec::CodecId::G729, 18, 101});
  int kind = 0;
  for (const MediaPlan* plan : {&plain, &srtp, &opus, &g729}) {
    SCOPED_TRACE(kind);
    Harness h(*plan);
    std::uint64_t dropped[2] = {0, 0};
    for (int i = 0; i < 4000; ++i) {
      const int leg = static_cast<int>(rng() % 2);
      const bool rtcpSocket = rng() % 4 == 0;
      for (const Out& o : h.receive(leg, datagram(), rtcpSocket)) {
        ASSERT_LE(o.data.size(), 400u + srtp::kMaxOverhead);
        if (kind != 0) continue;
        if (rtp::isRtcp(o.data) || o.rtcpSocket) {
          EXPECT_EQ(rtp::validateRtcp(o.data), rtp::RtcpStatus::Ok);
        } else {
          EXPECT_EQ(rtp::parseRtp(o.data).has_value(), true);
        }
      }
      if (h.last == ReceiveResult::Dropped) ++dropped[leg];
      if (i % 10 == 0) h.advance(5);
    }
    for (int leg = 0; leg < 2; ++leg) {
      const LegCounters& c = h.counters(leg);
      EXPECT_EQ(dropped[leg],
                load(c.badPackets) + load(c.srtpAuthFailures) + load(c.srtpReplays) + load(c.srtpErrors));
      EXPECT_GT(dropped[leg], 0u);
      if (kind == 0) {
        EXPECT_GT(load(c.expected) + load(c.rtcpIn), 0u) << "some shaped packets were valid";
      }
    }
    ++kind;
  }
}

// ---- re-negotiation and the packet path ---------------------------------------------------

TEST(PipelineAdopt, ReNegotiationKeepsSrtpContextsAndOurStream) {
  MediaPlan plan = test::transcodePlan({codec::CodecId::Pcmu, 0, 101}, {codec::CodecId::Opus, 111, 110});
  test::LegKeys keysA;
  keysA.apply(plan.legs[0]);
  test::SrtpPeer peerA = keysA.peerSide();
  Harness h(plan);
  test::ToneSender fromA(codec::CodecId::Pcmu, 1000, 0, 0xa1);
  test::ToneSender fromB(codec::CodecId::Opus, 440, 111, 0xb1);
  std::vector<Bytes> sentByA;
  std::vector<Out> outs;
  for (std::uint16_t i = 0; i < 10; ++i) {
    sentByA.push_back(peerA.protect(fromA.packet(i)));
    for (auto& o : h.receive(0, sentByA.back())) outs.push_back(o);
    for (auto& o : h.receive(1, fromB.packet(i))) outs.push_back(o);
    for (auto& o : h.advance(20)) outs.push_back(o);
  }
  rtp::RtpView lastToB;
  for (const Out& o : outs) {
    if (rtp::isRtcp(o.data)) continue;
    if (o.leg == 1) {
      ASSERT_EQ(rtp::parseRtp(o.data, lastToB), rtp::RtpStatus::Ok);
    } else {
      EXPECT_TRUE(peerA.unprotect(o.data));
    }
  }
  const std::uint32_t ssrcB = *h.pipeline->generatedSsrc(1);
  const std::uint16_t lastSeqB = lastToB.sequence;

  // A re-INVITE with the same keys and codecs (e.g. a session refresh): a new pipeline.
  auto next = std::make_unique<MediaPipeline>(plan, Harness::quiet());
  next->adopt(*h.pipeline);
  h.pipeline = std::move(next);
  EXPECT_EQ(*h.pipeline->generatedSsrc(1), ssrcB);
  EXPECT_TRUE(h.receive(0, sentByA[9]).empty()) << "the replay window was not carried over";
  EXPECT_EQ(load(h.counters(0).srtpReplays), 1u);
  outs.clear();
  for (std::uint16_t i = 10; i < 20; ++i) {
    for (auto& o : h.receive(0, peerA.protect(fromA.packet(i)))) outs.push_back(o);
    for (auto& o : h.receive(1, fromB.packet(i))) outs.push_back(o);
    for (auto& o : h.advance(20)) outs.push_back(o);
  }
  bool firstToB = true;
  std::size_t toA = 0;
  for (const Out& o : outs) {
    if (rtp::isRtcp(o.data)) continue;
    if (o.leg == 0) {
      EXPECT_TRUE(peerA.unprotect(o.data)) << "our outbound context must go on (same key, same ROC)";
      ++toA;
      continue;
    }
    rtp::RtpView v;
    ASSERT_EQ(rtp::parseRtp(o.data, v), rtp::RtpStatus::Ok);
    EXPECT_EQ(v.ssrc, ssrcB);
    if (firstToB) {
      EXPECT_EQ(v.sequence, static_cast<std::uint16_t>(lastSeqB + 1));
      EXPECT_TRUE(v.marker);
      firstToB = false;
    }
  }
  EXPECT_FALSE(firstToB);
  EXPECT_GT(toA, 0u);
}

TEST(PipelineAllocation, PacketPathAllocatesNothing) {
  // Relay SRTP <-> RTP.
  {
    MediaPlan plan = test::relayPlan();
    test::LegKeys keysA;
    keysA.apply(plan.legs[0]);
    test::SrtpPeer peerA = keysA.peerSide();
    Harness h(plan);
    std::vector<Bytes> fromA, fromB;
    for (std::uint16_t seq = 0; seq < 100; ++seq) {
      fromA.push_back(peerA.protect(rtpPacket(seq, seq * 160u, 0, 0xa1, test::filler(160))));
      fromB.push_back(rtpPacket(seq, seq * 160u, 0, 0xb1, test::filler(160)));
    }
    h.receiveQuiet(0, fromA[0]);  // libsrtp creates each SSRC's stream (malloc) once
    h.receiveQuiet(1, fromB[0]);
    test::AllocationCounter counter;
    for (std::size_t i = 1; i < fromA.size(); ++i) {
      h.receiveQuiet(0, fromA[i]);
      h.receiveQuiet(1, fromB[i]);
      h.tickQuiet(10);
    }
    EXPECT_EQ(counter.count(), 0);
    EXPECT_EQ(load(h.counters(1).expected), 100u);
  }
  // Transcoding PCMU <-> Opus with telephone-events and RTCP reports.
  {
    PipelineOptions options;
    options.rtcpIntervalMs = 100;
    MediaPlan plan = test::transcodePlan({codec::CodecId::Pcmu, 0, 101}, {codec::CodecId::Opus, 111, 110});
    Harness h(plan, options);
    test::ToneSender a(codec::CodecId::Pcmu, 1000, 0, 0xa1);
    test::ToneSender b(codec::CodecId::Opus, 440, 111, 0xb1);
    std::vector<Bytes> fromA, fromB;
    for (std::uint16_t i = 0; i < 100; ++i) {
      fromA.push_back(a.packet(i));
      fromB.push_back(b.packet(i));
    }
    Bytes event = rtpPacket(2000, 99999, 101, 0xa1, {1, 10, 0, 160});
    test::AllocationCounter counter;
    for (std::size_t i = 0; i < fromA.size(); ++i) {
      h.receiveQuiet(0, fromA[i]);
      h.receiveQuiet(1, fromB[i]);
      if (i == 50) h.receiveQuiet(0, event);
      for (int t = 0; t < 4; ++t) h.tickQuiet(5);
    }
    EXPECT_EQ(counter.count(), 0);
    EXPECT_GT(load(h.counters(1).rtcpOut), 5u);
  }
  // In-band DTMF detected on a PCMU leg without telephone-event, sent as events to Opus.
  {
    Harness h(inbandPlan({codec::CodecId::Opus, 111, 110}));
    InbandDigitSender a(0xa1);
    std::vector<Bytes> fromA;
    for (int i = 0; i < 60; ++i) {
      if (i == 10 || i == 35) a.digit(i == 10 ? '5' : '#', 200);
      fromA.push_back(a.packet());
    }
    test::AllocationCounter counter;
    for (const auto& p : fromA) {
      h.receiveQuiet(0, p);
      for (int t = 0; t < 4; ++t) h.tickQuiet(5);
    }
    EXPECT_EQ(counter.count(), 0);
    EXPECT_EQ(load(h.counters(0).eventsMapped), 2u);
  }
}

}  // namespace
}  // namespace medius::media
