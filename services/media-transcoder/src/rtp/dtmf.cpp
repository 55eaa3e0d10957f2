#include "medius/media/rtp/dtmf.hpp"

#include "bytes.hpp"

namespace medius::media::rtp {

namespace {
constexpr std::uint64_t kMaxDuration = 0xffff;
}  // namespace

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
  // Segment k covers (k * 0xFFFF, (k + 1) * 0xFFFF]; a duration of exactly 0xFFFF stays in
  // segment 0 (2.5.1.3: the packet reporting the maximum ends the segment).
  const std::uint64_t segment = outTotal == 0 ? 0 : (outTotal - 1) / kMaxDuration;
  std::size_t n = 0;
  auto emit = [&](std::uint64_t seg, std::uint64_t duration, bool endBit, bool markerBit) {
    MappedEvent& m = out[n++];
    m.timestamp = outStart_ + static_cast<std::uint32_t>(seg * kMaxDuration);
    m.marker = markerBit;
    TelephoneEvent o = ev;
    o.end = endBit;
    o.duration = static_cast<std::uint16_t>(duration);
    writeTelephoneEvent(m.payload, o);
  };
  if (segment > outSegment_) {
    // Close the previous output segment with the maximum duration and no E bit.
    emit(segment - 1, kMaxDuration, false, false);
    outSegment_ = segment;
  }
  const bool first = segment == 0 && !sameSegment && !nextSegment;
  emit(segment, outTotal - segment * kMaxDuration, ev.end, first && marker);
  result.count = n;
  return result;
}

}  // namespace medius::media::rtp
