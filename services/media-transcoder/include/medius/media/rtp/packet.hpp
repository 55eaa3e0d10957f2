// RTP packets (RFC 3550 section 5.1): a validating, non-owning header view, the RFC 5761
// RTP/RTCP demultiplexing test, a 12-byte header writer and in-place header rewrites.
//
// Contract: every function here is noexcept, allocates nothing and never reads or writes
// outside the span it is given; bad input gives a status (or false / 0), never UB.
// Ownership: RtpView points into the caller's buffer and is valid as long as that buffer.
// Thread: pure functions on caller buffers; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace medius::media::rtp {

inline constexpr std::size_t kRtpHeaderSize = 12;  // fixed header, no CSRC (RFC 3550 5.1)

enum class RtpStatus : std::uint8_t {
  Ok,
  TooShort,          // fewer than 12 octets
  BadVersion,        // version field is not 2
  CsrcOverrun,       // CC * 4 octets of CSRC do not fit
  ExtensionOverrun,  // the header extension (RFC 3550 5.3.1) does not fit
  BadPadding,        // P set but the padding count is 0 or larger than the payload
};

const char* toString(RtpStatus status) noexcept;

// A parsed RTP packet. Fields are in host order.
struct RtpView {
  std::uint8_t version = 0;
  bool padding = false;
  bool extension = false;
  bool marker = false;
  std::uint8_t payloadType = 0;
  std::uint16_t sequence = 0;
  std::uint32_t timestamp = 0;
  std::uint32_t ssrc = 0;
  std::uint8_t csrcCount = 0;
  // Header extension (RFC 3550 5.3.1): the 16-bit profile word and the extension data
  // (after the 4-octet extension header); empty when extension is false.
  std::uint16_t extensionProfile = 0;
  std::span<const std::uint8_t> extensionData;
  // Octets of padding at the end (the count in the last octet), 0 when padding is false.
  std::uint8_t paddingSize = 0;
  // Header size: 12 + 4 * CC (+ 4 + extension data).
  std::size_t headerSize = 0;
  // The payload, without header and padding.
  std::span<const std::uint8_t> payload;
  // The whole packet as given.
  std::span<const std::uint8_t> packet;

  // The i-th CSRC (i < csrcCount; 0 otherwise).
  std::uint32_t csrc(std::size_t i) const noexcept;
};

// Validates and parses; `out` is filled only when the result is Ok.
RtpStatus parseRtp(std::span<const std::uint8_t> packet, RtpView& out) noexcept;
// The same, as an optional for callers that only count failures.
std::optional<RtpView> parseRtp(std::span<const std::uint8_t> packet) noexcept;

// RFC 5761 section 4: on a multiplexed port, a packet whose second octet is 192..223
// (RTCP packet types 192-223 = RTP marker + payload type 64..95) is RTCP. False for
// packets shorter than 2 octets (they are neither, and RTP parsing rejects them).
inline bool isRtcp(std::span<const std::uint8_t> packet) noexcept {
  return packet.size() >= 2 && packet[1] >= 192 && packet[1] <= 223;
}

// The fields of a generated packet's fixed header (version 2, no padding, extension or CSRC).
struct RtpHeader {
  std::uint8_t payloadType = 0;  // 0..127
  bool marker = false;
  std::uint16_t sequence = 0;
  std::uint32_t timestamp = 0;
  std::uint32_t ssrc = 0;
};

// Writes the 12-octet header at the start of `out`; returns 12, or 0 when `out` is
// shorter than 12 or payloadType > 127 (nothing written then).
std::size_t writeRtpHeader(std::span<std::uint8_t> out, const RtpHeader& header) noexcept;

// In-place rewrites of a packet's fixed header (e.g. relaying with another SSRC or payload
// type). Each returns false, changing nothing, when the buffer is shorter than 12 octets
// or (setPayloadType) the type is > 127. They do not validate the rest of the packet.
bool setPayloadType(std::span<std::uint8_t> packet, std::uint8_t payloadType) noexcept;
bool setMarker(std::span<std::uint8_t> packet, bool marker) noexcept;
bool setSequence(std::span<std::uint8_t> packet, std::uint16_t sequence) noexcept;
bool setTimestamp(std::span<std::uint8_t> packet, std::uint32_t timestamp) noexcept;
bool setSsrc(std::span<std::uint8_t> packet, std::uint32_t ssrc) noexcept;

}  // namespace medius::media::rtp
