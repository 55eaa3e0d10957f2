// Counters of one leg of a relay session: written by the session's worker only (relaxed
// atomics, a load and a store per update), read by any thread (stats, metrics, the CDR).
//
// Totals only grow while the session lives; the gauges (marked) hold the latest value.
// Without a MediaPipeline (plain relay, issue 5) only the first group moves.
//
// Thread: written by one worker thread, read by any.
#pragma once

#include <atomic>
#include <cstdint>

namespace medius::media {

struct LegCounters {
  // ---- every session ----
  // As received from / sent to this leg's peer, on the wire (SRTP tags included).
  std::atomic<std::uint64_t> packetsIn{0};
  std::atomic<std::uint64_t> packetsOut{0};
  std::atomic<std::uint64_t> bytesIn{0};
  std::atomic<std::uint64_t> bytesOut{0};
  // RTP from this leg's peer: lost (RFC 3550 A.3 cumulative, never below 0) and reordered.
  std::atomic<std::uint64_t> lost{0};
  std::atomic<std::uint64_t> outOfOrder{0};
  // Packets dropped because they came from another source than the latched one (strict).
  std::atomic<std::uint64_t> strangerDrops{0};
  // The current RTP remote, packed as (IPv4 << 16 | port) in host order; 0 = none.
  std::atomic<std::uint64_t> remote{0};

  // ---- sessions with a MediaPipeline (issue 6) ----
  // Received packets dropped, never forwarded: SRTP/SRTCP authentication failed (tampered,
  // wrong key), replayed (RFC 3711 3.3.2), other libsrtp errors (key exhausted).
  std::atomic<std::uint64_t> srtpAuthFailures{0};
  std::atomic<std::uint64_t> srtpReplays{0};
  std::atomic<std::uint64_t> srtpErrors{0};
  // Not RTP/RTCP: truncated, version != 2, CSRC or extension past the end, bad padding,
  // RTCP lengths that lie, SRTP packets too short for their tag.
  std::atomic<std::uint64_t> badPackets{0};
  // Valid RTP with a payload type the other leg did not accept (payloadMap -1, or not the
  // audio/event/CN type of a transcoded flow), or telephone-events the other leg cannot get.
  std::atomic<std::uint64_t> payloadDrops{0};
  // RFC 3550 A.3: packets expected from this leg's peer (with `lost`: the loss ratio for
  // the E-model, lost / expected).
  std::atomic<std::uint64_t> expected{0};
  // Gauges: interarrival jitter of what we receive (A.8) in microseconds; fraction lost
  // in the last RTCP interval (~5 s), 0..255 = /256 (6.4.1).
  std::atomic<std::uint64_t> jitterMicros{0};
  std::atomic<std::uint64_t> fractionLost{0};
  // Gauges from the RTCP this leg's peer sends: the smoothed round-trip time between us and
  // the peer (6.4.1: from its report blocks about the SRs we generate on a transcoded
  // session; on a relayed one, about the other peer's SRs we relayed, timed on our clock;
  // 0 = not measured yet), and what the peer reports about the stream it receives: its
  // fraction lost (0..255) and jitter in microseconds.
  std::atomic<std::uint64_t> rttMicros{0};
  std::atomic<std::uint64_t> peerFractionLost{0};
  std::atomic<std::uint64_t> peerJitterMicros{0};
  std::atomic<std::uint64_t> rtcpIn{0};   // valid RTCP compound packets received
  std::atomic<std::uint64_t> rtcpOut{0};  // RTCP reports we generated for this leg
  // Transcoded flows, on the leg the audio comes from: frames concealed (jitter buffer
  // Missing: PLC or Opus FEC), payloads the decoder rejected, packets the jitter buffer
  // refused (late, duplicate, too large), frames of comfort noise played from CN.
  std::atomic<std::uint64_t> concealedFrames{0};
  std::atomic<std::uint64_t> decodeErrors{0};
  std::atomic<std::uint64_t> jitterBufferDrops{0};
  // Buffered frames the jitter buffer discarded unplayed to shrink its depth (a past delay
  // spike, clock drift, or the start-up depth shed once the link proved clean).
  std::atomic<std::uint64_t> jitterFramesShed{0};
  std::atomic<std::uint64_t> comfortNoiseFrames{0};
  // Transcoded flows, on the leg we send to: RFC 3389 CN packets we generated for its
  // peer in place of silent audio frames (FlowPlan::targetCnPt).
  std::atomic<std::uint64_t> comfortNoiseSent{0};
  // Telephone-event packets received from this leg and mapped to the other (or events
  // rendered as in-band tones for a leg without telephone-event, or in-band digits of this
  // leg detected and sent to the other as telephone-events, one per digit).
  std::atomic<std::uint64_t> eventsMapped{0};
};

}  // namespace medius::media
