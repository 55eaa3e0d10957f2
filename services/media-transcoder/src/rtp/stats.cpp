#include "medius/media/rtp/stats.hpp"

#include <algorithm>
#include <stdexcept>

namespace medius::media::rtp {

namespace {

constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;
constexpr std::uint64_t kNtpUnixOffset = 2'208'988'800;  // seconds from 1900 to 1970
constexpr std::uint32_t kSeqMod = 1u << 16;

// nanos * rate / 1e9 without 64-bit overflow for any monotonic clock value; the result
// wraps modulo 2^32 like an RTP timestamp (only differences are used).
std::uint64_t scaleNanos(std::uint64_t nanos, std::uint64_t rate) noexcept {
  return (nanos / kNanosPerSecond) * rate + (nanos % kNanosPerSecond) * rate / kNanosPerSecond;
}

}  // namespace

std::uint64_t ntpFromUnixNanos(std::uint64_t unixNanos) noexcept {
  const std::uint64_t seconds = unixNanos / kNanosPerSecond + kNtpUnixOffset;
  const std::uint64_t fraction = ((unixNanos % kNanosPerSecond) << 32) / kNanosPerSecond;
  return (seconds << 32) | fraction;
}

std::uint32_t nanosToNtpShort(std::uint64_t nanos) noexcept {
  const std::uint64_t units = scaleNanos(std::min<std::uint64_t>(nanos, 1ull << 50), 65536);
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(units, 0xffffffffu));
}

// --- ReceiveStats ---------------------------------------------------------------------------

ReceiveStats::ReceiveStats(std::uint32_t clockRate) : clockRate_(clockRate) {
  if (clockRate == 0) throw std::invalid_argument("ReceiveStats: clock rate must be > 0");
}

std::uint32_t ReceiveStats::toRtpUnits(std::uint64_t nanos) const noexcept {
  return static_cast<std::uint32_t>(scaleNanos(nanos, clockRate_));
}

// A.1 init_seq.
void ReceiveStats::initSeq(std::uint16_t seq) noexcept {
  baseSeq_ = seq;
  maxSeq_ = seq;
  badSeq_ = kSeqMod + 1;
  cycles_ = 0;
  received_ = 0;
  receivedPrior_ = 0;
  expectedPrior_ = 0;
  seenWindow_ = 1;
  haveTransit_ = false;
}

void ReceiveStats::updateJitter(std::uint32_t rtpTimestamp, std::uint64_t arrivalNanos) noexcept {
  // A.8: transit = arrival - timestamp, both in timestamp units; D = transit difference
  // of consecutive packets; J += (|D| - J) / 16, kept scaled by 16 (the integer form).
  const std::uint32_t transit = toRtpUnits(arrivalNanos) - rtpTimestamp;
  if (haveTransit_) {
    const auto diff = static_cast<std::int32_t>(transit - transit_);
    const std::int64_t d = diff < 0 ? -static_cast<std::int64_t>(diff) : diff;
    const std::int64_t j =
        static_cast<std::int64_t>(jitterQ4_) + d - ((static_cast<std::int64_t>(jitterQ4_) + 8) >> 4);
    jitterQ4_ = static_cast<std::uint32_t>(std::clamp<std::int64_t>(j, 0, 0xffffffffll));
  }
  transit_ = transit;
  haveTransit_ = true;
}

SeqResult ReceiveStats::receive(std::uint16_t seq, std::uint32_t rtpTimestamp,
                                std::uint64_t arrivalNanos) noexcept {
  if (!started_) {
    // A.1: a new source starts on probation with max_seq = seq - 1.
    initSeq(seq);
    maxSeq_ = static_cast<std::uint16_t>(seq - 1);
    probation_ = kMinSequential;
    started_ = true;
  }
  const auto udelta = static_cast<std::uint16_t>(seq - maxSeq_);
  if (probation_ > 0) {
    // A.1 probation: MIN_SEQUENTIAL packets in sequence validate the source. Unlike A.1's
    // sample code, the probation packets themselves are counted (base_seq is the first of
    // them), so a short clean stream reports no loss.
    if (seq == static_cast<std::uint16_t>(maxSeq_ + 1)) {
      --probation_;
      maxSeq_ = seq;
      updateJitter(rtpTimestamp, arrivalNanos);
      if (probation_ == 0) {
        const auto first = static_cast<std::uint16_t>(seq - (kMinSequential - 1));
        const bool keepTransit = haveTransit_;
        const std::uint32_t transit = transit_;
        initSeq(first);
        maxSeq_ = seq;
        seenWindow_ = (1ull << kMinSequential) - 1;
        received_ = kMinSequential;
        haveTransit_ = keepTransit;
        transit_ = transit;
        return SeqResult::Valid;
      }
    } else {
      probation_ = kMinSequential - 1;
      maxSeq_ = seq;
      haveTransit_ = false;
      updateJitter(rtpTimestamp, arrivalNanos);
    }
    return SeqResult::Probation;
  }
  SeqResult result = SeqResult::Valid;
  if (udelta == 0) {
    result = SeqResult::Duplicate;
  } else if (udelta < kMaxDropout) {
    // In order, possibly with a gap; a smaller number means the 16-bit counter wrapped.
    if (seq < maxSeq_) cycles_ += kSeqMod;
    maxSeq_ = seq;
    seenWindow_ = udelta >= 64 ? 1 : (seenWindow_ << udelta) | 1;
  } else if (udelta <= kSeqMod - kMaxMisorder) {
    // A very large jump. Two in sequence mean the sender restarted (A.1).
    if (seq == badSeq_) {
      initSeq(seq);
      ++received_;
      updateJitter(rtpTimestamp, arrivalNanos);
      return SeqResult::Restarted;
    }
    badSeq_ = (std::uint32_t{seq} + 1) & (kSeqMod - 1);
    ++badJumps_;
    return SeqResult::BadJump;
  } else {
    // Within MAX_MISORDER behind the highest: duplicate or reordered.
    const auto back = static_cast<std::uint16_t>(maxSeq_ - seq);
    if (back < 64 && (seenWindow_ & (1ull << back)) != 0) {
      result = SeqResult::Duplicate;
    } else {
      if (back < 64) seenWindow_ |= 1ull << back;
      result = SeqResult::Reordered;
    }
  }
  // A.3: received counts late and duplicate packets too (lost may go negative).
  ++received_;
  if (result == SeqResult::Duplicate) {
    ++duplicates_;
  } else {
    if (result == SeqResult::Reordered) ++reordered_;
    updateJitter(rtpTimestamp, arrivalNanos);
  }
  return result;
}

std::int64_t ReceiveStats::expected() const noexcept {
  if (!validated()) return 0;
  return static_cast<std::int64_t>(extendedHighestSeq()) - static_cast<std::int64_t>(baseSeq_) + 1;
}

double ReceiveStats::lossPercent() const noexcept {
  const std::int64_t expectedNow = expected();
  const std::int64_t lost = cumulativeLost();
  if (expectedNow <= 0 || lost <= 0) return 0.0;
  return 100.0 * static_cast<double>(lost) / static_cast<double>(expectedNow);
}

void ReceiveStats::onSenderReport(std::uint64_t ntpTimestamp, std::uint64_t arrivalNanos) noexcept {
  lastSr_ = ntpMiddle32(ntpTimestamp);
  lastSrArrival_ = arrivalNanos;
}

ReportBlock ReceiveStats::makeReportBlock(std::uint32_t sourceSsrc, std::uint64_t nowNanos) noexcept {
  ReportBlock b;
  b.ssrc = sourceSsrc;
  if (validated()) {
    // A.3: cumulative loss and the fraction lost over the interval since the last report.
    const std::int64_t expectedNow = expected();
    b.cumulativeLost =
        static_cast<std::int32_t>(std::clamp<std::int64_t>(cumulativeLost(), -0x800000, 0x7fffff));
    const std::int64_t expectedInterval = expectedNow - static_cast<std::int64_t>(expectedPrior_);
    const std::int64_t receivedInterval = static_cast<std::int64_t>(received_ - receivedPrior_);
    expectedPrior_ = static_cast<std::uint64_t>(expectedNow);
    receivedPrior_ = received_;
    const std::int64_t lostInterval = expectedInterval - receivedInterval;
    b.fractionLost =
        (expectedInterval <= 0 || lostInterval <= 0)
            ? 0
            : static_cast<std::uint8_t>(std::min<std::int64_t>((lostInterval << 8) / expectedInterval, 255));
    b.extHighestSeq = extendedHighestSeq();
  }
  b.jitter = jitter();
  if (lastSr_ != 0) {
    b.lastSr = lastSr_;
    b.delaySinceLastSr = nowNanos >= lastSrArrival_ ? nanosToNtpShort(nowNanos - lastSrArrival_) : 0;
  }
  return b;
}

// --- Round-trip time ------------------------------------------------------------------------

std::optional<std::uint32_t> roundTripNtpShort(const ReportBlock& block,
                                               std::uint32_t arrivalNtpMiddle) noexcept {
  if (block.lastSr == 0) return std::nullopt;
  // 6.4.1: A - LSR - DLSR, modulo 2^32; a "negative" span means skew or a bogus block.
  const std::uint32_t sinceSr = arrivalNtpMiddle - block.lastSr;
  if (sinceSr >= 0x80000000u || sinceSr < block.delaySinceLastSr) return std::nullopt;
  return sinceSr - block.delaySinceLastSr;
}

bool RttEstimator::onReportBlock(const ReportBlock& block, std::uint32_t arrivalNtpMiddle) noexcept {
  const std::optional<std::uint32_t> rtt = roundTripNtpShort(block, arrivalNtpMiddle);
  if (!rtt) return false;
  lastMs_ = *rtt * 1000.0 / 65536.0;
  smoothedMs_ = samples_ == 0 ? lastMs_ : smoothedMs_ + (lastMs_ - smoothedMs_) / 8.0;
  ++samples_;
  return true;
}

// --- SenderStats ----------------------------------------------------------------------------

SenderStats::SenderStats(std::uint32_t clockRate) : clockRate_(clockRate) {
  if (clockRate == 0) throw std::invalid_argument("SenderStats: clock rate must be > 0");
}

void SenderStats::onSent(std::size_t payloadOctets, std::uint32_t rtpTimestamp,
                         std::uint64_t sendNanos) noexcept {
  ++packets_;
  octets_ += payloadOctets;
  lastRtpTimestamp_ = rtpTimestamp;
  lastSendNanos_ = sendNanos;
}

SenderInfo SenderStats::senderInfo(std::uint64_t ntpNow, std::uint64_t nowNanos) const noexcept {
  SenderInfo info;
  info.ntpTimestamp = ntpNow;
  const std::uint64_t elapsed = nowNanos >= lastSendNanos_ ? nowNanos - lastSendNanos_ : 0;
  info.rtpTimestamp = lastRtpTimestamp_ + static_cast<std::uint32_t>(scaleNanos(elapsed, clockRate_));
  info.packetCount = static_cast<std::uint32_t>(packets_);
  info.octetCount = static_cast<std::uint32_t>(octets_);
  return info;
}

}  // namespace medius::media::rtp
