// Arbitrary bytes through medius_media_rtp: the RTP, RTCP and telephone-event parsers on the
// whole input, then the input cut into a packet sequence (one length octet before each
// packet) fed to the receive statistics, the jitter buffer and the event mapper. Invariants
// (spans inside the input, round trips of what was parsed) trap when broken.
#include <cstddef>
#include <cstdint>
#include <span>

#include "medius/media/rtp/dtmf.hpp"
#include "medius/media/rtp/jitter_buffer.hpp"
#include "medius/media/rtp/mos.hpp"
#include "medius/media/rtp/packet.hpp"
#include "medius/media/rtp/rtcp.hpp"
#include "medius/media/rtp/stats.hpp"

using namespace medius::media::rtp;

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool inside(std::span<const std::uint8_t> inner, std::span<const std::uint8_t> outer) {
  return inner.empty() ||
         (inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size());
}

void oneRtcp(std::span<const std::uint8_t> bytes) {
  RtcpInfo info;
  const RtcpStatus s = parseRtcp(bytes, info);
  check((s == RtcpStatus::Ok) == (validateRtcp(bytes) == RtcpStatus::Ok));
  if (s != RtcpStatus::Ok) return;
  check(info.blockCount <= kMaxReportBlocks);
  // What was parsed builds again and parses to the same blocks.
  std::array<std::uint8_t, 1024> buf{};
  const std::string_view cname = info.cname.empty() ? std::string_view("x") : info.cname;
  const std::size_t n = info.hasSenderReport
                            ? writeSenderReport(buf, info.senderSsrc, info.sender, info.reportBlocks(), cname)
                            : writeReceiverReport(buf, info.senderSsrc, info.reportBlocks(), cname);
  check(n == rtcpReportSize(info.hasSenderReport, info.blockCount, cname.size()));
  RtcpInfo again;
  check(parseRtcp(std::span(buf.data(), n), again) == RtcpStatus::Ok);
  check(again.blockCount == info.blockCount && again.cname == cname);
  for (std::size_t i = 0; i < info.blockCount; ++i) {
    check(again.blocks[i].cumulativeLost == info.blocks[i].cumulativeLost);
    check(again.blocks[i].delaySinceLastSr == info.blocks[i].delaySinceLastSr);
  }
  RtcpIterator it(bytes);
  RtcpPacketView p;
  std::size_t count = 0;
  while (it.next(p)) {
    check(inside(p.body, bytes));
    ++count;
  }
  check(count == info.packetCount);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);

  RtpView v;
  if (parseRtp(input, v) == RtpStatus::Ok) {
    check(inside(v.payload, input) && inside(v.extensionData, input));
    check(v.headerSize + v.payload.size() + v.paddingSize == size);
  }
  oneRtcp(input);
  TelephoneEvent ev;
  if (parseTelephoneEvent(input, ev) == DtmfStatus::Ok) check(ev.volume <= 63);

  // The input as a packet sequence: [len][packet]...; arrival advances 20 ms +- the octet.
  ReceiveStats stats(8000);
  SenderStats sender(48000);
  RttEstimator rtt;
  JitterBufferConfig config;
  config.capacity = 16;
  config.maxPayload = 200;
  JitterBuffer jb(config);
  TelephoneEventMapper mapper;
  const RtpClockMap clock{.inRate = 8000, .outRate = 48000, .inAnchor = 0, .outAnchor = 0};
  std::array<MappedEvent, TelephoneEventMapper::kMaxOutput> out{};
  std::uint64_t now = 1'000'000'000;
  std::size_t pos = 0;
  while (pos < size) {
    const std::size_t len = input[pos];
    ++pos;
    const std::size_t take = len < size - pos ? len : size - pos;
    const std::span<const std::uint8_t> packet = input.subspan(pos, take);
    pos += take;
    now += 20'000'000 + (len & 0x0f) * 1'000'000;
    if (isRtcp(packet)) {
      RtcpInfo info;
      if (parseRtcp(packet, info) == RtcpStatus::Ok) {
        if (info.hasSenderReport) stats.onSenderReport(info.sender.ntpTimestamp, now);
        for (const ReportBlock& b : info.reportBlocks())
          rtt.onReportBlock(b, static_cast<std::uint32_t>(now >> 16));
      }
      continue;
    }
    RtpView p;
    if (parseRtp(packet, p) != RtpStatus::Ok) continue;
    stats.receive(p.sequence, p.timestamp, now);
    sender.onSent(p.payload.size(), p.timestamp, now);
    if (p.payloadType == 101) mapper.map(p.timestamp, p.marker, p.payload, clock, out);
    jb.put(p.ssrc, p.sequence, p.timestamp, p.payloadType, p.marker, p.payload, now);
    const JitterFrame f = jb.get(now);
    check(f.payload.size() <= config.maxPayload);
    check(jb.bufferedPackets() <= config.capacity);
  }
  const ReportBlock b = stats.makeReportBlock(1, now);
  check(b.cumulativeLost >= -0x800000 && b.cumulativeLost <= 0x7fffff);
  const double mos = estimateMos({.codec = codecImpairment(Codec::Opus),
                                  .packetLossPercent = b.fractionLost * 100.0 / 256,
                                  .oneWayDelayMs = rtt.smoothedMs() / 2 + stats.jitterMs(),
                                  .burstRatio = 1});
  check(mos >= 1.0 && mos <= 4.5);
  sender.senderInfo(0, now);
  return 0;
}
