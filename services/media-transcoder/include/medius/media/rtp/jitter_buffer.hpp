// A jitter buffer for the decoding side of a transcoded leg.
//
// The receive path put()s each RTP packet (sequence, timestamp, payload, arrival time); the
// playout clock calls get() once per frame period (the leg's ptime) and receives, in
// sequence order:
//   Frame   - the next packet's payload: decode it;
//   Missing - the next packet is absent while later ones are buffered: run the decoder's
//             loss concealment for one frame (the stream goes on after it);
//   Empty   - nothing to play (start-up buffering, underrun, or the sender is silent under
//             DTX/VAD): play comfort noise or concealment, caller's choice.
// Late packets (behind the playout point) and duplicates are dropped and counted; a new SSRC
// or a sequence jump resets the buffer (put() returns Reset so the caller can reset its
// decoder). Sequence numbers and timestamps wrap (only 16/32-bit differences are used).
//
// Depth: playout starts, and restarts after an underrun (rebuffering), once the first packet
// has waited the target depth. Fixed mode keeps the configured depth; adaptive mode sets the
// target to frame + 3 x interarrival jitter (RFC 3550 A.8 estimate, depthMs until 50 samples),
// clamped to [minDepth, maxDepth]. Depth is counted in frames by sequence number (a DTX
// timestamp jump is not buffered audio). When the buffered audio stays more than two frames
// above the target for one second, one frame is dropped; beyond maxDepth, frames are dropped
// down to the target at once.
//
// Adaptive mode also sheds by slack: every played packet waited some time between its
// arrival and its playout. Counting whole frames cannot tell 21 ms of buffered audio from
// 40 ms (the arrival phase against the playout clock is invisible to it), so a clean link
// kept the start-up depth for good. When the least any packet waited during one second is
// more than a frame plus the reserve (the target minus one frame: 3 x jitter, or what
// minDepth asks for; at least 2 ms), every packet could have been played one frame
// sooner, and one frame is dropped. When it is less than that but still more than the
// reserve plus 1 ms, the playout clock should move earlier by the difference (a fraction of
// a frame, which no frame drop can take back): takePlayoutAdvance() says by how much, once,
// and the caller makes its next get() that much sooner (its peer sees one packet that much
// early, like one packet of jitter). On a clean 20 ms stream each packet then waits about
// the reserve, a few ms.
//
// Why not speexdsp's JitterBuffer: jitter_buffer_put() mallocs a copy of every packet
// unless a destroy callback is set (then it keeps our pointer and we would need a pool
// anyway), its playout decisions use timestamps only (it carries but does not use sequence
// numbers, so it cannot tell a loss from a DTX pause or count duplicates), and it scans a
// fixed 200-entry array (SPEEX_JITTER_MAX_BUFFER_SIZE) on every put and get. This ring is
// preallocated (capacity slots x maxPayload octets) and indexed by sequence number.
//
// Contract: put()/get() are noexcept and allocate nothing; the constructor throws
// std::invalid_argument on a bad config. A Frame's payload points into the buffer and is
// valid until the next put() or get(). Thread: one owner (the leg's worker thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace medius::media::rtp {

struct JitterBufferConfig {
  std::uint32_t clockRate = 8000;  // RTP clock of the payload
  std::uint32_t frameMs = 20;      // expected ptime until learned from the packets
  std::uint32_t depthMs = 60;      // target depth (fixed mode), initial target (adaptive)
  std::uint32_t minDepthMs = 20;   // adaptive lower bound
  std::uint32_t maxDepthMs = 200;  // never buffer more than this
  bool adaptive = true;
  std::size_t capacity = 32;      // slots, a power of two (>= maxDepth / frame + reorder margin)
  std::size_t maxPayload = 1280;  // octets per slot; larger payloads are refused (TooLarge)
};

enum class PutResult : std::uint8_t { Queued, Reset, Duplicate, Late, TooLarge };
enum class FrameStatus : std::uint8_t { Frame, Missing, Empty };

struct JitterFrame {
  FrameStatus status = FrameStatus::Empty;
  std::uint16_t sequence = 0;   // Frame and Missing: the sequence number played
  std::uint32_t timestamp = 0;  // Frame: the packet's; Missing: estimated
  std::uint8_t payloadType = 0;
  bool marker = false;
  std::span<const std::uint8_t> payload;  // Frame only
};

struct JitterBufferCounters {
  std::uint64_t queued = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t late = 0;
  std::uint64_t tooLarge = 0;
  std::uint64_t missing = 0;    // Missing frames returned
  std::uint64_t skipped = 0;    // sequence numbers never played (lost across an underrun)
  std::uint64_t dropped = 0;    // buffered frames discarded to shrink the depth
  std::uint64_t underruns = 0;  // Empty after playing had started
  std::uint64_t resets = 0;
};

class JitterBuffer {
 public:
  explicit JitterBuffer(const JitterBufferConfig& config);

  // One received packet; arrivalNanos from the caller's monotonic clock.
  PutResult put(std::uint32_t ssrc, std::uint16_t sequence, std::uint32_t timestamp, std::uint8_t payloadType,
                bool marker, std::span<const std::uint8_t> payload, std::uint64_t arrivalNanos) noexcept;

  // The frame to play now (call once per frame period). dueNanos: when the caller's
  // playout clock wanted this frame (a caller that runs on a coarser tick calls a little
  // after it); the slack of a packet is counted to it, so that moving the clock earlier
  // never takes back the tick's own lateness.
  JitterFrame get(std::uint64_t nowNanos, std::uint64_t dueNanos) noexcept;
  JitterFrame get(std::uint64_t nowNanos) noexcept { return get(nowNanos, nowNanos); }

  // Drops everything (e.g. on a re-INVITE that changes the codec).
  void reset() noexcept;

  // Nanoseconds the caller's playout clock should move earlier (0: none), once: the next call
  // returns 0 until the next slack window asks again. Adaptive mode only.
  std::uint64_t takePlayoutAdvance() noexcept {
    const std::uint64_t shift = shiftNanos_;
    shiftNanos_ = 0;
    return shift;
  }

  std::uint32_t targetDepthMs() const noexcept;
  // Buffered audio from the playout point to the newest packet, in ms (0 when empty):
  // frames (by sequence number) x the learned frame duration.
  std::uint32_t bufferedMs() const noexcept;
  std::size_t bufferedPackets() const noexcept { return count_; }
  const JitterBufferCounters& counters() const noexcept { return counters_; }

 private:
  struct Slot {
    bool used = false;
    bool marker = false;
    std::uint8_t payloadType = 0;
    std::uint16_t sequence = 0;
    std::uint16_t size = 0;
    std::uint32_t timestamp = 0;
    std::uint64_t arrival = 0;
  };

  Slot& slot(std::uint16_t seq) noexcept { return slots_[seq & mask_]; }
  std::uint8_t* data(std::uint16_t seq) noexcept {
    return storage_.data() + (seq & mask_) * config_.maxPayload;
  }
  void clear() noexcept;
  void discardNext() noexcept;
  void restartSlackWindow() noexcept;
  void shedBySlack(std::uint32_t targetTs) noexcept;
  std::uint32_t nextTimestamp() const noexcept;
  std::uint32_t targetDepthTs() const noexcept;
  std::int64_t bufferedTs() const noexcept;
  std::uint32_t msToTs(std::uint32_t ms) const noexcept;
  void updateJitter(std::uint32_t timestamp, std::uint64_t arrivalNanos) noexcept;

  JitterBufferConfig config_;
  std::size_t mask_;
  std::vector<Slot> slots_;
  std::vector<std::uint8_t> storage_;
  JitterBufferCounters counters_;

  bool haveSsrc_ = false;
  std::uint32_t ssrc_ = 0;
  bool haveBase_ = false;          // nextSeq_/highestSeq_ meaningful
  bool playing_ = false;           // false: buffering until the oldest packet waited the target
  bool startedSinceBase_ = false;  // something was played (or given up) since the base
  std::uint16_t nextSeq_ = 0;      // next sequence number to play
  std::uint16_t highestSeq_ = 0;   // newest sequence number buffered or played
  std::uint32_t highestTs_ = 0;
  std::uint64_t bufferingSince_ = 0;  // arrival of the first packet since buffering began
  std::size_t count_ = 0;
  std::uint32_t frameTs_;  // timestamp units per frame (learned)
  std::uint32_t overTicks_ = 0;
  // The slack window: gets while playing, and the least wait of a played packet in it.
  std::uint32_t slackTicks_ = 0;
  std::uint32_t slackSamples_ = 0;
  std::uint64_t minSlackNanos_ = 0;
  std::uint64_t shiftNanos_ = 0;
  // A.8 jitter estimate of arrivals, in timestamp units x 16.
  bool haveTransit_ = false;
  std::uint32_t transit_ = 0;
  std::uint32_t jitterQ4_ = 0;
  std::uint32_t jitterSamples_ = 0;
};

}  // namespace medius::media::rtp
