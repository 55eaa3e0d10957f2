#include "medius/media/rtp/jitter_buffer.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace medius::media::rtp {

namespace {

// A sequence jump this large (either way) without an SSRC change is a new stream (the
// sender restarted); RFC 3550 A.1 uses 3000 for statistics, a playout buffer gives up sooner.
constexpr std::int32_t kSequenceJump = 1000;
constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;
// Jitter samples before the adaptive target trusts the estimate over depthMs.
constexpr std::uint32_t kWarmupSamples = 50;
// The least slack kept beyond one frame when shedding by slack (adaptive mode).
constexpr std::uint64_t kMinReserveNanos = 2'000'000;
// Slack beyond the reserve below which the playout clock is not moved.
constexpr std::uint64_t kMinShiftNanos = 1'000'000;

std::int32_t seqDiff(std::uint16_t a, std::uint16_t b) noexcept {
  return static_cast<std::int16_t>(static_cast<std::uint16_t>(a - b));
}

}  // namespace

JitterBuffer::JitterBuffer(const JitterBufferConfig& config) : config_(config), mask_(config.capacity - 1) {
  if (config.clockRate == 0 || config.clockRate > 192000)
    throw std::invalid_argument("JitterBuffer: bad clock rate");
  if (config.frameMs == 0 || config.frameMs > 200)
    throw std::invalid_argument("JitterBuffer: frameMs must be 1..200");
  if (config.maxDepthMs == 0 || config.maxDepthMs > 2000 || config.minDepthMs > config.maxDepthMs ||
      config.depthMs > config.maxDepthMs) {
    throw std::invalid_argument("JitterBuffer: need minDepthMs <= depthMs <= maxDepthMs <= 2000");
  }
  if (config.capacity < 4 || config.capacity > 4096 || (config.capacity & (config.capacity - 1)) != 0) {
    throw std::invalid_argument("JitterBuffer: capacity must be a power of two in 4..4096");
  }
  if (config.maxPayload == 0 || config.maxPayload > 65535)
    throw std::invalid_argument("JitterBuffer: bad maxPayload");
  slots_.resize(config.capacity);
  storage_.resize(config.capacity * config.maxPayload);
  frameTs_ = msToTs(config.frameMs);
}

std::uint32_t JitterBuffer::msToTs(std::uint32_t ms) const noexcept {
  return static_cast<std::uint32_t>(std::uint64_t{ms} * config_.clockRate / 1000);
}

void JitterBuffer::clear() noexcept {
  for (Slot& s : slots_) s.used = false;
  count_ = 0;
  haveBase_ = false;
  playing_ = false;
  startedSinceBase_ = false;
  haveTransit_ = false;
  overTicks_ = 0;
  restartSlackWindow();
  shiftNanos_ = 0;
}

void JitterBuffer::restartSlackWindow() noexcept {
  slackTicks_ = 0;
  slackSamples_ = 0;
  minSlackNanos_ = 0;
}

void JitterBuffer::reset() noexcept {
  clear();
  haveSsrc_ = false;
}

std::uint32_t JitterBuffer::targetDepthTs() const noexcept {
  if (!config_.adaptive) return msToTs(config_.depthMs);
  std::uint32_t target = frameTs_ + 3 * (jitterQ4_ >> 4);
  if (jitterSamples_ < kWarmupSamples) target = std::max(target, msToTs(config_.depthMs));
  return std::clamp(target, msToTs(config_.minDepthMs), msToTs(config_.maxDepthMs));
}

std::uint32_t JitterBuffer::targetDepthMs() const noexcept {
  return static_cast<std::uint32_t>(std::uint64_t{targetDepthTs()} * 1000 / config_.clockRate);
}

std::uint32_t JitterBuffer::nextTimestamp() const noexcept {
  const Slot& s = slots_[nextSeq_ & mask_];
  if (s.used && s.sequence == nextSeq_) return s.timestamp;
  // Estimated back from the newest packet at the learned frame size.
  return highestTs_ -
         frameTs_ * static_cast<std::uint32_t>(static_cast<std::uint16_t>(highestSeq_ - nextSeq_));
}

std::int64_t JitterBuffer::bufferedTs() const noexcept {
  // Frames from the playout point to the newest packet (gaps included: they will play as
  // Missing), not the timestamp span: under DTX the timestamp jumps over silence that is
  // not buffered audio.
  if (count_ == 0) return 0;
  const auto frames = static_cast<std::int64_t>(static_cast<std::uint16_t>(highestSeq_ - nextSeq_)) + 1;
  return frames * frameTs_;
}

std::uint32_t JitterBuffer::bufferedMs() const noexcept {
  return static_cast<std::uint32_t>(std::max<std::int64_t>(bufferedTs(), 0) * 1000 / config_.clockRate);
}

void JitterBuffer::updateJitter(std::uint32_t timestamp, std::uint64_t arrivalNanos) noexcept {
  // RFC 3550 A.8 on the packets as they arrive (the same estimate the RTCP report carries).
  const auto arrival =
      static_cast<std::uint32_t>((arrivalNanos / kNanosPerSecond) * config_.clockRate +
                                 (arrivalNanos % kNanosPerSecond) * config_.clockRate / kNanosPerSecond);
  const std::uint32_t transit = arrival - timestamp;
  if (haveTransit_) {
    const auto diff = static_cast<std::int32_t>(transit - transit_);
    // A delay swing above 2^20 units (~20 s at 48 kHz) is a clock or stream break, not jitter.
    const std::int64_t d =
        std::min<std::int64_t>(diff < 0 ? -static_cast<std::int64_t>(diff) : diff, 1 << 20);
    jitterQ4_ = static_cast<std::uint32_t>(static_cast<std::int64_t>(jitterQ4_) + d - ((jitterQ4_ + 8) >> 4));
    ++jitterSamples_;
  }
  transit_ = transit;
  haveTransit_ = true;
}

// Drops the frame at the playout point (played-out never), advancing it by one.
void JitterBuffer::discardNext() noexcept {
  Slot& s = slot(nextSeq_);
  if (s.used && s.sequence == nextSeq_) {
    s.used = false;
    --count_;
    ++counters_.dropped;
  } else {
    ++counters_.skipped;
  }
  ++nextSeq_;
}

PutResult JitterBuffer::put(std::uint32_t ssrc, std::uint16_t seq, std::uint32_t timestamp,
                            std::uint8_t payloadType, bool marker, std::span<const std::uint8_t> payload,
                            std::uint64_t arrivalNanos) noexcept {
  if (payload.size() > config_.maxPayload) {
    ++counters_.tooLarge;
    return PutResult::TooLarge;
  }
  PutResult result = PutResult::Queued;
  if (haveSsrc_ && ssrc != ssrc_) {
    clear();
    ++counters_.resets;
    result = PutResult::Reset;
  }
  haveSsrc_ = true;
  ssrc_ = ssrc;
  if (haveBase_) {
    const std::int32_t diff = seqDiff(seq, nextSeq_);
    if (diff >= kSequenceJump || diff <= -kSequenceJump) {
      clear();
      ++counters_.resets;
      result = PutResult::Reset;
    } else if (diff < 0) {
      // Behind the playout point: late, unless nothing has been played yet and it still
      // fits in the ring with the newest packet (reordering during start-up buffering).
      const std::int32_t span = seqDiff(highestSeq_, seq);
      if (startedSinceBase_ || span >= static_cast<std::int32_t>(config_.capacity)) {
        ++counters_.late;
        return PutResult::Late;
      }
      nextSeq_ = seq;
    } else if (diff >= static_cast<std::int32_t>(config_.capacity)) {
      // Too far ahead for the ring: make room by giving up the oldest frames.
      while (seqDiff(seq, nextSeq_) >= static_cast<std::int32_t>(config_.capacity)) discardNext();
      startedSinceBase_ = true;
    }
  }
  if (!haveBase_) {
    haveBase_ = true;
    nextSeq_ = seq;
    highestSeq_ = seq;
    highestTs_ = timestamp;
  }
  Slot& s = slot(seq);
  if (s.used && s.sequence == seq) {
    ++counters_.duplicates;
    return PutResult::Duplicate;
  }
  if (!s.used) ++count_;
  if (count_ == 1 && !playing_) bufferingSince_ = arrivalNanos;
  s.used = true;
  s.marker = marker;
  s.payloadType = payloadType;
  s.sequence = seq;
  s.size = static_cast<std::uint16_t>(payload.size());
  s.timestamp = timestamp;
  s.arrival = arrivalNanos;
  if (!payload.empty()) std::memcpy(data(seq), payload.data(), payload.size());
  const std::int32_t ahead = seqDiff(seq, highestSeq_);
  if (ahead > 0) {
    // Learn the frame size from consecutive packets (up to 200 ms of timestamp units).
    const auto tsStep = static_cast<std::int32_t>(timestamp - highestTs_);
    if (ahead == 1 && tsStep > 0 && static_cast<std::uint32_t>(tsStep) <= msToTs(200)) {
      frameTs_ = static_cast<std::uint32_t>(tsStep);
    }
    highestSeq_ = seq;
    highestTs_ = timestamp;
  }
  updateJitter(timestamp, arrivalNanos);
  ++counters_.queued;
  return result;
}

// Adaptive mode, once per second of playout: drops the frame at the playout point when
// every packet played during that second waited more than a frame plus the reserve.
void JitterBuffer::shedBySlack(std::uint32_t targetTs) noexcept {
  if (!config_.adaptive) return;
  if (++slackTicks_ < 1000 / config_.frameMs) return;
  const std::uint64_t frameNanos = std::uint64_t{frameTs_} * kNanosPerSecond / config_.clockRate;
  const std::uint64_t targetNanos = std::uint64_t{targetTs} * kNanosPerSecond / config_.clockRate;
  const std::uint64_t reserve =
      std::max(targetNanos > frameNanos ? targetNanos - frameNanos : 0, kMinReserveNanos);
  // Most of the window played real packets (not concealment) and the next one is here too.
  const bool enough = slackSamples_ * 2 >= slackTicks_;
  if (enough && count_ > 1 && minSlackNanos_ > frameNanos + reserve) {
    discardNext();
  } else if (enough && minSlackNanos_ > reserve + kMinShiftNanos) {
    shiftNanos_ = minSlackNanos_ - reserve;
  }
  restartSlackWindow();
}

JitterFrame JitterBuffer::get(std::uint64_t nowNanos, std::uint64_t dueNanos) noexcept {
  JitterFrame frame;
  if (count_ == 0) {
    if (playing_) {
      playing_ = false;
      ++counters_.underruns;
    }
    return frame;
  }
  const std::uint32_t target = targetDepthTs();
  if (!playing_) {
    const std::uint64_t waitNanos = std::uint64_t{target} * kNanosPerSecond / config_.clockRate;
    if (nowNanos < bufferingSince_ || nowNanos - bufferingSince_ < waitNanos) return frame;
    // Start (or restart after an underrun) at the oldest buffered packet; what was
    // never received before it has already been covered by Empty frames.
    while (!(slot(nextSeq_).used && slot(nextSeq_).sequence == nextSeq_)) {
      ++counters_.skipped;
      ++nextSeq_;
    }
    playing_ = true;
    startedSinceBase_ = true;
    overTicks_ = 0;
    restartSlackWindow();
  } else {
    shedBySlack(target);
    const std::int64_t buffered = bufferedTs();
    if (buffered > static_cast<std::int64_t>(msToTs(config_.maxDepthMs))) {
      while (count_ > 1 && bufferedTs() > static_cast<std::int64_t>(target)) discardNext();
      overTicks_ = 0;
    } else if (buffered > static_cast<std::int64_t>(target) + 2 * static_cast<std::int64_t>(frameTs_)) {
      // Too deep for a whole second (clock drift, or a past spike): shed one frame.
      if (++overTicks_ >= 1000 / config_.frameMs) {
        discardNext();
        overTicks_ = 0;
      }
    } else {
      overTicks_ = 0;
    }
  }
  Slot& s = slot(nextSeq_);
  frame.sequence = nextSeq_;
  if (s.used && s.sequence == nextSeq_) {
    frame.status = FrameStatus::Frame;
    frame.timestamp = s.timestamp;
    frame.payloadType = s.payloadType;
    frame.marker = s.marker;
    frame.payload = {data(nextSeq_), s.size};
    if (config_.adaptive) {
      const std::uint64_t due = std::min(dueNanos, nowNanos);
      const std::uint64_t slack = due > s.arrival ? due - s.arrival : 0;
      minSlackNanos_ = slackSamples_ == 0 ? slack : std::min(minSlackNanos_, slack);
      ++slackSamples_;
    }
    s.used = false;
    --count_;
  } else {
    frame.status = FrameStatus::Missing;
    frame.timestamp = nextTimestamp();
    ++counters_.missing;
  }
  ++nextSeq_;
  return frame;
}

}  // namespace medius::media::rtp
