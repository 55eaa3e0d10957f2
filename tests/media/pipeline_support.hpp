// Plans, packets and an independent SRTP peer for the MediaPipeline tests (buffers and
// end to end through a Worker).
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "codec/signal.hpp"
#include "medius/media/codec/codec.hpp"
#include "medius/media/media_plan.hpp"
#include "medius/media/pipeline.hpp"
#include "medius/media/rtp/packet.hpp"
#include "medius/media/srtp/keys.hpp"
#include "medius/media/srtp/session.hpp"

namespace medius::media::test {

using Bytes = std::vector<std::uint8_t>;

inline Bytes rtpPacket(std::uint16_t seq, std::uint32_t ts, std::uint8_t pt, std::uint32_t ssrc,
                       const Bytes& payload, bool marker = false) {
  Bytes b(rtp::kRtpHeaderSize + payload.size());
  rtp::writeRtpHeader(b, {pt, marker, seq, ts, ssrc});
  std::copy(payload.begin(), payload.end(), b.begin() + rtp::kRtpHeaderSize);
  return b;
}

inline Bytes filler(std::size_t n, std::uint8_t value = 0xd5) { return Bytes(n, value); }

// SRTP as a peer does it: its own contexts, never the pipeline's.
class SrtpPeer {
 public:
  // `send` protects what the peer sends (the key it announced), `receive` unprotects what
  // it gets (the key we announced to it).
  SrtpPeer(srtp::CryptoSuite suite, const srtp::KeyMaterial& sendKey, const srtp::KeyMaterial& receiveKey)
      : send_(suite, sendKey, srtp::Direction::Outbound),
        receive_(suite, receiveKey, srtp::Direction::Inbound) {}
  Bytes protect(Bytes packet, bool rtcp = false) {
    std::size_t length = packet.size();
    packet.resize(length + srtp::kMaxOverhead);
    auto st = rtcp ? send_.protectRtcp(packet, length) : send_.protectRtp(packet, length);
    EXPECT_EQ(st, srtp::Status::Ok);
    packet.resize(length);
    return packet;
  }
  std::optional<Bytes> unprotect(Bytes packet, bool rtcp = false) {
    std::size_t length = packet.size();
    auto st = rtcp ? receive_.unprotectRtcp(packet, length) : receive_.unprotectRtp(packet, length);
    if (st != srtp::Status::Ok) return std::nullopt;
    packet.resize(length);
    return packet;
  }

 private:
  srtp::SrtpSession send_;
  srtp::SrtpSession receive_;
};

// SRTP parameters of one leg: the peer's key (inbound) and ours (outbound).
struct LegKeys {
  srtp::CryptoSuite suite = srtp::CryptoSuite::AesCm128HmacSha1_80;
  srtp::KeyMaterial peer;
  srtp::KeyMaterial ours;
  explicit LegKeys(srtp::CryptoSuite s = srtp::CryptoSuite::AesCm128HmacSha1_80)
      : suite(s), peer(srtp::generateKeyMaterial(s)), ours(srtp::generateKeyMaterial(s)) {}
  void apply(LegPlan& leg) const {
    leg.inbound = SrtpParams{suite, peer, std::nullopt, {}};
    leg.outbound = SrtpParams{suite, ours, std::nullopt, {}};
  }
  SrtpPeer peerSide() const { return SrtpPeer(suite, peer, ours); }
};

// A relay plan: PCMU (0) and telephone-event (101) cross unchanged both ways.
inline MediaPlan relayPlan() {
  MediaPlan plan;
  for (auto& leg : plan.legs) {
    leg.codecName = "PCMU";
    leg.codecPt = 0;
    leg.codecClock = 8000;
    leg.eventPt = 101;
  }
  for (auto& flow : plan.flows) {
    flow.mode = FlowPlan::Mode::Relay;
    flow.payloadMap[0] = 0;
    flow.payloadMap[101] = 101;
  }
  return plan;
}

// One side of a transcoded call.
struct Side {
  codec::CodecId codec;
  std::uint8_t pt;
  std::uint8_t eventPt;
  std::optional<std::uint8_t> cnPt = std::nullopt;
};

inline MediaPlan transcodePlan(const Side& a, const Side& b) {
  MediaPlan plan;
  const Side* sides[2] = {&a, &b};
  for (int i = 0; i < 2; ++i) {
    const Side& s = *sides[i];
    const auto& info = codec::codecInfo(s.codec);
    LegPlan& leg = plan.legs[static_cast<std::size_t>(i)];
    leg.codecName = std::string(info.encodingName);
    leg.codec = s.codec;
    leg.codecPt = s.pt;
    leg.codecClock = info.rtpClockRate;
    leg.eventPt = s.eventPt;
    leg.eventClock = info.rtpClockRate;
    leg.cnPt = s.cnPt;
  }
  for (int i = 0; i < 2; ++i) {
    const Side& from = *sides[i];
    const Side& to = *sides[1 - i];
    FlowPlan& flow = plan.flows[static_cast<std::size_t>(i)];
    flow.mode = FlowPlan::Mode::Transcode;
    flow.transcoder.from = from.codec;
    flow.transcoder.to = to.codec;
    flow.sourcePt = from.pt;
    flow.targetPt = to.pt;
    flow.sourceClock = codec::codecInfo(from.codec).rtpClockRate;
    flow.targetClock = codec::codecInfo(to.codec).rtpClockRate;
    flow.sourcePtimeMs = 20;
    flow.sourceEventPt = from.eventPt;
    flow.targetEventPt = to.eventPt;
    flow.sourceEventClock = flow.sourceClock;
    flow.targetEventClock = flow.targetClock;
    flow.sourceCnPt = from.cnPt;
  }
  return plan;
}

// Encodes a tone as a peer would send it: 20 ms payloads of `codec`.
class ToneSender {
 public:
  ToneSender(codec::CodecId id, double freq, std::uint8_t pt, std::uint32_t ssrc)
      : encoder_(codec::makeEncoder(id, {})), sine_(freq, encoder_->sampleRate()), pt_(pt), ssrc_(ssrc) {}
  // The RTP packet of frame `index` (sequence and timestamp follow it).
  Bytes packet(std::uint16_t index) {
    auto pcm = sine_.take(encoder_->samplesPerPacket());
    Bytes payload(codec::kMaxPayloadBytes);
    auto r = encoder_->encode(pcm, payload);
    EXPECT_EQ(r.status, codec::CodecStatus::Ok);
    payload.resize(r.bytes);
    return rtpPacket(static_cast<std::uint16_t>(1000 + index), 5000 + index * encoder_->timestampIncrement(),
                     pt_, ssrc_, payload);
  }

 private:
  std::unique_ptr<codec::Encoder> encoder_;
  codec::test::SineSource sine_;
  std::uint8_t pt_;
  std::uint32_t ssrc_;
};

// Decodes what arrives (in sequence order as given) and measures it.
class ToneReceiver {
 public:
  explicit ToneReceiver(codec::CodecId id) : decoder_(codec::makeDecoder(id, {})) {}
  void add(const Bytes& packet) {
    rtp::RtpView view;
    ASSERT_EQ(rtp::parseRtp(packet, view), rtp::RtpStatus::Ok);
    std::vector<std::int16_t> pcm(codec::kMaxDecodedSamples);
    auto r = decoder_->decode(view.payload, pcm);
    ASSERT_EQ(r.status, codec::CodecStatus::Ok);
    pcm_.insert(pcm_.end(), pcm.begin(), pcm.begin() + static_cast<std::ptrdiff_t>(r.samples));
  }
  std::uint32_t rate() const { return decoder_->sampleRate(); }
  // The audio after `skipMs` (codec and jitter buffer start-up).
  std::span<const std::int16_t> after(unsigned skipMs) const {
    std::size_t skip = std::size_t{rate()} / 1000 * skipMs;
    if (skip >= pcm_.size()) return {};
    return std::span<const std::int16_t>(pcm_).subspan(skip);
  }

 private:
  std::unique_ptr<codec::Decoder> decoder_;
  std::vector<std::int16_t> pcm_;
};

// ---- a pipeline on buffers ----------------------------------------------------------

inline constexpr std::uint64_t kMs = 1'000'000;

struct Out {
  int leg;
  bool rtcpSocket;
  Bytes data;
  std::uint64_t at = 0;  // the virtual time it was emitted
};

// A pipeline on a virtual clock, with the worker's buffer and sink.
class Harness {
 public:
  explicit Harness(const MediaPlan& plan, const PipelineOptions& options = quiet())
      : pipeline(std::make_unique<MediaPipeline>(plan, options)) {}
  // No RTCP reports within a test's few seconds (the RTCP tests ask for them), so that
  // the media tests count media packets only.
  static PipelineOptions quiet() {
    PipelineOptions options;
    options.rtcpIntervalMs = 3'600'000;
    return options;
  }

  std::vector<Out> receive(int leg, const Bytes& packet, bool rtcpSocket = false) {
    std::copy(packet.begin(), packet.end(), buffer_.begin());
    last = pipeline->receive(leg, rtcpSocket, buffer_, packet.size(), now, sink_);
    return drain();
  }
  // Runs the playout clock for `ms` in 5 ms ticks.
  std::vector<Out> advance(std::uint64_t ms) {
    std::vector<Out> all;
    for (std::uint64_t t = 0; t < ms; t += 5) {
      now += 5 * kMs;
      pipeline->tick(now, sink_);
      for (auto& o : drain()) all.push_back(std::move(o));
    }
    return all;
  }
  std::vector<Out> drain() {
    std::vector<Out> out;
    for (const auto& p : sink_.packets())
      out.push_back({p.leg, p.rtcpSocket, Bytes(p.data, p.data + p.length), now});
    sink_.clear();
    return out;
  }
  LegCounters& counters(int leg) { return pipeline->counters(leg); }
  // The packet path alone (nothing copied out): for the allocation test.
  void receiveQuiet(int leg, const Bytes& packet) {
    std::copy(packet.begin(), packet.end(), buffer_.begin());
    last = pipeline->receive(leg, false, buffer_, packet.size(), now, sink_);
    sink_.clear();
  }
  void tickQuiet(std::uint64_t ms) {
    now += ms * kMs;
    pipeline->tick(now, sink_);
    sink_.clear();
  }

  std::unique_ptr<MediaPipeline> pipeline;
  std::uint64_t now = 1'000 * kMs;
  ReceiveResult last = ReceiveResult::Dropped;

 private:
  alignas(16) std::array<std::uint8_t, 4096 + 64> buffer_{};
  PacketSink sink_;
};

inline std::uint64_t load(const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); }

}  // namespace medius::media::test
