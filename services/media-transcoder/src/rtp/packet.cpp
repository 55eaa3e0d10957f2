#include "medius/media/rtp/packet.hpp"

#include "bytes.hpp"

namespace medius::media::rtp {

using detail::load16;
using detail::load32;

const char* toString(RtpStatus status) noexcept {
  switch (status) {
    case RtpStatus::Ok:
      return "ok";
    case RtpStatus::TooShort:
      return "too short";
    case RtpStatus::BadVersion:
      return "bad version";
    case RtpStatus::CsrcOverrun:
      return "CSRC list past the end";
    case RtpStatus::ExtensionOverrun:
      return "header extension past the end";
    case RtpStatus::BadPadding:
      return "bad padding";
  }
  return "unknown";
}

std::uint32_t RtpView::csrc(std::size_t i) const noexcept {
  if (i >= csrcCount) return 0;
  return load32(packet.data() + kRtpHeaderSize + 4 * i);
}

RtpStatus parseRtp(std::span<const std::uint8_t> packet, RtpView& out) noexcept {
  const std::size_t size = packet.size();
  if (size < kRtpHeaderSize) return RtpStatus::TooShort;
  const std::uint8_t* p = packet.data();
  if ((p[0] >> 6) != 2) return RtpStatus::BadVersion;
  RtpView v;
  v.version = 2;
  v.padding = (p[0] & 0x20) != 0;
  v.extension = (p[0] & 0x10) != 0;
  v.csrcCount = p[0] & 0x0f;
  v.marker = (p[1] & 0x80) != 0;
  v.payloadType = p[1] & 0x7f;
  v.sequence = load16(p + 2);
  v.timestamp = load32(p + 4);
  v.ssrc = load32(p + 8);
  std::size_t header = kRtpHeaderSize + 4 * std::size_t{v.csrcCount};
  if (header > size) return RtpStatus::CsrcOverrun;
  if (v.extension) {
    // RFC 3550 5.3.1: 16-bit profile-defined word, 16-bit length in 32-bit words
    // excluding the 4-octet extension header itself.
    if (header + 4 > size) return RtpStatus::ExtensionOverrun;
    v.extensionProfile = load16(p + header);
    const std::size_t extWords = load16(p + header + 2);
    const std::size_t extBytes = 4 * extWords;
    if (header + 4 + extBytes > size) return RtpStatus::ExtensionOverrun;
    v.extensionData = packet.subspan(header + 4, extBytes);
    header += 4 + extBytes;
  }
  std::size_t end = size;
  if (v.padding) {
    // RFC 3550 5.1: the last octet counts the padding octets, itself included; the
    // padding lies after the header, so it cannot exceed what follows the header.
    const std::uint8_t count = p[size - 1];
    if (count == 0 || count > size - header) return RtpStatus::BadPadding;
    v.paddingSize = count;
    end -= count;
  }
  v.headerSize = header;
  v.payload = packet.subspan(header, end - header);
  v.packet = packet;
  out = v;
  return RtpStatus::Ok;
}

std::optional<RtpView> parseRtp(std::span<const std::uint8_t> packet) noexcept {
  RtpView v;
  if (parseRtp(packet, v) != RtpStatus::Ok) return std::nullopt;
  return v;
}

std::size_t writeRtpHeader(std::span<std::uint8_t> out, const RtpHeader& header) noexcept {
  if (out.size() < kRtpHeaderSize || header.payloadType > 127) return 0;
  std::uint8_t* p = out.data();
  p[0] = 0x80;  // V=2, P=0, X=0, CC=0
  p[1] = static_cast<std::uint8_t>((header.marker ? 0x80 : 0) | header.payloadType);
  detail::store16(p + 2, header.sequence);
  detail::store32(p + 4, header.timestamp);
  detail::store32(p + 8, header.ssrc);
  return kRtpHeaderSize;
}

bool setPayloadType(std::span<std::uint8_t> packet, std::uint8_t payloadType) noexcept {
  if (packet.size() < kRtpHeaderSize || payloadType > 127) return false;
  packet[1] = static_cast<std::uint8_t>((packet[1] & 0x80) | payloadType);
  return true;
}

bool setMarker(std::span<std::uint8_t> packet, bool marker) noexcept {
  if (packet.size() < kRtpHeaderSize) return false;
  packet[1] = static_cast<std::uint8_t>((packet[1] & 0x7f) | (marker ? 0x80 : 0));
  return true;
}

bool setSequence(std::span<std::uint8_t> packet, std::uint16_t sequence) noexcept {
  if (packet.size() < kRtpHeaderSize) return false;
  detail::store16(packet.data() + 2, sequence);
  return true;
}

bool setTimestamp(std::span<std::uint8_t> packet, std::uint32_t timestamp) noexcept {
  if (packet.size() < kRtpHeaderSize) return false;
  detail::store32(packet.data() + 4, timestamp);
  return true;
}

bool setSsrc(std::span<std::uint8_t> packet, std::uint32_t ssrc) noexcept {
  if (packet.size() < kRtpHeaderSize) return false;
  detail::store32(packet.data() + 8, ssrc);
  return true;
}

}  // namespace medius::media::rtp
