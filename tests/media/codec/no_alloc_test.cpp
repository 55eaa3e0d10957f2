// The packet path allocates nothing: operator new is counted while encoders, decoders,
// resamplers, DTMF, comfort noise and transcoders process frames (after construction).
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "medius/media/codec/codec.hpp"
#include "medius/media/codec/comfort_noise.hpp"
#include "medius/media/codec/dtmf_detector.hpp"
#include "medius/media/codec/dtmf_tones.hpp"
#include "medius/media/codec/resampler.hpp"
#include "medius/media/codec/transcoder.hpp"
#include "allocation_counter.hpp"
#include "signal.hpp"


namespace medius::media::codec {
namespace {

TEST(NoAllocation, PacketPathAllocatesNothing) {
  // Everything is built first (constructors may allocate).
  std::vector<std::unique_ptr<Encoder>> encoders;
  std::vector<std::unique_ptr<Decoder>> decoders;
  for (CodecId id : {CodecId::Pcmu, CodecId::Pcma, CodecId::G722, CodecId::G729, CodecId::Opus}) {
    encoders.push_back(makeEncoder(id));
    decoders.push_back(makeDecoder(id));
  }
  Resampler up(8000, 48000);
  DtmfGenerator gen(16000);
  DtmfDetector det(16000);
  ComfortNoiseGenerator noise(50);
  InbandDtmfDetector inband(8000);
  TranscoderConfig toOpusConfig;
  toOpusConfig.detectDtmf = true;  // PCMU -> Opus with in-band DTMF detection
  Transcoder toOpus(toOpusConfig), fromOpus([] {
    TranscoderConfig c;
    c.from = CodecId::Opus;
    c.to = CodecId::G722;
    c.toParams.ptimeMs = 40;
    c.sendComfortNoise = true;  // RFC 3389 toward G.722: SilenceSuppressor
    return c;
  }());
  std::vector<std::int16_t> pcm48(960), pcm8(160), pcm16(320), out(kMaxDecodedSamples);
  test::SineSource s48(440, 48000), s8(440, 8000), s16(440, 16000);
  std::array<std::uint8_t, kMaxPayloadBytes> payload{};
  std::vector<std::uint8_t> tOut(std::max(toOpus.outputCapacity(), fromOpus.outputCapacity()));
  std::array<TranscodedPacket, Transcoder::kMaxPacketsPerCall> packets{};
  std::array<DtmfEvent, DtmfDetector::kMaxEventsPerFrame> events{};
  std::array<DtmfEvent, InbandDtmfDetector::kMaxPendingEdges> edges{};

  {
    media::test::AllocationCounter probe;
    ::operator delete(::operator new(16));
    ASSERT_EQ(probe.count(), 1) << "the counting operator new is not in use";
  }
  media::test::AllocationCounter counter;
  for (int i = 0; i < 50; ++i) {
    s48.fill(pcm48);
    s8.fill(pcm8);
    s16.fill(pcm16);
    for (std::size_t k = 0; k < encoders.size(); ++k) {
      std::span<const std::int16_t> in = encoders[k]->sampleRate() == 8000    ? pcm8
                                         : encoders[k]->sampleRate() == 16000 ? pcm16
                                                                              : pcm48;
      EncodeResult e = encoders[k]->encode(in, payload);
      ASSERT_EQ(e.status, CodecStatus::Ok);
      if (e.bytes > 0) (void)decoders[k]->decode(std::span(payload.data(), e.bytes), out);
      if (i % 10 == 0) (void)decoders[k]->conceal(in.size(), out);
      // A new stream; bcg729 has no reset (G.729's re-creates its channel, once per stream).
      if (i == 25 && decoders[k]->id() != CodecId::G729) decoders[k]->reset();
    }
    (void)up.process(pcm8, out);
    if (i % 10 == 0) gen.start('5', 100);
    gen.generate(pcm16);
    (void)det.process(pcm16, events);
    inband.process(pcm8);
    (void)inband.take(edges);
    if (i == 30) inband.reset();
    noise.setLevel(static_cast<std::uint8_t>(40 + i % 5));
    noise.generate(pcm8);
    TranscodeResult r = toOpus.push(std::span(payload.data(), 160), tOut, packets);
    ASSERT_EQ(r.status, CodecStatus::Ok);
    if (r.packets > 0) {
      auto opus = std::span(tOut.data() + packets[0].offset, packets[0].size);
      std::array<std::uint8_t, kMaxPayloadBytes> copy{};
      std::copy(opus.begin(), opus.end(), copy.begin());
      (void)fromOpus.push(std::span(copy.data(), opus.size()), tOut, packets);
      (void)fromOpus.pushLost(960, std::span(copy.data(), opus.size()), tOut, packets);
    }
    (void)toOpus.pushComfortNoise(60, 160, tOut, packets);
    (void)fromOpus.pushSilence(960, tOut, packets);
    if (i == 40) toOpus.reset();
  }
  EXPECT_EQ(counter.count(), 0);
}

}  // namespace
}  // namespace medius::media::codec
