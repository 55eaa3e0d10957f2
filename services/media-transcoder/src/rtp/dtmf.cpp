#include "medius/media/rtp/dtmf.hpp"

#include <algorithm>

#include "bytes.hpp"

namespace medius::media::rtp {

namespace {
constexpr std::uint64_t kMaxDuration = 0xffff;

// The packets that report an event's `total` duration since its start (output units), as
// segments of at most 0xFFFF (RFC 4733 2.5.1.3): segment k covers (k * 0xFFFF, (k + 1) *
// 0xFFFF], a duration of exactly 0xFFFF stays in segment 0 (the packet reporting the
// maximum ends the segment). When the total moved into a later segment than `lastSegment`,
// the previous one is closed first with the maximum duration and no E bit. Writes 1 or 2
// entries of `out` (which holds 2); returns how many.
std::size_t emitSegmented(std::uint32_t start, std::uint64_t total, std::uint64_t& lastSegment,
                          TelephoneEvent event, bool end, bool marker, std::span<MappedEvent> out) noexcept {
  const std::uint64_t segment = total == 0 ? 0 : (total - 1) / kMaxDuration;
  std::size_t n = 0;
  auto write = [&](std::uint64_t seg, std::uint64_t duration, bool endBit, bool markerBit) {
    MappedEvent& m = out[n++];
    m.timestamp = start + static_cast<std::uint32_t>(seg * kMaxDuration);
    m.marker = markerBit;
    TelephoneEvent o = event;
    o.end = endBit;
    o.duration = static_cast<std::uint16_t>(duration);
    writeTelephoneEvent(m.payload, o);
  };
  if (segment > lastSegment) {
    write(segment - 1, kMaxDuration, false, false);
    lastSegment = segment;
  }
  write(segment, total - segment * kMaxDuration, end, marker);
  return n;
}
}  // namespace

int dtmfEventCode(char digit) noexcept {
  if (digit >= '0' && digit <= '9') return digit - '0';
  if (digit == '*') return 10;
  if (digit == '#') return 11;
  if (digit >= 'A' && digit <= 'D') return 12 + (digit - 'A');
  return -1;
}

DtmfStatus parseTelephoneEvent(std::span<const std::uint8_t> payload, TelephoneEvent& out) noexcept {
  if (payload.size() < 4) return DtmfStatus::TooShort;
  // RFC 4733 2.3: event (8) | E (1) R (1) volume (6) | duration (16).
  out.event = payload[0];
  out.end = (payload[1] & 0x80) != 0;
  out.volume = payload[1] & 0x3f;
  out.duration = detail::load16(payload.data() + 2);
  return DtmfStatus::Ok;
}

std::size_t writeTelephoneEvent(std::span<std::uint8_t> out, const TelephoneEvent& event) noexcept {
  if (out.size() < 4 || event.volume > 63) return 0;
  out[0] = event.event;
  out[1] = static_cast<std::uint8_t>((event.end ? 0x80 : 0) | event.volume);
  detail::store16(out.data() + 2, event.duration);
  return 4;
}

std::uint32_t RtpClockMap::map(std::uint32_t inTimestamp) const noexcept {
  const auto delta = static_cast<std::int64_t>(static_cast<std::int32_t>(inTimestamp - inAnchor));
  const std::int64_t scaled =
      inRate == 0 ? 0 : delta * static_cast<std::int64_t>(outRate) / static_cast<std::int64_t>(inRate);
  return outAnchor + static_cast<std::uint32_t>(scaled);
}

std::uint64_t RtpClockMap::scale(std::uint64_t inDuration) const noexcept {
  if (inRate == 0) return 0;
  return (inDuration * outRate + inRate / 2) / inRate;
}

MapResult TelephoneEventMapper::map(std::uint32_t inTimestamp, bool marker,
                                    std::span<const std::uint8_t> payload, const RtpClockMap& clock,
                                    std::span<MappedEvent> out) noexcept {
  MapResult result;
  TelephoneEvent ev;
  result.status = parseTelephoneEvent(payload, ev);
  if (result.status != DtmfStatus::Ok) return result;
  if (out.size() < kMaxOutput) return result;

  // Which event does this packet belong to? Same timestamp as the current input segment:
  // the same event (updates, redundant end packets). The next input segment of a long
  // event (2.5.1.3): same code, starts where a 0xFFFF segment ended, previous not ended.
  const bool sameSegment = active_ && inTimestamp == inSegment_ && ev.event == event_;
  const bool nextSegment = active_ && !ended_ && ev.event == event_ && inSegmentDuration_ == kMaxDuration &&
                           inTimestamp == inSegment_ + static_cast<std::uint32_t>(kMaxDuration);
  if (!sameSegment && !nextSegment) {
    active_ = true;
    ended_ = false;
    event_ = ev.event;
    inStart_ = inTimestamp;
    outStart_ = clock.map(inTimestamp);
    outSegment_ = 0;
  }
  if (!sameSegment) inSegment_ = inTimestamp;
  if (nextSegment || ev.duration >= inSegmentDuration_ || !sameSegment) inSegmentDuration_ = ev.duration;
  ended_ = ended_ || ev.end;

  // Total duration since the event start, in output units.
  const std::uint64_t inTotal = std::uint64_t{inTimestamp - inStart_} + ev.duration;
  const std::uint64_t outTotal = clock.scale(inTotal);
  const bool first = outTotal <= kMaxDuration && !sameSegment && !nextSegment;
  result.count = emitSegmented(outStart_, outTotal, outSegment_, ev, ev.end, first && marker, out);
  return result;
}

std::size_t TelephoneEventSender::emit(std::uint64_t duration, bool end, std::span<MappedEvent> out) noexcept {
  if (out.size() < kMaxOutput) return 0;
  const bool first = !active_;
  duration_ = std::max(duration_, duration);
  TelephoneEvent ev;
  ev.event = event_;
  ev.volume = kVolume;
  active_ = true;
  return emitSegmented(start_, duration_, segment_, ev, end, first, out);
}

std::size_t TelephoneEventSender::start(std::uint8_t event, std::uint32_t timestamp, std::uint64_t duration,
                                        std::span<MappedEvent> out) noexcept {
  active_ = false;
  endRepeats_ = 0;
  event_ = event;
  start_ = timestamp;
  duration_ = 0;
  segment_ = 0;
  return emit(duration, false, out);
}

std::size_t TelephoneEventSender::update(std::uint64_t duration, std::span<MappedEvent> out) noexcept {
  if (!active_) return 0;
  return emit(duration, false, out);
}

std::size_t TelephoneEventSender::end(std::uint64_t duration, std::span<MappedEvent> out) noexcept {
  if (!active_) return 0;
  const std::size_t n = emit(duration, true, out);
  active_ = false;
  if (n > 0) {
    lastEnd_ = out[n - 1];
    endRepeats_ = 2;
  }
  return n;
}

std::size_t TelephoneEventSender::repeatEnd(std::span<MappedEvent> out) noexcept {
  if (endRepeats_ == 0 || out.empty()) return 0;
  --endRepeats_;
  out[0] = lastEnd_;
  return 1;
}

}  // namespace medius::media::rtp
