#include "medius/media/rtp/rtcp.hpp"

#include <algorithm>
#include <cstring>

#include "bytes.hpp"

namespace medius::media::rtp {

using detail::load24;
using detail::load32;
using detail::store16;
using detail::store24;
using detail::store32;

namespace {

constexpr std::size_t kHeader = 4;
constexpr std::size_t kBlockSize = 24;
constexpr std::size_t kSenderInfoSize = 20;
constexpr std::uint8_t kSdesCname = 1;

// One sub-packet's header and bounds (RFC 3550 6.4.1: length = 32-bit words - 1).
RtcpStatus splitOne(std::span<const std::uint8_t> rest, bool mustBeLast, RtcpPacketView& out,
                    std::size_t& size) noexcept {
  if (rest.size() < kHeader) return RtcpStatus::TooShort;
  const std::uint8_t* p = rest.data();
  if ((p[0] >> 6) != 2) return RtcpStatus::BadVersion;
  size = (std::size_t{detail::load16(p + 2)} + 1) * 4;
  if (size > rest.size()) return RtcpStatus::BadLength;
  out.type = p[1];
  out.count = p[0] & 0x1f;
  out.padding = (p[0] & 0x20) != 0;
  std::size_t bodySize = size - kHeader;
  if (out.padding) {
    // RFC 3550 6.4.1: padding only on the last packet of the compound; the last octet
    // counts the padding octets, itself included.
    const std::uint8_t count = p[size - 1];
    if (!mustBeLast || count == 0 || count > bodySize) return RtcpStatus::BadPadding;
    bodySize -= count;
  }
  out.body = rest.subspan(kHeader, bodySize);
  return RtcpStatus::Ok;
}

// The length of the sub-packet starting at rest (0 when the header does not even fit).
bool isLast(std::span<const std::uint8_t> rest) noexcept {
  if (rest.size() < kHeader) return true;
  const std::size_t size = (std::size_t{detail::load16(rest.data() + 2)} + 1) * 4;
  return size >= rest.size();
}

ReportBlock readBlock(const std::uint8_t* p) noexcept {
  ReportBlock b;
  b.ssrc = load32(p);
  b.fractionLost = p[4];
  // 24-bit two's complement (RFC 3550 6.4.1 "cumulative number of packets lost").
  const std::uint32_t raw = load24(p + 5);
  b.cumulativeLost =
      (raw & 0x800000u) ? static_cast<std::int32_t>(raw) - 0x1000000 : static_cast<std::int32_t>(raw);
  b.extHighestSeq = load32(p + 8);
  b.jitter = load32(p + 12);
  b.lastSr = load32(p + 16);
  b.delaySinceLastSr = load32(p + 20);
  return b;
}

void writeBlock(std::uint8_t* p, const ReportBlock& b) noexcept {
  store32(p, b.ssrc);
  p[4] = b.fractionLost;
  // RFC 3550 A.3: clamp to the 24-bit signed range.
  const std::int32_t lost = std::clamp<std::int32_t>(b.cumulativeLost, -0x800000, 0x7fffff);
  store24(p + 5, static_cast<std::uint32_t>(lost) & 0xffffffu);
  store32(p + 8, b.extHighestSeq);
  store32(p + 12, b.jitter);
  store32(p + 16, b.lastSr);
  store32(p + 20, b.delaySinceLastSr);
}

// SDES chunk: SSRC, CNAME item (type, length, text), then at least one null octet
// terminating the item list, up to the next 32-bit boundary (RFC 3550 6.5).
std::size_t sdesSize(std::size_t cnameSize) noexcept {
  const std::size_t chunk = 4 + 2 + cnameSize + 1;
  return kHeader + (chunk + 3) / 4 * 4;
}

std::string_view firstCname(std::span<const std::uint8_t> body, std::size_t chunks) noexcept {
  std::size_t pos = 0;
  for (std::size_t c = 0; c < chunks; ++c) {
    if (pos + 4 > body.size()) return {};
    pos += 4;  // SSRC/CSRC
    while (pos < body.size() && body[pos] != 0) {
      if (pos + 2 > body.size()) return {};
      const std::uint8_t type = body[pos];
      const std::size_t len = body[pos + 1];
      if (pos + 2 + len > body.size()) return {};
      if (type == kSdesCname && len > 0) {
        return {reinterpret_cast<const char*>(body.data() + pos + 2), len};
      }
      pos += 2 + len;
    }
    // Null item(s) up to the next 32-bit boundary (chunk start is 4-aligned in the body).
    pos = (pos + 4) / 4 * 4;
  }
  return {};
}

RtcpStatus walk(std::span<const std::uint8_t> compound, RtcpInfo* info) noexcept {
  if (compound.empty()) return RtcpStatus::Empty;
  std::span<const std::uint8_t> rest = compound;
  bool first = true;
  while (!rest.empty()) {
    RtcpPacketView pkt;
    std::size_t size = 0;
    if (RtcpStatus s = splitOne(rest, isLast(rest), pkt, size); s != RtcpStatus::Ok) return s;
    rest = rest.subspan(size);
    const bool report = pkt.type == static_cast<std::uint8_t>(RtcpType::SR) ||
                        pkt.type == static_cast<std::uint8_t>(RtcpType::RR);
    if (first && !report) return RtcpStatus::FirstNotReport;
    if (report) {
      const bool sr = pkt.type == static_cast<std::uint8_t>(RtcpType::SR);
      const std::size_t fixed = 4 + (sr ? kSenderInfoSize : 0);
      if (pkt.body.size() < fixed + kBlockSize * pkt.count) return RtcpStatus::Truncated;
      if (info != nullptr) {
        const std::uint8_t* b = pkt.body.data();
        if (first) info->senderSsrc = load32(b);
        if (sr && !info->hasSenderReport) {
          info->hasSenderReport = true;
          info->sender.ntpTimestamp = (std::uint64_t{load32(b + 4)} << 32) | load32(b + 8);
          info->sender.rtpTimestamp = load32(b + 12);
          info->sender.packetCount = load32(b + 16);
          info->sender.octetCount = load32(b + 20);
        }
        for (std::size_t i = 0; i < pkt.count; ++i) {
          if (info->blockCount == kMaxReportBlocks) {
            ++info->droppedBlocks;
            continue;
          }
          info->blocks[info->blockCount++] = readBlock(b + fixed + kBlockSize * i);
        }
      }
    } else if (pkt.type == static_cast<std::uint8_t>(RtcpType::SDES)) {
      if (pkt.body.size() < 4 * std::size_t{pkt.count}) return RtcpStatus::Truncated;
      if (info != nullptr && info->cname.empty()) info->cname = firstCname(pkt.body, pkt.count);
    } else if (pkt.type == static_cast<std::uint8_t>(RtcpType::BYE)) {
      if (info != nullptr) info->hasBye = true;
    } else if (info != nullptr) {
      ++info->otherCount;
    }
    if (info != nullptr) ++info->packetCount;
    first = false;
  }
  return RtcpStatus::Ok;
}

std::size_t writeReport(std::span<std::uint8_t> out, bool sr, std::uint32_t ssrc, const SenderInfo* sender,
                        std::span<const ReportBlock> blocks, std::string_view cname) noexcept {
  if (blocks.size() > kMaxReportBlocks || cname.empty() || cname.size() > 255) return 0;
  const std::size_t total = rtcpReportSize(sr, blocks.size(), cname.size());
  if (out.size() < total) return 0;
  std::uint8_t* p = out.data();
  const std::size_t reportSize = kHeader + 4 + (sr ? kSenderInfoSize : 0) + kBlockSize * blocks.size();
  p[0] = static_cast<std::uint8_t>(0x80 | blocks.size());
  p[1] = static_cast<std::uint8_t>(sr ? RtcpType::SR : RtcpType::RR);
  store16(p + 2, static_cast<std::uint16_t>(reportSize / 4 - 1));
  store32(p + 4, ssrc);
  std::uint8_t* q = p + 8;
  if (sr) {
    store32(q, static_cast<std::uint32_t>(sender->ntpTimestamp >> 32));
    store32(q + 4, static_cast<std::uint32_t>(sender->ntpTimestamp));
    store32(q + 8, sender->rtpTimestamp);
    store32(q + 12, sender->packetCount);
    store32(q + 16, sender->octetCount);
    q += kSenderInfoSize;
  }
  for (const ReportBlock& b : blocks) {
    writeBlock(q, b);
    q += kBlockSize;
  }
  // SDES with one chunk (SC = 1).
  const std::size_t sdes = sdesSize(cname.size());
  q[0] = 0x81;
  q[1] = static_cast<std::uint8_t>(RtcpType::SDES);
  store16(q + 2, static_cast<std::uint16_t>(sdes / 4 - 1));
  store32(q + 4, ssrc);
  q[8] = kSdesCname;
  q[9] = static_cast<std::uint8_t>(cname.size());
  std::memcpy(q + 10, cname.data(), cname.size());
  std::memset(q + 10 + cname.size(), 0, sdes - 10 - cname.size());
  return total;
}

}  // namespace

const char* toString(RtcpStatus status) noexcept {
  switch (status) {
    case RtcpStatus::Ok:
      return "ok";
    case RtcpStatus::Empty:
      return "empty";
    case RtcpStatus::TooShort:
      return "too short";
    case RtcpStatus::BadVersion:
      return "bad version";
    case RtcpStatus::BadLength:
      return "length past the end";
    case RtcpStatus::FirstNotReport:
      return "first packet not SR or RR";
    case RtcpStatus::Truncated:
      return "body shorter than its counts";
    case RtcpStatus::BadPadding:
      return "bad padding";
  }
  return "unknown";
}

bool RtcpIterator::next(RtcpPacketView& out) noexcept {
  if (rest_.empty()) return false;
  std::size_t size = 0;
  if (splitOne(rest_, isLast(rest_), out, size) != RtcpStatus::Ok) {
    rest_ = {};
    return false;
  }
  rest_ = rest_.subspan(size);
  return true;
}

RtcpStatus validateRtcp(std::span<const std::uint8_t> compound) noexcept { return walk(compound, nullptr); }

RtcpStatus parseRtcp(std::span<const std::uint8_t> compound, RtcpInfo& out) noexcept {
  out.hasSenderReport = false;
  out.senderSsrc = 0;
  out.sender = {};
  out.blockCount = 0;
  out.droppedBlocks = 0;
  out.cname = {};
  out.hasBye = false;
  out.packetCount = 0;
  out.otherCount = 0;
  return walk(compound, &out);
}

std::size_t rtcpReportSize(bool senderReport, std::size_t blockCount, std::size_t cnameSize) noexcept {
  return kHeader + 4 + (senderReport ? kSenderInfoSize : 0) + kBlockSize * blockCount + sdesSize(cnameSize);
}

std::size_t writeSenderReport(std::span<std::uint8_t> out, std::uint32_t ssrc, const SenderInfo& sender,
                              std::span<const ReportBlock> blocks, std::string_view cname) noexcept {
  return writeReport(out, true, ssrc, &sender, blocks, cname);
}

std::size_t writeReceiverReport(std::span<std::uint8_t> out, std::uint32_t ssrc,
                                std::span<const ReportBlock> blocks, std::string_view cname) noexcept {
  return writeReport(out, false, ssrc, nullptr, blocks, cname);
}

}  // namespace medius::media::rtp
