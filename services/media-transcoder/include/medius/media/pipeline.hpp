// MediaPipeline: what a relay session does with every packet once SDP negotiation has
// produced a MediaPlan (media_plan.hpp): SRTP in and out, payload-type rewriting,
// transcoding behind a jitter buffer, telephone-event mapping, RTCP and statistics.
//
// Life: the control thread builds a pipeline from a plan (the constructor creates the SRTP
// contexts, transcoders, jitter buffers and statistics and throws on bad parameters), then
// hands it to the session's worker (Worker::setPipeline), which calls adopt() with the
// previous pipeline, if any, and from then on is the only thread that touches it.
//
// Packet path (worker thread): receive() takes one datagram received on a leg, in place
// in the worker's receive buffer, and emits 0..n packets into a PacketSink (worker-owned,
// preallocated): either the same buffer rewritten in place (relay) or packets written into
// the sink's slots (generated). tick() runs the playout clock of transcoded flows and the
// RTCP timers; the worker calls it every few milliseconds (kTickNanos). Neither allocates,
// throws nor locks (libsrtp allocates once when a new SSRC appears; see srtp/session.hpp).
//
// Per flow (leg L -> other leg):
//   Relay      SRTP unprotected with L's inbound context; PT rewritten through payloadMap
//              (-1: dropped, counted); SSRC, sequence numbers, timestamps and payload
//              untouched; protected with the other leg's outbound context.
//   Transcode  audio -> jitter buffer -> (tick) Transcoder -> our RTP header (our SSRC,
//              continuous sequence numbers, timestamps advancing by each packet's increment,
//              marker after a gap) -> protect; telephone-events mapped at once (PT and clock,
//              RFC 4733 2.5) into the same SSRC and sequence space, or, when the target has
//              no telephone-event, rendered as in-band DTMF tones (spandsp, Q.23) in place of
//              the audio from the event's first packet for the duration its packets give; CN consumed
//              (its level becomes comfort noise while the source is silent, RFC 3389); toward a
//              target with CN (targetCnPt), the source's silence (detected in its audio, or its
//              CN, DTX, underruns) is sent as CN packets (codec::SilenceSuppressor). When the
//              source has no telephone-event and the target has, in-band digits are detected in
//              the decoded audio (codec::InbandDtmfDetector: spandsp dtmf_rx, 40 ms look-ahead)
//              and sent as RFC 4733 events in the target's event PT and clock (M on the first
//              packet, an update per source frame, the end packet three times), the tones cut
//              from the audio (RFC 4733 3.1). A new source SSRC (re-INVITE, fork switch) resets
//              the decoding state (jitter buffer, decoder, resampler, detector, event mapping)
//              and ends a digit in progress; our stream toward the target goes on.
// RTCP: when both flows relay, RTCP is relayed (SRTCP transforms applied, malformed
// compound packets dropped; a peer's report block about the other peer's SR we relayed
// gives the round trip between us and that peer). When either flow transcodes, the pipeline is the RTP end
// point toward both legs (RFC 3550 7.1: a translator that changes the media is a new source): it consumes the
// peers' RTCP (RTT from report blocks about our SSRC, their SRs for LSR) and sends each leg, every 5 s on
// average (6.2, randomized 0.5..1.5 as 6.3.1), an SR (when we send that leg a generated stream) or an RR,
// with a report block about what that leg sends.
//
// Statistics go to the session's LegCounters (leg_counters.hpp), bound by the worker.
//
// Thread: constructor on any thread; everything else on the owning worker's thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "medius/media/leg_counters.hpp"
#include "medius/media/media_plan.hpp"

namespace medius::media {

namespace codec {
class Transcoder;
}
namespace rtp {
class JitterBuffer;
class ReceiveStats;
struct RtcpInfo;
struct RtpView;
class RttEstimator;
class SenderStats;
class TelephoneEventMapper;
struct MappedEvent;
}  // namespace rtp
namespace srtp {
class SrtpSession;
}

// Where a pipeline puts what it sends: a fixed array of packet slots and a list of
// packets to send (pointers into the slots or into the caller's receive buffer), filled by
// receive()/tick() and drained by the worker (sendmmsg) before the receive buffers are
// reused. Thread: the worker's.
class PacketSink {
 public:
  static constexpr std::size_t kSlots = 128;
  // A generated packet: 12-octet header + the largest encoded payload (1500) + the SRTP
  // tag (no MKI: we never send one), rounded up.
  static constexpr std::size_t kSlotBytes = 1600;

  struct Packet {
    const std::uint8_t* data = nullptr;
    std::size_t length = 0;
    std::uint8_t leg = 0;     // the leg to send it to
    bool rtcpSocket = false;  // from that leg's RTCP (+1) socket, to its RTCP remote
  };

  PacketSink();
  PacketSink(const PacketSink&) = delete;
  PacketSink& operator=(const PacketSink&) = delete;

  // The next free slot (kSlotBytes), or an empty span when all are taken.
  std::span<std::uint8_t> slot() noexcept;
  // Queues `length` octets of the slot slot() returned last (takes the slot).
  void commitSlot(std::size_t length, int leg, bool rtcpSocket) noexcept;
  // Queues a packet in the caller's buffer (valid until the sink is drained). False when
  // the list is full (the packet is not sent).
  bool emit(const std::uint8_t* data, std::size_t length, int leg, bool rtcpSocket) noexcept;

  std::span<const Packet> packets() const noexcept { return {packets_.data(), count_}; }
  bool full() const noexcept { return count_ == kSlots; }
  void clear() noexcept {
    count_ = 0;
    slotsUsed_ = 0;
  }

 private:
  std::unique_ptr<std::uint8_t[]> storage_;  // kSlots x kSlotBytes, 16-byte aligned slots
  std::array<Packet, kSlots> packets_{};
  std::size_t count_ = 0;
  std::size_t slotsUsed_ = 0;
};

// What receive() did with one datagram (the worker uses it for the media timeout: only
// authentic RTP counts as media).
enum class ReceiveResult : std::uint8_t {
  Rtp,      // authentic RTP, forwarded, queued or consumed
  Rtcp,     // authentic RTCP, relayed or consumed
  Dropped,  // counted in the leg's counters, never forwarded
};

struct PipelineOptions {
  // RTCP SDES CNAME of the packets we generate (RFC 3550 6.5.1); empty = "medius-<random>".
  std::string cname;
  // Average RTCP report interval (RFC 3550 6.2: 5 s minimum for an RTP end point).
  std::uint32_t rtcpIntervalMs = 5000;
  // Jitter buffer depth bounds of transcoded flows (adaptive between them; rtp::JitterBuffer).
  std::uint32_t jitterMinMs = 20;
  std::uint32_t jitterInitialMs = 60;
  std::uint32_t jitterMaxMs = 200;
};

class MediaPipeline {
 public:
  // The playout granularity the worker should keep (tick() at least this often while
  // transcoding; it tolerates late ticks by catching up to four frames).
  static constexpr std::uint64_t kTickNanos = 5'000'000;

  // Builds every context of `plan`; throws std::invalid_argument (inconsistent plan, e.g. a
  // Transcode flow whose PTs or codecs are missing), srtp::SrtpError, or what the codec
  // factories throw. Never on the packet path.
  explicit MediaPipeline(const MediaPlan& plan, const PipelineOptions& options = {});
  ~MediaPipeline();
  MediaPipeline(const MediaPipeline&) = delete;
  MediaPipeline& operator=(const MediaPipeline&) = delete;

  const MediaPlan& plan() const noexcept { return plan_; }
  bool transcoding() const noexcept { return plan_.transcoding(); }

  // Statistics go to these counters (the session's, kept across pipelines) instead of the
  // pipeline's own. Worker thread.
  void bindCounters(LegCounters& legA, LegCounters& legB) noexcept;
  LegCounters& counters(int leg) noexcept { return *counters_[static_cast<std::size_t>(leg)]; }

  // Takes over what should survive a re-negotiation from the pipeline this one replaces
  // (worker thread, before the first receive()):
  //   - SRTP contexts whose parameters did not change (their rollover counters and replay
  //     windows: a new context on the same key would restart the ROC and reuse keystream);
  //   - the SSRC, next sequence number and timestamp of each generated stream (a re-INVITE
  //     does not restart what the far end receives; the next packet has the marker bit),
  //     and its sender counters;
  //   - receive statistics of a leg whose clock did not change, the RTT estimate, our
  //     RTCP SSRCs and the learned rtcp-mux.
  void adopt(MediaPipeline& previous) noexcept;

  // One datagram received on `leg` (0 = A, 1 = B) by its RTP socket (rtcpSocket false;
  // RFC 5761 multiplexed RTCP is recognised there) or RTCP socket. buffer[0, length) is
  // the datagram; the buffer may be rewritten in place and must have room for the SRTP
  // tag (buffer.size() >= length + srtp::kMaxOverhead), and stay valid until the sink is
  // drained. nowNanos: monotonic clock.
  ReceiveResult receive(int leg, bool rtcpSocket, std::span<std::uint8_t> buffer, std::size_t length,
                        std::uint64_t nowNanos, PacketSink& sink) noexcept;

  // Playout of transcoded flows (the frames due by now) and RTCP reports and statistics
  // intervals. At most a few packets per flow (the sink needs ~32 free slots).
  void tick(std::uint64_t nowNanos, PacketSink& sink) noexcept;

  // Generated stream toward `leg` (Transcode flow into it): its SSRC, for tests and logs.
  std::optional<std::uint32_t> generatedSsrc(int leg) const noexcept;

 private:
  struct Leg;
  struct Flow;
  struct OutStream;

  ReceiveResult receiveRtcp(int leg, std::span<std::uint8_t> buffer, std::size_t length, bool rtcpSocket,
                            std::uint64_t nowNanos, PacketSink& sink) noexcept;
  void noteRelayedRtcp(int leg, const rtp::RtcpInfo& info, std::uint64_t nowNanos) noexcept;
  ReceiveResult relayRtp(int leg, std::span<std::uint8_t> buffer, std::size_t length,
                         std::uint8_t payloadType, PacketSink& sink) noexcept;
  void transcodeRtp(int leg, const rtp::RtpView& view, std::uint64_t nowNanos, PacketSink& sink) noexcept;
  void mapEvent(int leg, const rtp::RtpView& view, PacketSink& sink) noexcept;
  void newSource(int leg, PacketSink& sink) noexcept;
  void sendEvents(int toLeg, std::span<const rtp::MappedEvent> events, std::size_t count,
                  PacketSink& sink) noexcept;
  void sendDetectedEvents(int leg, PacketSink& sink) noexcept;
  void playout(int leg, std::uint64_t nowNanos, PacketSink& sink) noexcept;
  void playFrame(int leg, std::uint64_t nowNanos, PacketSink& sink) noexcept;
  void emitTranscoded(int leg, std::size_t packets, std::uint64_t nowNanos, PacketSink& sink) noexcept;
  bool sendGenerated(int toLeg, std::span<std::uint8_t> slot, std::size_t length, bool rtcp,
                     PacketSink& sink) noexcept;
  void sendReport(int leg, std::uint64_t nowNanos, PacketSink& sink) noexcept;
  void countSrtp(int leg, int status) noexcept;
  std::uint64_t ntpNow(std::uint64_t nowNanos) const noexcept;
  std::uint64_t nextReportDelay() noexcept;

  MediaPlan plan_;
  PipelineOptions options_;
  bool relayRtcp_;  // both flows relay: RTCP crosses; otherwise we are the RTCP end point
  std::array<std::unique_ptr<Leg>, 2> legs_;
  std::array<std::unique_ptr<Flow>, 2> flows_;     // Transcode flows only (null for Relay)
  std::array<std::unique_ptr<OutStream>, 2> out_;  // generated stream toward leg i, if any
  std::array<LegCounters, 2> ownCounters_;
  std::array<LegCounters*, 2> counters_;
  std::uint64_t unixOffsetNanos_;  // CLOCK_REALTIME - CLOCK_MONOTONIC at construction
  std::uint64_t random_;           // xorshift state for RTCP interval randomization
};

}  // namespace medius::media
