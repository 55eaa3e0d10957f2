// MediaPipeline end to end through a relay Worker: real UDP sockets on 127.0.0.1 playing
// leg A's and leg B's peers, real time (the worker's playout tick and RTCP timers).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "medius/media/pipeline.hpp"
#include "medius/media/relay.hpp"
#include "medius/media/rtp/rtcp.hpp"
#include "pipeline_support.hpp"
#include "udp_peer.hpp"

namespace medius::media {
namespace {

using namespace std::chrono_literals;
using test::Bytes;
using test::rtpPacket;

std::uint16_t localPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

using Peer = test::UdpPeer;

class PipelineWorkerTest : public ::testing::Test {
 protected:
  PipelineWorkerTest()
      : family_(prometheus::BuildCounter().Name("test_packets_total").Register(registry_)),
        bytes_(prometheus::BuildCounter().Name("test_bytes_total").Register(registry_)),
        totals_{family_.Add({{"d", "ab"}}), family_.Add({{"d", "ba"}}), bytes_.Add({{"d", "ab"}}),
                bytes_.Add({{"d", "ba"}})},
        worker_(0, totals_, nullptr) {
    for (RelayLeg& leg : session_.legs) {
      leg.rtp = bindUdp("127.0.0.1", 0);
      leg.rtcp = bindUdp("127.0.0.1", 0);
      leg.localPort = localPort(leg.rtp.get());
    }
    session_.id = "pipeline-e2e";
    worker_.start();
    worker_.run([this] {
      worker_.attach(session_);
      worker_.setRemote(session_, 0, {"127.0.0.1", a_.port(), "127.0.0.1", aRtcp_.port()});
      worker_.setRemote(session_, 1, {"127.0.0.1", b_.port(), "127.0.0.1", bRtcp_.port()});
    });
  }
  ~PipelineWorkerTest() override {
    worker_.run([this] { worker_.detach(session_); });
    worker_.stop();
  }

  void setPipeline(const MediaPlan& plan, const PipelineOptions& options = {}) {
    auto pipeline = std::make_unique<MediaPipeline>(plan, options);
    worker_.run([&] { worker_.setPipeline(session_, std::move(pipeline)); });
  }
  std::uint16_t portA() const { return session_.legs[0].localPort; }
  std::uint16_t portB() const { return session_.legs[1].localPort; }
  std::uint16_t rtcpPort(int leg) const {
    return localPort(session_.legs[static_cast<std::size_t>(leg)].rtcp.get());
  }
  std::uint64_t counter(int leg, std::atomic<std::uint64_t> LegCounters::*field) const {
    return (session_.legs[static_cast<std::size_t>(leg)].counters.*field).load(std::memory_order_relaxed);
  }

  prometheus::Registry registry_;
  prometheus::Family<prometheus::Counter>& family_;
  prometheus::Family<prometheus::Counter>& bytes_;
  TrafficCounters totals_;
  Peer a_, b_, aRtcp_, bRtcp_;
  RelaySession session_;
  Worker worker_;
};

TEST_F(PipelineWorkerTest, SrtpToRtpBothWaysAndBadPacketsDropped) {
  MediaPlan plan = test::relayPlan();
  test::LegKeys keysA;
  keysA.apply(plan.legs[0]);
  setPipeline(plan);
  test::SrtpPeer peerA = keysA.peerSide();
  for (std::uint16_t seq = 1; seq <= 40; ++seq) {
    Bytes plain = rtpPacket(seq, seq * 160u, 0, 0xa1, test::filler(160, static_cast<std::uint8_t>(seq)));
    a_.sendTo(portA(), peerA.protect(plain));
    auto got = b_.receive();
    ASSERT_TRUE(got) << "packet " << seq;
    EXPECT_EQ(got->data, plain);
  }
  for (std::uint16_t seq = 1; seq <= 40; ++seq) {
    Bytes plain = rtpPacket(seq, seq * 160u, 0, 0xb1, test::filler(160, 3));
    b_.sendTo(portB(), plain);
    auto got = a_.receive();
    ASSERT_TRUE(got);
    auto decrypted = peerA.unprotect(got->data);
    ASSERT_TRUE(decrypted);
    EXPECT_EQ(*decrypted, plain);
  }
  // Tampered, replayed, truncated: none reaches B.
  Bytes tampered = peerA.protect(rtpPacket(41, 0, 0, 0xa1, test::filler(160)));
  tampered[20] ^= 0xff;
  a_.sendTo(portA(), tampered);
  a_.sendTo(portA(), peerA.protect(rtpPacket(42, 0, 0, 0xa1, test::filler(160))));
  auto replay = b_.receive();
  ASSERT_TRUE(replay);
  a_.sendTo(portA(), peerA.protect(rtpPacket(43, 0, 0, 0xa1, test::filler(160))));
  ASSERT_TRUE(b_.receive());
  a_.sendTo(portA(), Bytes{0x80, 0, 1});
  EXPECT_FALSE(b_.receive(200ms));
  EXPECT_EQ(counter(0, &LegCounters::srtpAuthFailures), 1u);
  EXPECT_EQ(counter(0, &LegCounters::badPackets), 1u);
  EXPECT_EQ(counter(1, &LegCounters::packetsOut), 42u);
  EXPECT_EQ(counter(0, &LegCounters::packetsOut), 40u);
  EXPECT_EQ(counter(0, &LegCounters::bytesOut), 40u * (172 + 10));

  // Back to no pipeline: byte for byte again.
  worker_.run([this] { worker_.setPipeline(session_, nullptr); });
  Bytes raw = rtpPacket(50, 0, 0, 0xa1, test::filler(160));
  a_.sendTo(portA(), raw);
  auto got = b_.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, raw);
}

TEST_F(PipelineWorkerTest, ANewPipelineForTheSameKeysKeepsTheSrtpContexts) {
  MediaPlan plan = test::relayPlan();
  test::LegKeys keysA, keysB;
  keysA.apply(plan.legs[0]);
  keysB.apply(plan.legs[1]);
  setPipeline(plan);
  test::SrtpPeer peerA = keysA.peerSide();
  test::SrtpPeer peerB = keysB.peerSide();
  Bytes old = peerA.protect(rtpPacket(1, 160, 0, 0xa1, test::filler(160)));
  a_.sendTo(portA(), old);
  auto got = b_.receive();
  ASSERT_TRUE(got);
  ASSERT_TRUE(peerB.unprotect(got->data));
  // Re-INVITE, same a=crypto both sides: the replay window (and rollover counter) stay.
  setPipeline(plan);
  a_.sendTo(portA(), old);
  EXPECT_FALSE(b_.receive(200ms)) << "replayed across the new pipeline";
  EXPECT_EQ(counter(0, &LegCounters::srtpReplays), 1u);
  Bytes next = rtpPacket(2, 320, 0, 0xa1, test::filler(160));
  a_.sendTo(portA(), peerA.protect(next));
  got = b_.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(peerB.unprotect(got->data), next);
  // Re-keying leg A (new a=crypto from A): the old key no longer authenticates.
  test::LegKeys rekeyedA;
  rekeyedA.apply(plan.legs[0]);
  setPipeline(plan);
  a_.sendTo(portA(), peerA.protect(rtpPacket(3, 480, 0, 0xa1, test::filler(160))));
  EXPECT_FALSE(b_.receive(200ms));
  EXPECT_EQ(counter(0, &LegCounters::srtpAuthFailures), 1u);
  test::SrtpPeer peerA2 = rekeyedA.peerSide();
  a_.sendTo(portA(), peerA2.protect(rtpPacket(4, 640, 0, 0xa1, test::filler(160))));
  got = b_.receive();
  ASSERT_TRUE(got);
  EXPECT_TRUE(peerB.unprotect(got->data));
}

TEST_F(PipelineWorkerTest, PcmuOpusToneBothWaysWithSenderReports) {
  const test::Side pcmu{codec::CodecId::Pcmu, 0, 101};
  const test::Side opus{codec::CodecId::Opus, 111, 110};
  PipelineOptions options;
  options.rtcpIntervalMs = 300;
  options.cname = "medius@e2e";
  setPipeline(test::transcodePlan(pcmu, opus), options);
  std::uint32_t ssrcToB = 0;
  worker_.run([&] { ssrcToB = *session_.pipeline->generatedSsrc(1); });

  test::ToneSender fromA(codec::CodecId::Pcmu, 1000, 0, 0xa1);
  test::ToneSender fromB(codec::CodecId::Opus, 440, 111, 0xb1);
  std::vector<Bytes> atA, atB;
  auto start = std::chrono::steady_clock::now();
  for (std::uint16_t i = 0; i < 75; ++i) {  // 1.5 s of audio, paced like a phone
    a_.sendTo(portA(), fromA.packet(i));
    b_.sendTo(portB(), fromB.packet(i));
    for (auto& p : a_.drain()) atA.push_back(std::move(p));
    for (auto& p : b_.drain()) atB.push_back(std::move(p));
    std::this_thread::sleep_until(start + (i + 1) * 20ms);
  }
  std::this_thread::sleep_for(300ms);
  for (auto& p : a_.drain()) atA.push_back(std::move(p));
  for (auto& p : b_.drain()) atB.push_back(std::move(p));
  ASSERT_GE(atB.size(), 65u);
  ASSERT_GE(atA.size(), 65u);
  test::ToneReceiver opusOut(codec::CodecId::Opus), pcmuOut(codec::CodecId::Pcmu);
  for (const auto& p : atB) {
    rtp::RtpView v;
    ASSERT_EQ(rtp::parseRtp(p, v), rtp::RtpStatus::Ok);
    EXPECT_EQ(v.ssrc, ssrcToB);
    EXPECT_EQ(v.payloadType, 111);
    opusOut.add(p);
  }
  for (const auto& p : atA) pcmuOut.add(p);
  EXPECT_NEAR(codec::test::dominantFrequency(opusOut.after(200), opusOut.rate(), 3000), 1000, 10);
  EXPECT_NEAR(codec::test::dominantFrequency(pcmuOut.after(200), pcmuOut.rate(), 3000), 440, 10);

  // Our SR toward B arrived on B's RTCP port, about our stream, with a block about B's.
  auto rtcp = bRtcp_.drain();
  ASSERT_FALSE(rtcp.empty()) << "no RTCP toward B in 1.8 s with a 300 ms interval";
  bool sawSr = false;
  for (const auto& packet : rtcp) {
    rtp::RtcpInfo info;
    ASSERT_EQ(rtp::parseRtcp(packet, info), rtp::RtcpStatus::Ok);
    EXPECT_EQ(info.cname, "medius@e2e");
    if (!info.hasSenderReport) continue;
    sawSr = true;
    EXPECT_EQ(info.senderSsrc, ssrcToB);
    EXPECT_GT(info.sender.packetCount, 0u);
    ASSERT_EQ(info.blockCount, 1u);
    EXPECT_EQ(info.blocks[0].ssrc, 0xb1u);
  }
  EXPECT_TRUE(sawSr);
  EXPECT_FALSE(aRtcp_.drain().empty());
  EXPECT_EQ(counter(0, &LegCounters::expected), 75u);
  EXPECT_EQ(counter(1, &LegCounters::lost), 0u);
  EXPECT_GT(counter(1, &LegCounters::rtcpOut), 0u);
}

}  // namespace
}  // namespace medius::media
