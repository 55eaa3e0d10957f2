// RFC 4733 telephone-events: the 4-octet payload (section 2.3) and the mapping of an event
// stream between two legs with different payload types and RTP clock rates (8 kHz PCMU <->
// 48 kHz Opus).
//
// Mapping rules (RFC 4733 2.5):
//   - all packets of one event keep one RTP timestamp (the event start), mapped through the
//     caller's RtpClockMap (the same mapping as the leg's audio, so the event lines up);
//   - durations are rescaled (rounded) to the output clock;
//   - an event longer than 0xFFFF output units is segmented (2.5.1.3): a packet with
//     duration 0xFFFF and no E bit ends a segment, the next segment starts at the old
//     timestamp + 0xFFFF without the M bit, its duration counted from there;
//   - input segments of a long event are joined back (a continuation starts exactly where
//     the previous segment ended, with the same event code);
//   - every input packet gives at least one output packet: the redundant end packets (E set,
//     sent three times) and retransmissions stay, with identical content;
//   - M (marker) is kept on the first packet of an event only.
//
// Contract: noexcept, no allocation. Thread: one mapper per direction, owned by the worker.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace medius::media::rtp {

// Event codes 0-9 are the digits, 10 = *, 11 = #, 12-15 = A-D, 16 = flash (RFC 4733 3.2).
struct TelephoneEvent {
  std::uint8_t event = 0;
  bool end = false;
  std::uint8_t volume = 0;     // 0..63, -dBm0
  std::uint16_t duration = 0;  // in RTP timestamp units since the event (segment) start
};

// The event code of a DTMF digit ('0'-'9', '*', '#', 'A'-'D'); -1 for anything else.
int dtmfEventCode(char digit) noexcept;

enum class DtmfStatus : std::uint8_t { Ok, TooShort };

// Parses the first 4 octets (a payload may be longer with RFC 2198 redundancy stripped
// elsewhere; extra octets are ignored). TooShort under 4 octets.
DtmfStatus parseTelephoneEvent(std::span<const std::uint8_t> payload, TelephoneEvent& out) noexcept;
// Writes 4 octets; returns 4, or 0 when `out` is too short or volume > 63. R is sent as 0.
std::size_t writeTelephoneEvent(std::span<std::uint8_t> out, const TelephoneEvent& event) noexcept;

// A linear map between two RTP clocks anchored at one instant: out = outAnchor +
// (in - inAnchor) * outRate / inRate, on signed 32-bit differences (wrap-safe for spans
// under 2^31 input units).
struct RtpClockMap {
  std::uint32_t inRate = 8000;
  std::uint32_t outRate = 8000;
  std::uint32_t inAnchor = 0;
  std::uint32_t outAnchor = 0;

  std::uint32_t map(std::uint32_t inTimestamp) const noexcept;
  // A duration (not a timestamp) in output units, rounded to nearest.
  std::uint64_t scale(std::uint64_t inDuration) const noexcept;
};

// One output packet: RTP timestamp and marker for the header, the 4-octet payload.
struct MappedEvent {
  std::uint32_t timestamp = 0;
  bool marker = false;
  std::array<std::uint8_t, 4> payload{};
};

struct MapResult {
  DtmfStatus status = DtmfStatus::Ok;
  std::size_t count = 0;  // MappedEvents written (0 on error or when `out` is too small)
};

class TelephoneEventMapper {
 public:
  // Output packets one input packet can produce (segment end + new segment).
  static constexpr std::size_t kMaxOutput = 2;

  // Maps one received telephone-event packet (its RTP timestamp, marker and payload).
  // `out` needs kMaxOutput entries.
  MapResult map(std::uint32_t inTimestamp, bool marker, std::span<const std::uint8_t> payload,
                const RtpClockMap& clock, std::span<MappedEvent> out) noexcept;

  void reset() noexcept { active_ = false; }

 private:
  bool active_ = false;  // an event is in progress (or just ended: end packets repeat)
  bool ended_ = false;
  std::uint8_t event_ = 0;
  std::uint32_t inStart_ = 0;    // input timestamp of the event's first segment
  std::uint32_t inSegment_ = 0;  // input timestamp of the current input segment
  std::uint16_t inSegmentDuration_ = 0;
  std::uint32_t outStart_ = 0;    // output timestamp of the event start
  std::uint64_t outSegment_ = 0;  // index of the last output segment emitted
};

// Events we originate (in-band DTMF detected on a leg without telephone-event, sent to a
// leg with it), packetized as RFC 4733 2.5.1 asks: the first packet with the M bit, updates
// with the duration so far, all with the event's start timestamp; the end packet (E bit)
// sent three times (2.5.1.4) with the same content; an event longer than 0xFFFF units is
// segmented as TelephoneEventMapper does (2.5.1.3). Timestamps and durations are in the
// target's event clock; the caller writes the RTP headers (PT, sequence numbers, SSRC).
//
// Contract: noexcept, no allocation. Thread: one sender per direction, owned by the worker.
class TelephoneEventSender {
 public:
  // Output packets one call can produce (an update crossing a segment boundary).
  static constexpr std::size_t kMaxOutput = 2;
  // Volume sent (-dBm0): spandsp's detector does not give one per digit; a typical level.
  static constexpr std::uint8_t kVolume = 10;

  // Starts `event` (0..255) at `timestamp`: one packet (M set), duration `duration`. An
  // event still in progress is abandoned (the caller ends it first); pending end repeats
  // of the previous one are dropped.
  std::size_t start(std::uint8_t event, std::uint32_t timestamp, std::uint64_t duration,
                    std::span<MappedEvent> out) noexcept;
  // The event lasts `duration` units so far (never less than already sent): 1 or 2 packets;
  // 0 when no event is in progress.
  std::size_t update(std::uint64_t duration, std::span<MappedEvent> out) noexcept;
  // The event ended after `duration` units: the end packet (E set), whose two repeats
  // repeatEnd() gives; 0 when no event is in progress.
  std::size_t end(std::uint64_t duration, std::span<MappedEvent> out) noexcept;
  // The next retransmission of the last end packet (two after end()), or 0.
  std::size_t repeatEnd(std::span<MappedEvent> out) noexcept;

  bool active() const noexcept { return active_; }
  void reset() noexcept {
    active_ = false;
    endRepeats_ = 0;
  }

 private:
  std::size_t emit(std::uint64_t duration, bool end, std::span<MappedEvent> out) noexcept;

  bool active_ = false;
  std::uint8_t event_ = 0;
  std::uint32_t start_ = 0;
  std::uint64_t duration_ = 0;  // the largest duration sent
  std::uint64_t segment_ = 0;   // index of the last segment emitted
  MappedEvent lastEnd_{};
  int endRepeats_ = 0;
};

}  // namespace medius::media::rtp
