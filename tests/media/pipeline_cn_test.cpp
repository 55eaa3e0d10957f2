// MediaPipeline toward a leg that takes RFC 3389 comfort noise while its source does not:
// silence, DTX and underruns become CN packets (PT, level, timestamps, marker), tones never.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "medius/media/codec/comfort_noise.hpp"
#include "pipeline_support.hpp"

namespace medius::media {
namespace {

using test::Bytes;
using test::Harness;
using test::load;
using test::Out;

// A peer that talks (a 1 kHz tone at -10 dBFS) or is silent (zeros, encoded), or sends
// nothing (DTX: its timestamps move on, its sequence numbers do not, RFC 7587 3.1.3).
class Talker {
 public:
  Talker(codec::CodecId id, std::uint8_t pt)
      : encoder_(codec::makeEncoder(id, {})), sine_(1000, encoder_->sampleRate()), pt_(pt) {}
  Bytes tone() { return packet(sine_.take(encoder_->samplesPerPacket())); }
  Bytes silence() { return packet(std::vector<std::int16_t>(encoder_->samplesPerPacket(), 0)); }
  Bytes cn(std::uint8_t level) {
    Bytes p = test::rtpPacket(seq_++, ts_, codec::kComfortNoisePayloadType, kSsrc, {level});
    ts_ += encoder_->timestampIncrement();
    return p;
  }
  void skip() { ts_ += encoder_->timestampIncrement(); }

 private:
  static constexpr std::uint32_t kSsrc = 0xa1;
  Bytes packet(const std::vector<std::int16_t>& pcm) {
    Bytes payload(codec::kMaxPayloadBytes);
    auto r = encoder_->encode(pcm, payload);
    EXPECT_EQ(r.status, codec::CodecStatus::Ok);
    payload.resize(r.bytes);
    Bytes p = test::rtpPacket(seq_++, ts_, pt_, kSsrc, payload);
    ts_ += encoder_->timestampIncrement();
    return p;
  }
  std::unique_ptr<codec::Encoder> encoder_;
  codec::test::SineSource sine_;
  std::uint8_t pt_;
  std::uint16_t seq_ = 1000;
  std::uint32_t ts_ = 5000;
};

// A packet sent to leg B; the view points into `data` (a moved vector keeps its buffer).
struct Sent {
  rtp::RtpView view;
  Bytes data;
};

// Opus (no CN) from leg A to PCMU with CN (13) on leg B.
MediaPlan opusToPcmuWithCn() {
  MediaPlan plan = test::transcodePlan({codec::CodecId::Opus, 111, 110}, {codec::CodecId::Pcmu, 0, 101, 13});
  plan.flows[0].targetCnPt = 13;
  return plan;
}

class Call {
 public:
  explicit Call(const MediaPlan& plan) : h(plan) {}
  // One source packet (or none) and its 20 ms.
  void frame(const std::optional<Bytes>& packet) {
    if (packet) keep(h.receive(0, *packet));
    keep(h.advance(20));
  }
  void keep(const std::vector<Out>& out) {
    for (const auto& o : out) {
      if (o.leg != 1) continue;
      Sent s{{}, o.data};
      ASSERT_EQ(rtp::parseRtp(s.data, s.view), rtp::RtpStatus::Ok);
      sent.push_back(std::move(s));
    }
  }
  std::size_t count(std::uint8_t pt) const {
    return static_cast<std::size_t>(
        std::count_if(sent.begin(), sent.end(), [pt](const Sent& s) { return s.view.payloadType == pt; }));
  }
  Harness h;
  std::vector<Sent> sent;
};

TEST(PipelineComfortNoise, SilenceOfASourceWithoutCnBecomesCnAndSpeechResumesMarked) {
  Call call(opusToPcmuWithCn());
  Talker a(codec::CodecId::Opus, 111);
  for (int i = 0; i < 25; ++i) call.frame(a.tone());
  for (int i = 0; i < 30; ++i) call.frame(a.silence());
  for (int i = 0; i < 10; ++i) call.frame(a.tone());
  const auto& sent = call.sent;
  ASSERT_GE(sent.size(), 40u);
  for (std::size_t i = 1; i < sent.size(); ++i) {
    EXPECT_EQ(static_cast<std::uint16_t>(sent[i].view.sequence - sent[i - 1].view.sequence), 1) << i;
    const std::uint32_t step = sent[i].view.timestamp - sent[i - 1].view.timestamp;
    EXPECT_TRUE(step > 0 && step % 160 == 0) << i << ": timestamps follow our 20 ms frames, sent or not";
  }
  auto firstCn = std::find_if(sent.begin(), sent.end(), [](const Sent& s) { return s.view.payloadType == 13; });
  ASSERT_NE(firstCn, sent.end()) << "CN toward the leg that takes it";
  const auto cnAt = static_cast<std::size_t>(firstCn - sent.begin());
  EXPECT_GE(cnAt, 25u + 10u - 4u) << "the tone, then the 200 ms hangover (less the jitter buffer's start)";
  ASSERT_EQ(firstCn->view.payload.size(), 1u) << "a level byte, no spectral information";
  EXPECT_GE(firstCn->view.payload[0], 50) << "at or below the detector's -50 dBov";
  EXPECT_FALSE(firstCn->view.marker);
  EXPECT_EQ(firstCn->view.timestamp - sent[cnAt - 1].view.timestamp, 160u) << "CN starts where the audio stopped";
  EXPECT_EQ(firstCn->view.ssrc, sent.front().view.ssrc);
  auto resumed = std::find_if(firstCn, sent.end(), [](const Sent& s) { return s.view.payloadType == 0; });
  ASSERT_NE(resumed, sent.end());
  EXPECT_TRUE(resumed->view.marker) << "RFC 3551 4.1: the talkspurt after silence";
  // 25 + 30 frames before it, less the frames the adaptive jitter buffer shed (played
  // sooner once the clean link proved it could: at most one by this point).
  const std::uint64_t shed = load(call.h.counters(0).jitterFramesShed);
  EXPECT_LE(shed, 1u);
  EXPECT_EQ(resumed->view.timestamp - sent.front().view.timestamp, (55u - shed) * 160) << "25 + 30 frames before it";
  // 30 silent frames: after the 10 of hangover, a CN at the start, a refresh every 200 ms,
  // and an update whenever the level moved by 3 dB (Opus's decoder fades its tail out).
  const std::size_t cns = static_cast<std::size_t>(resumed - firstCn);
  EXPECT_GE(cns, 2u);
  EXPECT_LT(cns, 20u) << "not every frame";
  EXPECT_EQ(call.count(13), cns);
  EXPECT_EQ(load(call.h.counters(1).comfortNoiseSent), cns);
  EXPECT_EQ(std::count_if(resumed, sent.end(), [](const Sent& s) { return s.view.payloadType != 0; }), 0);
}

TEST(PipelineComfortNoise, AToneIsNeverReplacedByCn) {
  Call call(opusToPcmuWithCn());
  Talker a(codec::CodecId::Opus, 111);
  for (int i = 0; i < 250; ++i) call.frame(a.tone());  // 5 s
  EXPECT_GE(call.count(0), 240u);
  EXPECT_EQ(call.count(13), 0u);
  EXPECT_EQ(load(call.h.counters(1).comfortNoiseSent), 0u);
}

TEST(PipelineComfortNoise, DtxGapsProduceCnInsteadOfNothing) {
  Call call(opusToPcmuWithCn());
  Talker a(codec::CodecId::Opus, 111);
  for (int i = 0; i < 20; ++i) call.frame(a.tone());
  const std::size_t before = call.sent.size();
  for (int i = 0; i < 50; ++i) {  // 1 s without a packet (DTX, or the network)
    a.skip();
    call.frame(std::nullopt);
  }
  std::vector<Sent> gap(call.sent.begin() + static_cast<std::ptrdiff_t>(before), call.sent.end());
  std::size_t audio = 0;
  std::vector<std::uint32_t> cnTs;
  for (const auto& s : gap) {
    if (s.view.payloadType == 0) ++audio;
    if (s.view.payloadType == 13) cnTs.push_back(s.view.timestamp);
  }
  EXPECT_LE(audio, 4u) << "only what the jitter buffer still held";
  ASSERT_GE(cnTs.size(), 5u) << "CN at the gap's start, then every 200 ms";
  for (std::size_t i = 1; i < cnTs.size(); ++i) EXPECT_EQ(cnTs[i] - cnTs[i - 1], 1600u);
  const auto talkspurt = static_cast<std::ptrdiff_t>(call.sent.size());
  call.frame(a.tone());
  call.keep(call.h.advance(100));
  auto resumed = std::find_if(call.sent.begin() + talkspurt, call.sent.end(),
                              [](const Sent& s) { return s.view.payloadType == 0; });
  ASSERT_NE(resumed, call.sent.end());
  EXPECT_TRUE(resumed->view.marker);
}

TEST(PipelineComfortNoise, ASourceSilentForMoreThan2SecondsGetsNoMoreCn) {
  // On hold (a=inactive) or gone: its peer must not get RTP for ever; it keeps the level.
  Call call(opusToPcmuWithCn());
  Talker a(codec::CodecId::Opus, 111);
  for (int i = 0; i < 20; ++i) call.frame(a.tone());
  for (int i = 0; i < 200; ++i) {  // 4 s
    a.skip();
    call.frame(std::nullopt);
  }
  std::vector<std::uint64_t> cnAt;
  for (const auto& s : call.sent) {
    if (s.view.payloadType == 13) cnAt.push_back(s.view.timestamp);
  }
  ASSERT_GE(cnAt.size(), 10u);
  EXPECT_LE(cnAt.size(), 11u) << "2 s of CN: the start and a refresh every 200 ms";
  EXPECT_EQ(load(call.h.counters(1).comfortNoiseSent), cnAt.size());
  const std::size_t before = call.sent.size();
  call.frame(a.tone());  // it comes back: audio, marked (then silent again: CN again)
  call.keep(call.h.advance(100));
  ASSERT_GT(call.sent.size(), before);
  EXPECT_EQ(call.sent[before].view.payloadType, 0);
  EXPECT_TRUE(call.sent[before].view.marker);
  EXPECT_EQ(call.sent.back().view.payloadType, 13) << "a new silence, covered again";
}

TEST(PipelineComfortNoise, CnFromTheSourceKeepsItsLevelTowardACnTarget) {
  // PCMU with CN on both legs, transcoded to G.722: the source's CN level (-45 dBov, above
  // the detector's threshold) goes out as CN at once, not as noise in G.722.
  MediaPlan plan = test::transcodePlan({codec::CodecId::Pcmu, 0, 101, 13}, {codec::CodecId::G722, 9, 101, 13});
  plan.flows[0].targetCnPt = 13;
  Call call(plan);
  Talker a(codec::CodecId::Pcmu, 0);
  for (int i = 0; i < 10; ++i) call.frame(a.tone());
  call.frame(a.cn(45));
  for (int i = 0; i < 20; ++i) call.frame(std::nullopt);
  auto cn = std::find_if(call.sent.begin(), call.sent.end(), [](const Sent& s) { return s.view.payloadType == 13; });
  ASSERT_NE(cn, call.sent.end());
  EXPECT_EQ(cn->view.payload[0], 45);
  EXPECT_EQ(static_cast<std::size_t>(cn - call.sent.begin()), call.count(9)) << "right after the audio, no hangover";
  EXPECT_GE(load(call.h.counters(0).comfortNoiseFrames), 10u);
}

}  // namespace
}  // namespace medius::media
