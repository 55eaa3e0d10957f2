// RTCP (RFC 3550 section 6): a validating compound-packet parser and SR/RR + SDES CNAME
// builders.
//
// Parsing (RFC 3550 6.1, A.2): the compound packet is walked sub-packet by sub-packet; each
// length word is checked against what is left of the buffer (a lying length is an error,
// never a read past the end), every sub-packet must be version 2, the first must be SR or RR,
// only the last may carry padding. SR sender info and the report blocks of SR/RR are
// extracted; SDES (the first chunk's CNAME only), BYE, APP, XR, feedback and unknown types
// are skipped after their length is checked.
//
// Building: writeSenderReport / writeReceiverReport write SR or RR (0..31 report blocks)
// followed by an SDES chunk with our CNAME (RFC 3550 6.1: every compound packet carries a
// CNAME), with correct length words and 32-bit alignment, into a caller buffer.
//
// Contract: noexcept, no allocation; spans in the results point into the caller's buffer.
// Thread: pure functions; no shared state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace medius::media::rtp {

enum class RtcpType : std::uint8_t {
  SR = 200,
  RR = 201,
  SDES = 202,
  BYE = 203,
  APP = 204,
  RTPFB = 205,
  PSFB = 206,
  XR = 207,
};

enum class RtcpStatus : std::uint8_t {
  Ok,
  Empty,           // zero-length buffer
  TooShort,        // fewer than 4 octets left for a sub-packet header
  BadVersion,      // a sub-packet is not version 2
  BadLength,       // a length word points past the end of the buffer
  FirstNotReport,  // the first sub-packet is not SR or RR (RFC 3550 6.1)
  Truncated,       // an SR/RR/SDES body is shorter than its counts say
  BadPadding,      // padding on a non-last sub-packet, count 0, or larger than the body
};

const char* toString(RtcpStatus status) noexcept;

// RFC 3550 6.4.1 sender info.
struct SenderInfo {
  std::uint64_t ntpTimestamp = 0;  // 32.32 fixed point seconds since 1900
  std::uint32_t rtpTimestamp = 0;
  std::uint32_t packetCount = 0;
  std::uint32_t octetCount = 0;
};

// RFC 3550 6.4.1 report block.
struct ReportBlock {
  std::uint32_t ssrc = 0;              // the source this block is about
  std::uint8_t fractionLost = 0;       // fixed point /256 since the previous report
  std::int32_t cumulativeLost = 0;     // 24-bit signed (duplicates can make it negative)
  std::uint32_t extHighestSeq = 0;     // cycles << 16 | highest sequence
  std::uint32_t jitter = 0;            // interarrival jitter, timestamp units
  std::uint32_t lastSr = 0;            // LSR: middle 32 bits of the last SR's NTP time, 0 = none
  std::uint32_t delaySinceLastSr = 0;  // DLSR, 1/65536 s
};

inline constexpr std::size_t kMaxReportBlocks = 31;  // 5-bit RC field

// One sub-packet of a compound packet.
struct RtcpPacketView {
  std::uint8_t type = 0;
  std::uint8_t count = 0;  // RC / SC / FMT field (5 bits)
  bool padding = false;
  // Body after the 4-octet header, padding removed.
  std::span<const std::uint8_t> body;
};

// Walks a compound packet that validateRtcp() accepted; next() is false at the end (and on
// any malformed sub-packet, so it is safe on unvalidated input too).
class RtcpIterator {
 public:
  explicit RtcpIterator(std::span<const std::uint8_t> compound) noexcept : rest_(compound) {}
  bool next(RtcpPacketView& out) noexcept;

 private:
  std::span<const std::uint8_t> rest_;
};

// What one compound packet reports. Report blocks from all SR/RR sub-packets are collected
// up to kMaxReportBlocks; droppedBlocks counts the rest.
struct RtcpInfo {
  bool hasSenderReport = false;
  std::uint32_t senderSsrc = 0;  // SSRC of the first SR/RR
  SenderInfo sender;             // valid when hasSenderReport
  std::array<ReportBlock, kMaxReportBlocks> blocks{};
  std::size_t blockCount = 0;
  std::size_t droppedBlocks = 0;
  // CNAME of the first SDES chunk that has one (points into the buffer), empty if none.
  std::string_view cname;
  bool hasBye = false;
  std::size_t packetCount = 0;  // sub-packets in the compound packet
  std::size_t otherCount = 0;   // APP, XR, feedback and unknown types skipped

  std::span<const ReportBlock> reportBlocks() const noexcept { return {blocks.data(), blockCount}; }
};

// Validates the structure (lengths, version, first type, padding) without extracting.
RtcpStatus validateRtcp(std::span<const std::uint8_t> compound) noexcept;

// Validates and extracts; `out` is reset first and meaningful only when Ok.
RtcpStatus parseRtcp(std::span<const std::uint8_t> compound, RtcpInfo& out) noexcept;

// Octets writeSenderReport / writeReceiverReport need for n blocks and this CNAME.
std::size_t rtcpReportSize(bool senderReport, std::size_t blockCount, std::size_t cnameSize) noexcept;

// Writes SR(ssrc, sender, blocks) + SDES(ssrc, CNAME) at the start of `out`; returns the
// octets written, or 0 (nothing useful written) when more than 31 blocks are given, the
// CNAME is empty or longer than 255 octets, or `out` is too small (see rtcpReportSize).
std::size_t writeSenderReport(std::span<std::uint8_t> out, std::uint32_t ssrc, const SenderInfo& sender,
                              std::span<const ReportBlock> blocks, std::string_view cname) noexcept;

// The same with an RR (no sender info).
std::size_t writeReceiverReport(std::span<std::uint8_t> out, std::uint32_t ssrc,
                                std::span<const ReportBlock> blocks, std::string_view cname) noexcept;

}  // namespace medius::media::rtp
