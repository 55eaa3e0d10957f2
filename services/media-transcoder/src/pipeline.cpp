#include "medius/media/pipeline.hpp"

#include <time.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "medius/media/codec/comfort_noise.hpp"
#include "medius/media/codec/dtmf_detector.hpp"
#include "medius/media/codec/dtmf_tones.hpp"
#include "medius/media/codec/transcoder.hpp"
#include "medius/media/rtp/dtmf.hpp"
#include "medius/media/rtp/jitter_buffer.hpp"
#include "medius/media/rtp/packet.hpp"
#include "medius/media/rtp/rtcp.hpp"
#include "medius/media/rtp/stats.hpp"
#include "medius/media/srtp/session.hpp"

namespace medius::media {

namespace {

constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;
// Playout frames one tick may catch up on before the clock is re-synchronised (a worker
// stalled for longer loses that audio rather than bursting it).
constexpr int kMaxCatchUpFrames = 4;
// Jitter buffer entries skipped in one playout step (CN and telephone-event placeholders).
constexpr int kMaxSkippedEntries = 8;
// CN toward a CN target for a source that sends nothing (Opus DTX sends every 400 ms): past
// this it is on hold (a=inactive: no RTP to its peer) or gone; the peer keeps the last level.
constexpr std::uint32_t kMaxCnWithoutSourceMs = 2000;

void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) {
  // Single writer (the worker): a load and a store, no locked read-modify-write.
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

void set(std::atomic<std::uint64_t>& counter, std::uint64_t value) {
  counter.store(value, std::memory_order_relaxed);
}

std::uint64_t clockNanos(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * kNanosPerSecond + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint32_t scaleTs(std::uint32_t units, std::uint32_t fromClock, std::uint32_t toClock) {
  return static_cast<std::uint32_t>(std::uint64_t{units} * toClock / fromClock);
}

// The transcoder of a flow: with in-band DTMF detection when the source sends digits as
// tones only and the target takes telephone-events (RFC 4733 3.1: we send the events and
// take the tones out of the audio).
codec::TranscoderConfig transcoderConfig(const FlowPlan& plan) {
  codec::TranscoderConfig config = plan.transcoder;
  config.detectDtmf = !plan.sourceEventPt && plan.targetEventPt.has_value();
  config.sendComfortNoise = plan.targetCnPt.has_value();
  return config;
}

std::unique_ptr<srtp::SrtpSession> makeSrtp(const std::optional<SrtpParams>& params,
                                            srtp::Direction direction) {
  if (!params) return nullptr;
  if (params->mki) {
    std::vector<srtp::MasterKey> keys{srtp::MasterKey{params->key, params->mki}};
    keys.insert(keys.end(), params->moreKeys.begin(), params->moreKeys.end());
    return std::make_unique<srtp::SrtpSession>(params->suite, std::span<const srtp::MasterKey>(keys), direction);
  }
  return std::make_unique<srtp::SrtpSession>(params->suite, params->key, direction);
}

}  // namespace

// ---- state ---------------------------------------------------------------------------

struct MediaPipeline::Leg {
  explicit Leg(const LegPlan& plan) : stats(plan.codecClock == 0 ? 8000 : plan.codecClock) {}
  std::unique_ptr<srtp::SrtpSession> inbound;
  std::unique_ptr<srtp::SrtpSession> outbound;
  rtp::ReceiveStats stats;  // RTP from this leg's peer
  rtp::RttEstimator rtt;
  bool haveSource = false;
  std::uint32_t sourceSsrc = 0;
  std::uint32_t rtcpSsrc = 0;         // ours, in RRs toward this leg when we send it no stream
  bool muxLearned = false;            // the peer sent RTCP on the RTP port
  std::uint64_t nextReportNanos = 0;  // 0 = not scheduled yet
  // Relayed RTCP: the last SRs this leg's peer sent (LSR key, our arrival time), so that the
  // other leg's report blocks about them give the round trip between us and that leg.
  struct RelayedSr {
    std::uint32_t lsr = 0;
    std::uint64_t arrivalNanos = 0;
  };
  std::array<RelayedSr, 4> relayedSrs{};
  std::size_t nextRelayedSr = 0;
  double relayRttMicros = 0;  // smoothed (1/8), 0 = none yet
};

struct MediaPipeline::Flow {
  Flow(const FlowPlan& plan, const PipelineOptions& options)
      : transcoder(transcoderConfig(plan)),
        jitter([&] {
          rtp::JitterBufferConfig c;
          c.clockRate = plan.sourceClock;
          c.frameMs = plan.sourcePtimeMs;
          c.depthMs = options.jitterInitialMs;
          c.minDepthMs = options.jitterMinMs;
          c.maxDepthMs = options.jitterMaxMs;
          c.capacity = 64;
          c.maxPayload = codec::kMaxPayloadBytes;
          return c;
        }()),
        out(transcoder.outputCapacity()),
        frameTs(scaleTs(plan.sourcePtimeMs, 1000, plan.sourceClock)) {
    eventClock.inRate = plan.sourceEventClock;
    eventClock.outRate = plan.targetEventClock;
    if (plan.sourceEventPt && !plan.targetEventPt) {
      // The target cannot receive RFC 4733 events: render them as in-band Q.23 tones, from
      // an encoder of the target's codec and ptime of our own (see emitTranscoded).
      toneEncoder = codec::makeEncoder(plan.transcoder.to, plan.transcoder.toParams);
      const std::uint32_t rate = toneEncoder->sampleRate();
      if (rate == 8000 || rate == 16000 || rate == 24000 || rate == 48000) {
        tones = std::make_unique<codec::DtmfGenerator>(rate);
        tonePcm.resize(toneEncoder->samplesPerPacket());
        tonePayload.resize(codec::kMaxPayloadBytes);
      } else {
        toneEncoder.reset();
      }
    }
    detector = transcoder.dtmfDetector();
    if (detector) lookaheadTs = scaleTs(detector->lookaheadMs(), 1000, plan.sourceClock);
  }
  codec::Transcoder transcoder;
  rtp::JitterBuffer jitter;
  std::uint64_t jitterDroppedSeen = 0;  // jitter.counters().dropped already in jitterFramesShed
  rtp::TelephoneEventMapper events;
  rtp::RtpClockMap eventClock;
  bool anchored = false;
  bool haveSsrc = false;  // the source stream decoded (a new SSRC resets the decoding state)
  std::uint32_t ssrc = 0;
  // In-band DTMF detected in the source, sent as events (null without detection).
  codec::InbandDtmfDetector* detector = nullptr;
  rtp::TelephoneEventSender detected;
  std::uint64_t detectedStart = 0;  // the digit's start, in the detector's sample positions
  std::uint32_t lookaheadTs = 0;    // the detector's delay, in source clock units
  std::uint32_t drainTs = 0;        // of which still owed since the last decoded frame
  std::vector<std::uint8_t> out;
  std::array<codec::TranscodedPacket, codec::Transcoder::kMaxPacketsPerCall> packets{};
  bool started = false;  // an audio packet was queued: the playout clock runs
  std::uint64_t nextPlayNanos = 0;
  std::uint32_t frameTs;  // source clock units per frame (learned from played frames)
  bool haveLast = false;  // last played audio frame, to learn frameTs
  std::uint16_t lastSeq = 0;
  std::uint32_t lastTs = 0;
  bool haveAudio = false;  // last audio received, to time the placeholders of other PTs
  std::uint16_t audioSeq = 0;
  std::uint32_t audioTs = 0;
  bool cnActive = false;  // the source is silent under CN (played in sequence order)
  std::uint32_t unheardTs = 0;  // since the last audio frame, CN sent for nothing received
  std::uint8_t cnLevel = codec::kComfortNoiseMinLevel;
  // In-band DTMF for a target without telephone-event (null otherwise).
  std::unique_ptr<codec::Encoder> toneEncoder;
  std::unique_ptr<codec::DtmfGenerator> tones;
  std::vector<std::int16_t> tonePcm;
  std::vector<std::uint8_t> tonePayload;
  bool haveToneEvent = false;  // the event being rendered (by its RTP timestamp)
  std::uint32_t toneEventTs = 0;
  bool toneEnded = false;
  std::int64_t tonePlayed = 0;     // samples of tone sent for it (toneEncoder's rate)
  std::int64_t toneRemaining = 0;  // samples still to send
};

struct MediaPipeline::OutStream {
  explicit OutStream(std::uint32_t rtpClock) : clock(rtpClock), sender(rtpClock) {}
  std::uint32_t clock;
  std::uint32_t ssrc = 0;
  std::uint16_t seq = 0;
  std::uint32_t ts = 0;
  bool marker = true;
  rtp::SenderStats sender;
};

// ---- construction --------------------------------------------------------------------

MediaPipeline::MediaPipeline(const MediaPlan& plan, const PipelineOptions& options)
    : plan_(plan),
      options_(options),
      relayRtcp_(!plan.transcoding()),
      counters_{&ownCounters_[0], &ownCounters_[1]},
      unixOffsetNanos_(clockNanos(CLOCK_REALTIME) - clockNanos(CLOCK_MONOTONIC)) {
  std::random_device device;
  auto random32 = [&device] { return static_cast<std::uint32_t>(device()); };
  random_ = (std::uint64_t{random32()} << 32) | random32() | 1;
  if (options_.cname.empty()) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string cname = "medius-";
    for (int i = 0; i < 16; ++i) cname += kHex[(random_ >> (4 * i)) & 0xf];
    options_.cname = cname;
  }
  if (options_.rtcpIntervalMs == 0) throw std::invalid_argument("rtcpIntervalMs must be > 0");
  for (std::size_t i = 0; i < 2; ++i) {
    const LegPlan& legPlan = plan.legs[i];
    legs_[i] = std::make_unique<Leg>(legPlan);
    legs_[i]->inbound = makeSrtp(legPlan.inbound, srtp::Direction::Inbound);
    legs_[i]->outbound = makeSrtp(legPlan.outbound, srtp::Direction::Outbound);
    legs_[i]->rtcpSsrc = random32();
  }
  for (std::size_t i = 0; i < 2; ++i) {
    const FlowPlan& flow = plan.flows[i];
    if (flow.mode != FlowPlan::Mode::Transcode) {
      for (std::int16_t pt : flow.payloadMap) {
        if (pt < -1 || pt > 127) throw std::invalid_argument("payloadMap entry out of range");
      }
      continue;
    }
    if (flow.sourcePt > 127 || flow.targetPt > 127) throw std::invalid_argument("payload type > 127");
    if (flow.sourceClock == 0 || flow.targetClock == 0 || flow.sourceEventClock == 0 ||
        flow.targetEventClock == 0) {
      throw std::invalid_argument("zero RTP clock rate");
    }
    if (flow.sourcePtimeMs == 0 || flow.sourcePtimeMs > codec::Transcoder::kMaxInputMs) {
      throw std::invalid_argument("source ptime out of range");
    }
    if ((flow.sourceEventPt && *flow.sourceEventPt > 127) ||
        (flow.targetEventPt && *flow.targetEventPt > 127) || (flow.sourceCnPt && *flow.sourceCnPt > 127) ||
        (flow.targetCnPt && *flow.targetCnPt > 127)) {
      throw std::invalid_argument("payload type > 127");
    }
    flows_[i] = std::make_unique<Flow>(flow, options_);
    auto out = std::make_unique<OutStream>(flow.targetClock);
    out->ssrc = random32();
    out->seq = static_cast<std::uint16_t>(random32());  // RFC 3550 5.1: random initial values
    out->ts = random32();
    out_[1 - i] = std::move(out);
  }
}

MediaPipeline::~MediaPipeline() = default;

void MediaPipeline::bindCounters(LegCounters& legA, LegCounters& legB) noexcept {
  counters_ = {&legA, &legB};
}

void MediaPipeline::adopt(MediaPipeline& previous) noexcept {
  for (std::size_t i = 0; i < 2; ++i) {
    Leg& leg = *legs_[i];
    Leg& old = *previous.legs_[i];
    if (plan_.legs[i].inbound && plan_.legs[i].inbound == previous.plan_.legs[i].inbound && old.inbound) {
      leg.inbound = std::move(old.inbound);
    }
    if (plan_.legs[i].outbound && plan_.legs[i].outbound == previous.plan_.legs[i].outbound && old.outbound) {
      leg.outbound = std::move(old.outbound);
    }
    if (leg.stats.clockRate() == old.stats.clockRate()) {
      leg.stats = old.stats;
      leg.haveSource = old.haveSource;
      leg.sourceSsrc = old.sourceSsrc;
    }
    leg.rtt = old.rtt;
    leg.relayedSrs = old.relayedSrs;
    leg.nextRelayedSr = old.nextRelayedSr;
    leg.relayRttMicros = old.relayRttMicros;
    leg.rtcpSsrc = old.rtcpSsrc;
    leg.muxLearned = old.muxLearned;
    leg.nextReportNanos = old.nextReportNanos;
    if (out_[i] && previous.out_[i]) {
      OutStream& now = *out_[i];
      const OutStream& before = *previous.out_[i];
      now.ssrc = before.ssrc;
      now.seq = before.seq;
      now.ts = before.ts;
      now.marker = true;
      if (now.clock == before.clock) now.sender = before.sender;
    }
  }
  // Counters bound to the session carry over; the previous pipeline's own die with it.
  for (std::size_t i = 0; i < 2; ++i) {
    if (previous.counters_[i] != &previous.ownCounters_[i]) counters_[i] = previous.counters_[i];
  }
}

std::optional<std::uint32_t> MediaPipeline::generatedSsrc(int leg) const noexcept {
  const auto& out = out_[static_cast<std::size_t>(leg)];
  if (!out) return std::nullopt;
  return out->ssrc;
}

// ---- receive -------------------------------------------------------------------------

void MediaPipeline::countSrtp(int leg, int status) noexcept {
  LegCounters& c = counters(leg);
  switch (static_cast<srtp::Status>(status)) {
    case srtp::Status::Ok:
      return;
    case srtp::Status::AuthFailed:
      bump(c.srtpAuthFailures);
      return;
    case srtp::Status::Replayed:
      bump(c.srtpReplays);
      return;
    case srtp::Status::BadPacket:
      bump(c.badPackets);
      return;
    case srtp::Status::Error:
      bump(c.srtpErrors);
      return;
  }
}

ReceiveResult MediaPipeline::receive(int leg, bool rtcpSocket, std::span<std::uint8_t> buffer,
                                     std::size_t length, std::uint64_t nowNanos, PacketSink& sink) noexcept {
  if (leg < 0 || leg > 1 || length > buffer.size()) return ReceiveResult::Dropped;
  Leg& in = *legs_[static_cast<std::size_t>(leg)];
  LegCounters& c = counters(leg);
  // RFC 5761 section 4: RTCP packet types 192-223 in the second octet on a muxed port.
  if (rtcpSocket || rtp::isRtcp(buffer.first(length))) {
    return receiveRtcp(leg, buffer, length, rtcpSocket, nowNanos, sink);
  }
  if (in.inbound) {
    srtp::Status status = in.inbound->unprotectRtp(buffer, length);
    if (status != srtp::Status::Ok) {
      countSrtp(leg, static_cast<int>(status));
      return ReceiveResult::Dropped;
    }
  }
  rtp::RtpView view;
  if (rtp::parseRtp(buffer.first(length), view) != rtp::RtpStatus::Ok) {
    bump(c.badPackets);
    return ReceiveResult::Dropped;
  }
  in.stats.receive(view.sequence, view.timestamp, nowNanos);
  if (!in.haveSource || in.sourceSsrc != view.ssrc) {
    in.haveSource = true;
    in.sourceSsrc = view.ssrc;
  }
  set(c.lost, static_cast<std::uint64_t>(std::max<std::int64_t>(in.stats.cumulativeLost(), 0)));
  set(c.expected, static_cast<std::uint64_t>(std::max<std::int64_t>(in.stats.expected(), 0)));
  set(c.outOfOrder, in.stats.reordered());
  set(c.jitterMicros, std::uint64_t{in.stats.jitter()} * 1'000'000 / in.stats.clockRate());

  if (!flows_[static_cast<std::size_t>(leg)]) return relayRtp(leg, buffer, length, view.payloadType, sink);
  transcodeRtp(leg, view, nowNanos, sink);
  return ReceiveResult::Rtp;
}

ReceiveResult MediaPipeline::relayRtp(int leg, std::span<std::uint8_t> buffer, std::size_t length,
                                      std::uint8_t payloadType, PacketSink& sink) noexcept {
  const int to = 1 - leg;
  std::int16_t mapped = plan_.flows[static_cast<std::size_t>(leg)].payloadMap[payloadType];
  if (mapped < 0) {
    bump(counters(leg).payloadDrops);
    return ReceiveResult::Rtp;
  }
  if (mapped != payloadType) rtp::setPayloadType(buffer.first(length), static_cast<std::uint8_t>(mapped));
  if (auto& outbound = legs_[static_cast<std::size_t>(to)]->outbound) {
    srtp::Status status = outbound->protectRtp(buffer, length);
    if (status != srtp::Status::Ok) {
      countSrtp(to, static_cast<int>(status));
      return ReceiveResult::Rtp;
    }
  }
  sink.emit(buffer.data(), length, to, false);
  return ReceiveResult::Rtp;
}

ReceiveResult MediaPipeline::receiveRtcp(int leg, std::span<std::uint8_t> buffer, std::size_t length,
                                         bool rtcpSocket, std::uint64_t nowNanos, PacketSink& sink) noexcept {
  Leg& in = *legs_[static_cast<std::size_t>(leg)];
  LegCounters& c = counters(leg);
  if (in.inbound) {
    srtp::Status status = in.inbound->unprotectRtcp(buffer, length);
    if (status != srtp::Status::Ok) {
      countSrtp(leg, static_cast<int>(status));
      return ReceiveResult::Dropped;
    }
  }
  rtp::RtcpInfo info;
  if (rtp::parseRtcp(buffer.first(length), info) != rtp::RtcpStatus::Ok) {
    bump(c.badPackets);  // lying lengths, bad version, not starting with SR/RR
    return ReceiveResult::Dropped;
  }
  bump(c.rtcpIn);
  if (!rtcpSocket) in.muxLearned = true;  // authentic RTCP on the RTP port: the peer muxes
  if (info.hasSenderReport) in.stats.onSenderReport(info.sender.ntpTimestamp, nowNanos);
  const OutStream* ours = out_[static_cast<std::size_t>(leg)].get();
  const std::uint32_t ourSsrc = ours ? ours->ssrc : in.rtcpSsrc;
  // The clock of what this leg's peer receives from us (its jitter is in those units).
  const std::uint32_t peerClock =
      ours ? ours->clock : std::max<std::uint32_t>(plan_.legs[static_cast<std::size_t>(leg)].codecClock, 1);
  for (const rtp::ReportBlock& block : info.reportBlocks()) {
    if (!relayRtcp_ && block.ssrc != ourSsrc) continue;
    set(c.peerFractionLost, block.fractionLost);
    set(c.peerJitterMicros, std::uint64_t{block.jitter} * 1'000'000 / peerClock);
    if (!relayRtcp_ && in.rtt.onReportBlock(block, rtp::ntpMiddle32(ntpNow(nowNanos)))) {
      set(c.rttMicros, static_cast<std::uint64_t>(in.rtt.smoothedMs() * 1000.0));
    }
  }
  if (!relayRtcp_) return ReceiveResult::Rtcp;  // consumed: we report to each leg ourselves
  const int to = 1 - leg;
  noteRelayedRtcp(leg, info, nowNanos);
  if (auto& outbound = legs_[static_cast<std::size_t>(to)]->outbound) {
    srtp::Status status = outbound->protectRtcp(buffer, length);
    if (status != srtp::Status::Ok) {
      countSrtp(to, static_cast<int>(status));
      return ReceiveResult::Rtcp;
    }
  }
  sink.emit(buffer.data(), length, to, rtcpSocket);
  return ReceiveResult::Rtcp;
}

void MediaPipeline::noteRelayedRtcp(int leg, const rtp::RtcpInfo& info, std::uint64_t nowNanos) noexcept {
  // RFC 3550 6.4.1 measured on our clock only: an SR from the other leg's peer crossed us at
  // t1 toward this leg; this leg's peer reports LSR = that SR and DLSR; it reached us at t2:
  // the round trip between us and this leg's peer is t2 - t1 - DLSR (no clock sync needed).
  Leg& in = *legs_[static_cast<std::size_t>(leg)];
  if (info.hasSenderReport) {
    in.relayedSrs[in.nextRelayedSr] = {rtp::ntpMiddle32(info.sender.ntpTimestamp), nowNanos};
    in.nextRelayedSr = (in.nextRelayedSr + 1) % in.relayedSrs.size();
  }
  const Leg& other = *legs_[static_cast<std::size_t>(1 - leg)];
  for (const rtp::ReportBlock& block : info.reportBlocks()) {
    if (block.lastSr == 0) continue;
    for (const Leg::RelayedSr& sr : other.relayedSrs) {
      if (sr.lsr != block.lastSr || sr.arrivalNanos == 0) continue;
      const std::uint64_t dlsr = std::uint64_t{block.delaySinceLastSr} * kNanosPerSecond / 65536;
      const std::uint64_t elapsed = nowNanos - sr.arrivalNanos;
      if (nowNanos < sr.arrivalNanos || elapsed < dlsr || elapsed - dlsr > 10 * kNanosPerSecond) break;
      const double sample = static_cast<double>(elapsed - dlsr) / 1000.0;
      in.relayRttMicros =
          in.relayRttMicros == 0 ? sample : in.relayRttMicros + (sample - in.relayRttMicros) / 8;
      set(counters(leg).rttMicros, static_cast<std::uint64_t>(in.relayRttMicros));
      return;
    }
  }
}

void MediaPipeline::transcodeRtp(int leg, const rtp::RtpView& view, std::uint64_t nowNanos,
                                 PacketSink& sink) noexcept {
  const FlowPlan& plan = plan_.flows[static_cast<std::size_t>(leg)];
  Flow& flow = *flows_[static_cast<std::size_t>(leg)];
  LegCounters& c = counters(leg);
  const bool audio = view.payloadType == plan.sourcePt;
  const bool event = plan.sourceEventPt && view.payloadType == *plan.sourceEventPt;
  const bool cn = plan.sourceCnPt && view.payloadType == *plan.sourceCnPt;
  if (!audio && !event && !cn) {
    bump(c.payloadDrops);
    return;
  }
  if (!flow.haveSsrc || flow.ssrc != view.ssrc) {
    if (flow.haveSsrc) newSource(leg, sink);
    flow.haveSsrc = true;
    flow.ssrc = view.ssrc;
  }
  if (event) mapEvent(leg, view, sink);
  // Every packet of the source's sequence space goes through the jitter buffer, so that a
  // telephone-event or CN packet is not mistaken for a lost audio frame: audio with its
  // payload, CN with its level (acted on in sequence order), events as empty placeholders
  // (they were sent above). Non-audio packets get the timestamp the audio would have had
  // (an event's timestamp is its start, which would look like arrival jitter).
  std::uint32_t timestamp = view.timestamp;
  if (audio) {
    flow.haveAudio = true;
    flow.audioSeq = view.sequence;
    flow.audioTs = view.timestamp;
  } else if (flow.haveAudio) {
    auto frames = static_cast<std::int16_t>(static_cast<std::uint16_t>(view.sequence - flow.audioSeq));
    timestamp = flow.audioTs + static_cast<std::uint32_t>(frames * static_cast<std::int64_t>(flow.frameTs));
  }
  std::span<const std::uint8_t> payload = event ? std::span<const std::uint8_t>() : view.payload;
  rtp::PutResult put =
      flow.jitter.put(view.ssrc, view.sequence, timestamp, view.payloadType, view.marker, payload, nowNanos);
  switch (put) {
    case rtp::PutResult::Queued:
      break;
    case rtp::PutResult::Reset:
      if (auto& out = out_[static_cast<std::size_t>(1 - leg)]) out->marker = true;
      flow.haveLast = false;
      break;
    case rtp::PutResult::Duplicate:
    case rtp::PutResult::Late:
    case rtp::PutResult::TooLarge:
      if (audio) bump(c.jitterBufferDrops);
      break;
  }
  if (audio && !flow.started) {
    flow.started = true;
    flow.nextPlayNanos = nowNanos;
  }
}

void MediaPipeline::newSource(int leg, PacketSink& sink) noexcept {
  // Another stream (re-INVITE, a fork that won, a restarted phone): nothing of the old one's
  // decoding may shape the new one's audio. The jitter buffer resets itself on the new SSRC
  // (put() returns Reset); the decoder (predictor, PLC history, Opus state), the resampler,
  // the audio waiting for a target packet, the event mapping anchored on the old stream's
  // timestamps and a tone or digit in progress go now. Our own stream toward the target goes
  // on (same SSRC and sequence numbers, marker on its next packet).
  Flow& flow = *flows_[static_cast<std::size_t>(leg)];
  if (flow.detected.active()) {
    // The old stream's digit ends where it was last reported.
    std::array<rtp::MappedEvent, rtp::TelephoneEventSender::kMaxOutput> packets{};
    sendEvents(1 - leg, packets, flow.detected.end(0, packets), sink);
  }
  flow.transcoder.reset();
  flow.events.reset();
  flow.anchored = false;
  flow.haveAudio = false;
  flow.haveLast = false;
  flow.cnActive = false;
  flow.haveToneEvent = false;
  flow.toneRemaining = 0;
  flow.drainTs = 0;  // the detector's delay line was emptied
  if (auto& out = out_[static_cast<std::size_t>(1 - leg)]) out->marker = true;
}

void MediaPipeline::sendEvents(int toLeg, std::span<const rtp::MappedEvent> events, std::size_t count,
                               PacketSink& sink) noexcept {
  const FlowPlan& plan = plan_.flows[static_cast<std::size_t>(1 - toLeg)];
  OutStream& out = *out_[static_cast<std::size_t>(toLeg)];
  for (std::size_t i = 0; i < count && i < events.size(); ++i) {
    std::span<std::uint8_t> slot = sink.slot();
    if (slot.empty()) return;
    rtp::RtpHeader header{*plan.targetEventPt, events[i].marker, out.seq, events[i].timestamp, out.ssrc};
    rtp::writeRtpHeader(slot, header);
    std::memcpy(slot.data() + rtp::kRtpHeaderSize, events[i].payload.data(), events[i].payload.size());
    ++out.seq;
    sendGenerated(toLeg, slot, rtp::kRtpHeaderSize + events[i].payload.size(), false, sink);
  }
}

void MediaPipeline::sendDetectedEvents(int leg, PacketSink& sink) noexcept {
  const FlowPlan& plan = plan_.flows[static_cast<std::size_t>(leg)];
  Flow& flow = *flows_[static_cast<std::size_t>(leg)];
  codec::InbandDtmfDetector& detector = *flow.detector;
  const OutStream& out = *out_[static_cast<std::size_t>(1 - leg)];
  // Where the detector's output stands on our clock: out.ts is the timestamp of the next
  // sample we encode, the samples still waiting in the transcoder for a full target packet
  // come before it. Positions are in detector samples, timestamps in the event clock.
  const std::uint64_t rate = detector.sampleRate();
  const std::uint64_t clock = plan.targetEventClock;
  const std::uint64_t queued = flow.transcoder.queuedSamples() * rate / flow.transcoder.encoder().sampleRate();
  const std::uint64_t here = detector.outputPosition() - std::min(queued, detector.outputPosition());
  const std::uint32_t hereTs = scaleTs(out.ts, out.clock, plan.targetEventClock);
  auto units = [&](std::uint64_t from, std::uint64_t to) { return to > from ? (to - from) * clock / rate : 0; };
  auto tsAt = [&](std::uint64_t position) {
    return position >= here ? hereTs + static_cast<std::uint32_t>(units(here, position))
                            : hereTs - static_cast<std::uint32_t>(units(position, here));
  };
  std::array<codec::DtmfEvent, codec::InbandDtmfDetector::kMaxPendingEdges> edges{};
  std::array<rtp::MappedEvent, rtp::TelephoneEventSender::kMaxOutput> packets{};
  const std::size_t count = detector.take(edges);
  for (std::size_t i = 0; i < count; ++i) {
    if (edges[i].edge == codec::DtmfEdge::End) {
      sendEvents(1 - leg, packets, flow.detected.end(units(flow.detectedStart, edges[i].sample), packets), sink);
      continue;
    }
    const int code = rtp::dtmfEventCode(edges[i].digit);
    if (code < 0) continue;
    if (flow.detected.active()) sendEvents(1 - leg, packets, flow.detected.end(0, packets), sink);
    flow.detectedStart = edges[i].sample;
    const std::size_t n = flow.detected.start(static_cast<std::uint8_t>(code), tsAt(edges[i].sample),
                                              units(edges[i].sample, here), packets);
    sendEvents(1 - leg, packets, n, sink);
    bump(counters(leg).eventsMapped);
  }
  if (count > 0) return;
  // RFC 4733 2.5.1.2: an update every packet interval while the digit lasts; after its end
  // the end packet twice more (2.5.1.4), one per interval.
  const std::size_t n = flow.detected.active() ? flow.detected.update(units(flow.detectedStart, here), packets)
                                               : flow.detected.repeatEnd(packets);
  sendEvents(1 - leg, packets, n, sink);
}

void MediaPipeline::mapEvent(int leg, const rtp::RtpView& view, PacketSink& sink) noexcept {
  const FlowPlan& plan = plan_.flows[static_cast<std::size_t>(leg)];
  Flow& flow = *flows_[static_cast<std::size_t>(leg)];
  LegCounters& c = counters(leg);
  const int to = 1 - leg;
  OutStream& out = *out_[static_cast<std::size_t>(to)];
  if (!plan.targetEventPt) {
    if (!flow.tones) {
      bump(c.payloadDrops);
      return;
    }
    // The tone starts with the event's first packet and lasts as long as the updates say
    // (RFC 4733 2.5.1.3: each carries the duration so far): until the end packet's
    // duration, or 100 ms past the last update if every end packet is lost. The redundant
    // end packets change nothing.
    rtp::TelephoneEvent event;
    if (rtp::parseTelephoneEvent(view.payload, event) != rtp::DtmfStatus::Ok) {
      bump(c.badPackets);
      return;
    }
    static constexpr char kDigits[] = "0123456789*#ABCD";
    if (event.event >= 16) return;  // flash and the rest have no tone here
    if (!flow.haveToneEvent || flow.toneEventTs != view.timestamp) {
      flow.haveToneEvent = true;
      flow.toneEventTs = view.timestamp;
      flow.toneEnded = false;
      flow.tonePlayed = 0;
      flow.tones->start(kDigits[event.event], 10000);  // our countdown below stops it
      bump(c.eventsMapped);
    }
    if (flow.toneEnded) return;
    const std::int64_t rate = flow.toneEncoder->sampleRate();
    std::int64_t total = std::int64_t{event.duration} * rate / plan.sourceEventClock;
    if (event.end) {
      flow.toneEnded = true;
      total = std::max(total, rate * 40 / 1000);  // Q.24: a digit shorter than 40 ms may be missed
    } else {
      total += rate / 10;
    }
    flow.toneRemaining = std::max<std::int64_t>(total - flow.tonePlayed, 0);
    return;
  }
  if (!flow.anchored) {
    // No audio played yet: the event starts now on our output clock.
    flow.eventClock.inAnchor = view.timestamp;
    flow.eventClock.outAnchor = scaleTs(out.ts, out.clock, plan.targetEventClock);
    flow.anchored = true;
  }
  std::array<rtp::MappedEvent, rtp::TelephoneEventMapper::kMaxOutput> mapped{};
  rtp::MapResult result = flow.events.map(view.timestamp, view.marker, view.payload, flow.eventClock, mapped);
  if (result.status != rtp::DtmfStatus::Ok) {
    bump(c.badPackets);
    return;
  }
  bump(c.eventsMapped);
  sendEvents(to, mapped, result.count, sink);
}

bool MediaPipeline::sendGenerated(int toLeg, std::span<std::uint8_t> slot, std::size_t length, bool rtcp,
                                  PacketSink& sink) noexcept {
  Leg& leg = *legs_[static_cast<std::size_t>(toLeg)];
  if (leg.outbound) {
    srtp::Status status =
        rtcp ? leg.outbound->protectRtcp(slot, length) : leg.outbound->protectRtp(slot, length);
    if (status != srtp::Status::Ok) {
      countSrtp(toLeg, static_cast<int>(status));
      return false;
    }
  }
  const bool rtcpSocket = rtcp && !(plan_.legs[static_cast<std::size_t>(toLeg)].rtcpMux || leg.muxLearned);
  sink.commitSlot(length, toLeg, rtcpSocket);
  return true;
}

// ---- playout -------------------------------------------------------------------------

void MediaPipeline::tick(std::uint64_t nowNanos, PacketSink& sink) noexcept {
  for (int leg = 0; leg < 2; ++leg) {
    if (flows_[static_cast<std::size_t>(leg)]) playout(leg, nowNanos, sink);
  }
  for (int leg = 0; leg < 2; ++leg) {
    Leg& l = *legs_[static_cast<std::size_t>(leg)];
    if (l.nextReportNanos == 0) {
      // RFC 3550 6.2: the first report after half the minimum interval.
      l.nextReportNanos = nowNanos + nextReportDelay() / 2;
      continue;
    }
    if (nowNanos < l.nextReportNanos) continue;
    l.nextReportNanos = nowNanos + nextReportDelay();
    if (!relayRtcp_) {
      sendReport(leg, nowNanos, sink);
    } else if (l.haveSource) {
      // Relayed RTCP is the peers' business; the interval still gives our fraction lost.
      set(counters(leg).fractionLost, l.stats.makeReportBlock(l.sourceSsrc, nowNanos).fractionLost);
    }
  }
}

std::uint64_t MediaPipeline::nextReportDelay() noexcept {
  // xorshift64: RFC 3550 6.3.1 randomizes each interval to 0.5..1.5 times the average.
  random_ ^= random_ << 13;
  random_ ^= random_ >> 7;
  random_ ^= random_ << 17;
  const std::uint64_t interval = std::uint64_t{options_.rtcpIntervalMs} * 1'000'000;
  return interval / 2 + random_ % (interval + 1);
}

std::uint64_t MediaPipeline::ntpNow(std::uint64_t nowNanos) const noexcept {
  return rtp::ntpFromUnixNanos(nowNanos + unixOffsetNanos_);
}

void MediaPipeline::playout(int leg, std::uint64_t nowNanos, PacketSink& sink) noexcept {
  Flow& flow = *flows_[static_cast<std::size_t>(leg)];
  if (!flow.started) return;
  const FlowPlan& plan = plan_.flows[static_cast<std::size_t>(leg)];
  for (int i = 0; i < kMaxCatchUpFrames && nowNanos >= flow.nextPlayNanos; ++i) {
    playFrame(leg, nowNanos, sink);
    flow.nextPlayNanos += std::uint64_t{flow.frameTs} * kNanosPerSecond / plan.sourceClock;
    // The jitter buffer found every packet waiting more than it needs: play sooner by a
    // fraction of a frame (the peer sees one packet that much early).
    flow.nextPlayNanos -= flow.jitter.takePlayoutAdvance();
  }
  if (nowNanos >= flow.nextPlayNanos) flow.nextPlayNanos = nowNanos;  // stalled: resynchronise
}

void MediaPipeline::playFrame(int leg, std::uint64_t nowNanos, PacketSink& sink) noexcept {
  const FlowPlan& plan = plan_.flows[static_cast<std::size_t>(leg)];
  Flow& flow = *flows_[static_cast<std::size_t>(leg)];
  OutStream& out = *out_[static_cast<std::size_t>(1 - leg)];
  LegCounters& c = counters(leg);
  auto next = [&] {
    rtp::JitterFrame frame = flow.jitter.get(nowNanos, flow.nextPlayNanos);
    for (int i = 0; i < kMaxSkippedEntries && frame.status == rtp::FrameStatus::Frame &&
                    frame.payloadType != plan.sourcePt;
         ++i) {
      if (plan.sourceCnPt && frame.payloadType == *plan.sourceCnPt) {
        codec::CnPayload cn = codec::parseComfortNoise(frame.payload);
        if (cn.status != codec::CnStatus::Empty) {
          flow.cnLevel = cn.levelDbov;
          flow.cnActive = true;
        }
      }
      frame = flow.jitter.get(nowNanos, flow.nextPlayNanos);  // a CN or event entry takes no playout time
    }
    if (frame.status == rtp::FrameStatus::Frame && frame.payloadType != plan.sourcePt)
      return rtp::JitterFrame{};
    return frame;
  };
  auto playAudio = [&](const rtp::JitterFrame& frame) {
    if (flow.haveLast && static_cast<std::uint16_t>(frame.sequence - flow.lastSeq) == 1) {
      const std::uint32_t span = frame.timestamp - flow.lastTs;
      if (span > 0 && span <= scaleTs(codec::Transcoder::kMaxInputMs, 1000, plan.sourceClock))
        flow.frameTs = span;
    }
    flow.haveLast = true;
    flow.lastSeq = frame.sequence;
    flow.lastTs = frame.timestamp;
    flow.cnActive = false;
    flow.unheardTs = 0;
    // Events received from now on line up with this frame's place on our clock.
    flow.eventClock.inAnchor = frame.timestamp;
    flow.eventClock.outAnchor = scaleTs(out.ts, out.clock, plan.targetEventClock);
    flow.anchored = true;
    flow.drainTs = flow.lookaheadTs;
    codec::TranscodeResult r = flow.transcoder.push(frame.payload, flow.out, flow.packets);
    if (r.status == codec::CodecStatus::BadPayload) {
      bump(c.decodeErrors);
      r = flow.transcoder.pushLost(flow.frameTs, {}, flow.out, flow.packets);  // its time still passes
    }
    emitTranscoded(leg, r.packets, nowNanos, sink);
  };
  auto conceal = [&](std::span<const std::uint8_t> nextPayload) {
    bump(c.concealedFrames);
    flow.drainTs = flow.lookaheadTs;
    codec::TranscodeResult r = flow.transcoder.pushLost(flow.frameTs, nextPayload, flow.out, flow.packets);
    emitTranscoded(leg, r.packets, nowNanos, sink);
  };

  rtp::JitterFrame frame = next();
  if (const std::uint64_t dropped = flow.jitter.counters().dropped; dropped != flow.jitterDroppedSeen) {
    bump(c.jitterFramesShed, dropped - flow.jitterDroppedSeen);
    flow.jitterDroppedSeen = dropped;
  }
  switch (frame.status) {
    case rtp::FrameStatus::Frame:
      playAudio(frame);
      return;
    case rtp::FrameStatus::Missing: {
      if (!flow.transcoder.decoder().hasFec()) {
        conceal({});
        return;
      }
      // Opus (RFC 7587 4.2): the next packet may carry the lost one in its in-band FEC.
      // Take it now (the next frame period is used up here: the two frames go out together).
      rtp::JitterFrame following = next();
      if (following.status == rtp::FrameStatus::Empty) {
        conceal({});
        return;
      }
      flow.nextPlayNanos += std::uint64_t{flow.frameTs} * kNanosPerSecond / plan.sourceClock;
      if (following.status == rtp::FrameStatus::Frame) {
        conceal(following.payload);
        playAudio(following);
      } else {
        conceal({});
        conceal({});
      }
      return;
    }
    case rtp::FrameStatus::Empty:
      if (flow.cnActive) {
        bump(c.comfortNoiseFrames);
        flow.drainTs = flow.lookaheadTs;
        codec::TranscodeResult r =
            flow.transcoder.pushComfortNoise(flow.cnLevel, flow.frameTs, flow.out, flow.packets);
        emitTranscoded(leg, r.packets, nowNanos, sink);
      } else if (flow.haveLast && flow.transcoder.sendsComfortNoise() &&
                 flow.unheardTs < scaleTs(kMaxCnWithoutSourceMs, 1000, plan.sourceClock)) {
        // RFC 3389: DTX or an underrun is CN, not nothing (pushing out a DTMF look-ahead too).
        flow.drainTs -= std::min(flow.drainTs, flow.frameTs);
        flow.unheardTs += flow.frameTs;
        emitTranscoded(leg, flow.transcoder.pushSilence(flow.frameTs, flow.out, flow.packets).packets, nowNanos,
                       sink);
      } else if (flow.detector && flow.drainTs > 0) {
        // The source went quiet: the audio still in the detector's look-ahead is owed now
        // (pushed out by silence), not at the start of the next talkspurt.
        flow.drainTs -= std::min(flow.drainTs, flow.frameTs);
        codec::TranscodeResult r = flow.transcoder.pushComfortNoise(codec::kComfortNoiseMinLevel, flow.frameTs,
                                                                    flow.out, flow.packets);
        emitTranscoded(leg, r.packets, nowNanos, sink);
      } else if (flow.haveLast) {
        // Silence (DTX without CN, underrun): our clock runs on, the next packet is marked.
        out.ts += scaleTs(flow.frameTs, plan.sourceClock, out.clock);
        out.marker = true;
      }
      return;
  }
}

void MediaPipeline::emitTranscoded(int leg, std::size_t packets, std::uint64_t nowNanos,
                                   PacketSink& sink) noexcept {
  const FlowPlan& plan = plan_.flows[static_cast<std::size_t>(leg)];
  Flow& flow = *flows_[static_cast<std::size_t>(leg)];
  const int to = 1 - leg;
  OutStream& out = *out_[static_cast<std::size_t>(to)];
  for (std::size_t i = 0; i < packets && i < flow.packets.size(); ++i) {
    const codec::TranscodedPacket& p = flow.packets[i];
    std::span<std::uint8_t> slot = sink.slot();
    std::span<const std::uint8_t> payload(flow.out.data() + p.offset, p.size);
    if (flow.tones && flow.toneRemaining > 0 &&
        p.timestampIncrement == flow.toneEncoder->timestampIncrement()) {
      // In-band DTMF replaces the audio (a DTX frame too) while the digit lasts.
      flow.tones->generate(flow.tonePcm);
      codec::EncodeResult tone = flow.toneEncoder->encode(flow.tonePcm, flow.tonePayload);
      if (tone.status == codec::CodecStatus::Ok && tone.bytes > 0)
        payload = {flow.tonePayload.data(), tone.bytes};
      const auto frame = static_cast<std::int64_t>(flow.tonePcm.size());
      flow.tonePlayed += frame;
      flow.toneRemaining = std::max<std::int64_t>(flow.toneRemaining - frame, 0);
    }
    const std::size_t length = rtp::kRtpHeaderSize + payload.size();
    if (payload.empty() || slot.size() < length + srtp::kMaxOverhead) {
      // DTX (RFC 7587 3.1.3) or silence toward a CN target: nothing to send, time passes;
      // or the sink is full.
      out.ts += p.timestampIncrement;
      out.marker = true;
      continue;
    }
    // RFC 3389 4: a CN packet's header is built as for audio (its timestamp is where the
    // noise starts); it is no talkspurt, so no marker, and the audio after it starts one
    // (RFC 3551 4.1). A digit's tone took the frame's place above: then it is audio.
    const bool cn = p.comfortNoise && payload.data() != flow.tonePayload.data();
    rtp::writeRtpHeader(slot, {cn ? *plan.targetCnPt : plan.targetPt, out.marker && !cn, out.seq, out.ts, out.ssrc});
    std::memcpy(slot.data() + rtp::kRtpHeaderSize, payload.data(), payload.size());
    if (sendGenerated(to, slot, length, false, sink)) {
      out.sender.onSent(payload.size(), out.ts, nowNanos);
      if (cn) bump(counters(to).comfortNoiseSent);
    }
    ++out.seq;
    out.ts += p.timestampIncrement;
    out.marker = cn;
  }
  if (flow.detector) sendDetectedEvents(leg, sink);
}

// ---- RTCP ----------------------------------------------------------------------------

void MediaPipeline::sendReport(int legIndex, std::uint64_t nowNanos, PacketSink& sink) noexcept {
  Leg& leg = *legs_[static_cast<std::size_t>(legIndex)];
  LegCounters& c = counters(legIndex);
  std::array<rtp::ReportBlock, 1> blocks{};
  std::size_t count = 0;
  if (leg.haveSource) {
    blocks[0] = leg.stats.makeReportBlock(leg.sourceSsrc, nowNanos);
    set(c.fractionLost, blocks[0].fractionLost);
    count = 1;
  }
  std::span<std::uint8_t> slot = sink.slot();
  if (slot.size() < rtp::rtcpReportSize(true, count, options_.cname.size()) + srtp::kMaxOverhead) return;
  const OutStream* out = out_[static_cast<std::size_t>(legIndex)].get();
  std::span<const rtp::ReportBlock> reported(blocks.data(), count);
  std::size_t length = 0;
  if (out && out->sender.hasSent()) {
    // RFC 3550 6.4.1: we are a sender on this leg (the generated stream).
    length = rtp::writeSenderReport(slot, out->ssrc, out->sender.senderInfo(ntpNow(nowNanos), nowNanos),
                                    reported, options_.cname);
  } else {
    length = rtp::writeReceiverReport(slot, out ? out->ssrc : leg.rtcpSsrc, reported, options_.cname);
  }
  if (length == 0) return;
  if (sendGenerated(legIndex, slot, length, true, sink)) bump(c.rtcpOut);
}

}  // namespace medius::media
