// RTP statistics (RFC 3550): receive statistics of one incoming source (sequence
// validation A.1, loss A.3, interarrival jitter A.8) that produce RTCP report blocks, the
// round-trip time from report blocks about our own stream (6.4.1), and sender counters for
// our SRs. NTP helpers convert between Unix time and the RTCP 64-bit NTP format.
//
// Time is injected: every call that needs "now" takes it as an argument (nanoseconds of a
// monotonic clock for arrival times, NTP timestamps for wall-clock fields), so nothing here
// reads a clock and tests replay schedules exactly.
//
// Contract: update methods are noexcept and allocate nothing; constructors throw
// std::invalid_argument on a zero clock rate.
// Thread: one object per source, used by the worker thread that owns the leg.
#pragma once

#include <cstdint>
#include <optional>

#include "medius/media/rtp/rtcp.hpp"

namespace medius::media::rtp {

// --- NTP time (RFC 3550 4) -------------------------------------------------------------

// Unix time in nanoseconds -> 64-bit NTP timestamp (seconds since 1900 in 32.32 fixed point).
std::uint64_t ntpFromUnixNanos(std::uint64_t unixNanos) noexcept;
// The middle 32 bits (16.16 seconds) used by LSR, DLSR and round-trip computations.
inline std::uint32_t ntpMiddle32(std::uint64_t ntp) noexcept { return static_cast<std::uint32_t>(ntp >> 16); }
// A duration in nanoseconds in 1/65536 s units (DLSR), saturating at 2^32 - 1.
std::uint32_t nanosToNtpShort(std::uint64_t nanos) noexcept;

// --- Receive statistics -----------------------------------------------------------------

// What receive() decided about one packet.
enum class SeqResult : std::uint8_t {
  Valid,      // counted
  Probation,  // counted as a candidate while a new source is being validated (A.1)
  Duplicate,  // a sequence number already received within the last 64 (counted, per A.3)
  Reordered,  // older than the highest seen but new: counted, jitter updated
  BadJump,    // a large jump: dropped; a second consecutive one restarts the source (A.1)
  Restarted,  // the source restarted (after BadJump); stats reset, packet counted
};

class ReceiveStats {
 public:
  // A.1 constants: MIN_SEQUENTIAL packets to leave probation, MAX_DROPOUT / MAX_MISORDER.
  static constexpr int kMinSequential = 2;
  static constexpr std::uint16_t kMaxDropout = 3000;
  static constexpr std::uint16_t kMaxMisorder = 100;

  // clockRate: the RTP clock of the payload (8000 for PCMU, 48000 for Opus ...).
  explicit ReceiveStats(std::uint32_t clockRate);

  // One received RTP packet: its sequence number and timestamp, and when it arrived
  // (monotonic nanoseconds). Updates counters, the loss window and jitter (A.1, A.8).
  SeqResult receive(std::uint16_t sequence, std::uint32_t rtpTimestamp, std::uint64_t arrivalNanos) noexcept;

  // An SR from this source arrived: remember its NTP time for LSR/DLSR.
  void onSenderReport(std::uint64_t ntpTimestamp, std::uint64_t arrivalNanos) noexcept;

  // Builds the report block about this source for our next SR/RR, and starts a new
  // interval for fraction lost (A.3). nowNanos: same clock as arrivalNanos.
  ReportBlock makeReportBlock(std::uint32_t sourceSsrc, std::uint64_t nowNanos) noexcept;

  // A.3 totals.
  std::uint32_t extendedHighestSeq() const noexcept { return cycles_ + maxSeq_; }
  std::int64_t expected() const noexcept;
  std::int64_t cumulativeLost() const noexcept { return expected() - static_cast<std::int64_t>(received_); }
  std::uint64_t received() const noexcept { return received_; }
  // Loss over the whole stream in percent (0 when nothing is expected or loss is negative):
  // the Ppl input of the E-model at the end of a call.
  double lossPercent() const noexcept;
  std::uint64_t duplicates() const noexcept { return duplicates_; }
  std::uint64_t reordered() const noexcept { return reordered_; }
  std::uint64_t badJumps() const noexcept { return badJumps_; }
  bool validated() const noexcept { return probation_ == 0 && started_; }

  // A.8 interarrival jitter in timestamp units, and in milliseconds for this clock rate.
  std::uint32_t jitter() const noexcept { return jitterQ4_ >> 4; }
  double jitterMs() const noexcept { return 1000.0 * (jitterQ4_ / 16.0) / clockRate_; }
  std::uint32_t clockRate() const noexcept { return clockRate_; }

 private:
  void initSeq(std::uint16_t seq) noexcept;
  void updateJitter(std::uint32_t rtpTimestamp, std::uint64_t arrivalNanos) noexcept;
  std::uint32_t toRtpUnits(std::uint64_t nanos) const noexcept;

  std::uint32_t clockRate_;
  bool started_ = false;
  std::uint16_t maxSeq_ = 0;
  std::uint32_t cycles_ = 0;  // count of wraps << 16
  std::uint32_t baseSeq_ = 0;
  std::uint32_t badSeq_ = 0;  // RTP_SEQ_MOD + 1 = none
  int probation_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t expectedPrior_ = 0;
  std::uint64_t receivedPrior_ = 0;
  std::uint64_t seenWindow_ = 0;  // bit i: maxSeq_ - i received (duplicate detection)
  std::uint64_t duplicates_ = 0;
  std::uint64_t reordered_ = 0;
  std::uint64_t badJumps_ = 0;
  // A.8: transit of the previous packet and jitter scaled by 16.
  bool haveTransit_ = false;
  std::uint32_t transit_ = 0;
  std::uint32_t jitterQ4_ = 0;
  // LSR / DLSR.
  std::uint32_t lastSr_ = 0;
  std::uint64_t lastSrArrival_ = 0;
};

// --- Round-trip time (RFC 3550 6.4.1) ---------------------------------------------------

// rtt = A - LSR - DLSR in 1/65536 s, A = the middle 32 bits of the NTP time at which the
// report block arrived. nullopt when LSR is 0 (no SR received yet by the peer) or the result
// would be negative (clock skew or a bogus block).
std::optional<std::uint32_t> roundTripNtpShort(const ReportBlock& block,
                                               std::uint32_t arrivalNtpMiddle) noexcept;

// Keeps the last and a smoothed (1/8 EWMA, like TCP's SRTT) round-trip time.
class RttEstimator {
 public:
  // Feeds a report block about our SSRC; false (nothing changed) when no RTT follows.
  bool onReportBlock(const ReportBlock& block, std::uint32_t arrivalNtpMiddle) noexcept;
  bool valid() const noexcept { return samples_ > 0; }
  double lastMs() const noexcept { return lastMs_; }
  double smoothedMs() const noexcept { return smoothedMs_; }
  std::uint64_t samples() const noexcept { return samples_; }

 private:
  double lastMs_ = 0;
  double smoothedMs_ = 0;
  std::uint64_t samples_ = 0;
};

// --- Sender statistics (RFC 3550 6.4.1 sender info) -------------------------------------

class SenderStats {
 public:
  explicit SenderStats(std::uint32_t clockRate);

  // One RTP packet sent: payloadOctets excludes header and padding (6.4.1 octet count).
  void onSent(std::size_t payloadOctets, std::uint32_t rtpTimestamp, std::uint64_t sendNanos) noexcept;

  // Sender info for an SR sent now: the RTP timestamp is the last sent one extrapolated to
  // now at the clock rate (6.4.1: "the same time as the NTP timestamp"). Counts wrap mod 2^32.
  SenderInfo senderInfo(std::uint64_t ntpNow, std::uint64_t nowNanos) const noexcept;

  std::uint64_t packets() const noexcept { return packets_; }
  std::uint64_t octets() const noexcept { return octets_; }
  bool hasSent() const noexcept { return packets_ > 0; }

 private:
  std::uint32_t clockRate_;
  std::uint64_t packets_ = 0;
  std::uint64_t octets_ = 0;
  std::uint32_t lastRtpTimestamp_ = 0;
  std::uint64_t lastSendNanos_ = 0;
};

}  // namespace medius::media::rtp
