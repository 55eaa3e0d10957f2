// Transcoder: ptime conversion counts, timestamps, tone through PCMU->Opus->PCMU, losses.
#include "medius/media/codec/transcoder.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "medius/media/codec/comfort_noise.hpp"
#include "signal.hpp"

namespace medius::media::codec {
namespace {

TranscoderConfig config(CodecId from, CodecId to, bool matchOpusRate = true,
                        std::uint16_t toPtime = 0) {
  TranscoderConfig c;
  c.from = from;
  c.to = to;
  c.matchOpusRate = matchOpusRate;
  c.toParams.ptimeMs = toPtime;
  return c;
}

// Encodes `ms` of a sine with `from` (its default 20 ms ptime) and returns the payloads.
std::vector<std::vector<std::uint8_t>> sourcePayloads(CodecId from, double freq, unsigned ms,
                                                      CodecParams params = {}) {
  auto enc = makeEncoder(from, params);
  test::SineSource sine(freq, enc->sampleRate());
  std::vector<std::int16_t> frame(enc->samplesPerPacket());
  std::array<std::uint8_t, kMaxPayloadBytes> buf{};
  std::vector<std::vector<std::uint8_t>> out;
  for (unsigned t = 0; t < ms; t += enc->ptimeMs()) {
    sine.fill(frame);
    EncodeResult e = enc->encode(frame, buf);
    out.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(e.bytes));
  }
  return out;
}

struct Collected {
  std::vector<std::vector<std::uint8_t>> payloads;
  std::uint64_t timestamp = 0;
};

void collect(Transcoder& t, const TranscodeResult& r, std::span<const std::uint8_t> out,
             std::span<const TranscodedPacket> packets, Collected& c) {
  ASSERT_EQ(r.status, CodecStatus::Ok);
  for (std::size_t i = 0; i < r.packets; ++i) {
    c.timestamp += packets[i].timestampIncrement;
    EXPECT_EQ(packets[i].timestampIncrement, t.encoder().timestampIncrement());
    auto p = out.subspan(packets[i].offset, packets[i].size);
    c.payloads.emplace_back(p.begin(), p.end());
  }
}

Collected runAll(Transcoder& t, const std::vector<std::vector<std::uint8_t>>& in) {
  std::vector<std::uint8_t> out(t.outputCapacity());
  std::array<TranscodedPacket, Transcoder::kMaxPacketsPerCall> packets{};
  Collected c;
  for (const auto& p : in) collect(t, t.push(p, out, packets), out, packets, c);
  return c;
}

struct PtimeCase {
  CodecId from;
  CodecId to;
  std::uint16_t toPtime;
  std::size_t packets;       // over 1 s of input
  std::size_t payloadBytes;  // each
  std::size_t queued;        // samples left in the FIFO at the target rate
  std::uint16_t fromPtime = 20;
};

class PtimeConversion : public ::testing::TestWithParam<PtimeCase> {};

TEST_P(PtimeConversion, PacketAndSampleCountsOverOneSecond) {
  const PtimeCase& c = GetParam();
  TranscoderConfig cfg;
  cfg.from = c.from;
  cfg.to = c.to;
  cfg.toParams.ptimeMs = c.toPtime;
  cfg.toParams.g729.annexB = false;  // every frame sent, so sizes are fixed
  Transcoder t(cfg);
  CodecParams source;
  source.ptimeMs = c.fromPtime;
  source.g729.annexB = false;
  Collected got = runAll(t, sourcePayloads(c.from, 1000, 1000, source));
  ASSERT_EQ(got.payloads.size(), c.packets);
  for (const auto& p : got.payloads) {
    if (c.payloadBytes != 0) {  // 0: variable size (Opus)
      EXPECT_EQ(p.size(), c.payloadBytes);
    }
  }
  EXPECT_EQ(got.timestamp, c.packets * t.encoder().timestampIncrement());
  EXPECT_EQ(t.queuedSamples(), c.queued);
}

INSTANTIATE_TEST_SUITE_P(
    Transcoder, PtimeConversion,
    ::testing::Values(
        PtimeCase{CodecId::Pcmu, CodecId::Pcma, 30, 33, 240, 80},   // 1000 = 33 x 30 + 10 ms
        PtimeCase{CodecId::Pcmu, CodecId::G729, 40, 25, 40, 0},     // 20 -> 40 ms
        PtimeCase{CodecId::G722, CodecId::Pcmu, 10, 100, 80, 0},    // 20 -> 10 ms
        PtimeCase{CodecId::Pcma, CodecId::G722, 60, 16, 480, 320},  // 960 ms + 40 ms queued (8 kHz)
        PtimeCase{CodecId::G729, CodecId::Pcmu, 30, 33, 240, 80},
        // 30 and 40 ms sources into 20 ms targets (34 x 30 ms = 1020 ms of input).
        PtimeCase{CodecId::Pcma, CodecId::Pcmu, 20, 51, 160, 0, 30},
        PtimeCase{CodecId::G729, CodecId::G722, 20, 50, 160, 0, 40},
        PtimeCase{CodecId::Pcmu, CodecId::Opus, 20, 50, 0, 0, 40}),
    [](const auto& tp) {
      return std::string(codecInfo(tp.param.from).encodingName) + "_to_" +
             std::string(codecInfo(tp.param.to).encodingName) + "_" +
             std::to_string(tp.param.fromPtime) + "_" + std::to_string(tp.param.toPtime);
    });

// Decodes PCMU payloads and returns the PCM.
std::vector<std::int16_t> decodeAll(CodecId id, const std::vector<std::vector<std::uint8_t>>& in) {
  auto dec = makeDecoder(id);
  std::array<std::int16_t, kMaxDecodedSamples> pcm{};
  std::vector<std::int16_t> out;
  for (const auto& p : in) {
    DecodeResult d = dec->decode(p, pcm);
    EXPECT_EQ(d.status, CodecStatus::Ok);
    out.insert(out.end(), pcm.begin(), pcm.begin() + static_cast<std::ptrdiff_t>(d.samples));
  }
  return out;
}

struct ChainCase {
  CodecId outer;
  CodecId inner;
  bool matchOpusRate;
  double minSnrDb;  // measured minus a margin (printed by the test)
};

class Chain : public ::testing::TestWithParam<ChainCase> {};

// outer -> inner -> outer keeps a 1 kHz tone (for Opus both at 48 kHz + resampling and at
// the matched rate). Measured: PCMU-Opus-PCMU 32.9 dB (48k) / 27.2 dB (8k), PCMU-G.722-PCMU
// 43.6 dB, PCMA-G.722-PCMA 41.1 dB, PCMU-G.729-PCMU 27.8 dB.
TEST_P(Chain, KeepsA1kHzTone) {
  const ChainCase& cc = GetParam();
  Transcoder a(config(cc.outer, cc.inner, cc.matchOpusRate));
  Transcoder b(config(cc.inner, cc.outer, cc.matchOpusRate));
  if (cc.inner == CodecId::Opus) {
    EXPECT_EQ(a.encoder().sampleRate(), cc.matchOpusRate ? 8000u : 48000u);
    EXPECT_EQ(b.decoder().sampleRate(), cc.matchOpusRate ? 8000u : 48000u);
  }
  if (cc.inner == CodecId::G722) {
    // Against G.711: G.722's lower sub-band at 8 kHz, no resampling.
    EXPECT_EQ(a.encoder().sampleRate(), 8000u);
    EXPECT_EQ(b.decoder().sampleRate(), 8000u);
  }
  Collected mid = runAll(a, sourcePayloads(cc.outer, 1000, 1000));
  ASSERT_EQ(mid.payloads.size(), 50u);
  // RFC 7587: 48 kHz clock whatever the coded rate; RFC 3551: 8000 for G.722.
  EXPECT_EQ(mid.timestamp, codecInfo(cc.inner).rtpClockRate);
  Collected back = runAll(b, mid.payloads);
  ASSERT_EQ(back.payloads.size(), 50u);
  auto pcm = decodeAll(cc.outer, back.payloads);
  std::span<const std::int16_t> w(pcm.data() + 1600, 4000);
  double snr = test::toneSnrDb(w, 1000, 8000);
  std::printf("%s->%s->%s (inner PCM %u Hz): SNR %.1f dB\n",
              std::string(codecInfo(cc.outer).encodingName).c_str(),
              std::string(codecInfo(cc.inner).encodingName).c_str(),
              std::string(codecInfo(cc.outer).encodingName).c_str(), a.encoder().sampleRate(), snr);
  EXPECT_NEAR(test::dominantFrequency(w, 8000), 1000, 10);
  EXPECT_GT(snr, cc.minSnrDb);
}

INSTANTIATE_TEST_SUITE_P(Transcoder, Chain,
                         ::testing::Values(ChainCase{CodecId::Pcmu, CodecId::Opus, false, 22},
                                           ChainCase{CodecId::Pcmu, CodecId::Opus, true, 22},
                                           ChainCase{CodecId::Pcmu, CodecId::G722, true, 36},
                                           ChainCase{CodecId::Pcma, CodecId::G722, true, 35},
                                           ChainCase{CodecId::Pcmu, CodecId::G729, true, 22}),
                         [](const auto& tp) {
                           return std::string(codecInfo(tp.param.outer).encodingName) + "_" +
                                  std::string(codecInfo(tp.param.inner).encodingName) +
                                  (tp.param.matchOpusRate ? "_matched" : "_48k");
                         });

class NewStream : public ::testing::TestWithParam<CodecId> {};

TEST_P(NewStream, ResetDecodesTheNewStreamAsAFreshTranscoder) {
  // A re-INVITE or a fork switch brings another SSRC: after reset() nothing of the old
  // stream (decoder predictor or state, resampler history, partial packet) shapes the new one.
  const CodecId from = GetParam();
  auto first = sourcePayloads(from, 440, 200);
  auto second = sourcePayloads(from, 1000, 200);
  Transcoder reused(config(from, CodecId::Pcmu, true, 30));  // 20 ms in, 30 ms out: a partial packet waits
  Transcoder kept(config(from, CodecId::Pcmu, true, 30));
  Transcoder fresh(config(from, CodecId::Pcmu, true, 30));
  runAll(reused, first);
  runAll(kept, first);
  EXPECT_GT(reused.queuedSamples(), 0u);
  reused.reset();
  EXPECT_EQ(reused.queuedSamples(), 0u);
  Collected a = runAll(reused, second);
  Collected b = runAll(fresh, second);
  Collected c = runAll(kept, second);
  EXPECT_EQ(a.payloads, b.payloads);
  EXPECT_NE(c.payloads, b.payloads);  // without the reset the old stream leaks into the new
}

INSTANTIATE_TEST_SUITE_P(Transcoder, NewStream, ::testing::Values(CodecId::G722, CodecId::Opus, CodecId::Pcma));

TEST(Transcoder, LossIsConcealedInTheTargetStream) {
  Transcoder t(config(CodecId::G722, CodecId::Pcmu));
  auto in = sourcePayloads(CodecId::G722, 1000, 600);
  std::vector<std::uint8_t> out(t.outputCapacity());
  std::array<TranscodedPacket, Transcoder::kMaxPacketsPerCall> packets{};
  Collected c;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (i == 20) {
      collect(t, t.pushLost(160, {}, out, packets), out, packets, c);  // 20 ms, G.722 clock
    } else {
      collect(t, t.push(in[i], out, packets), out, packets, c);
    }
  }
  ASSERT_EQ(c.payloads.size(), 30u);
  auto pcm = decodeAll(CodecId::Pcmu, {c.payloads[20]});
  double level = test::toDb(test::meanPower(pcm) / (test::kMinus10Dbfs * test::kMinus10Dbfs / 2));
  EXPECT_GT(level, -10);
  EXPECT_GT(test::toneSnrDb(pcm, 1000, 8000), 6);
}

TEST(Transcoder, OpusLossUsesFecFromTheNextPacket) {
  Transcoder t(config(CodecId::Opus, CodecId::Pcmu));
  CodecParams fec;
  fec.opus.useInbandFec = true;
  auto in = sourcePayloads(CodecId::Opus, 440, 400, fec);
  std::vector<std::uint8_t> out(t.outputCapacity());
  std::array<TranscodedPacket, Transcoder::kMaxPacketsPerCall> packets{};
  Collected c;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (i == 10) {
      collect(t, t.pushLost(960, in[11], out, packets), out, packets, c);  // Opus clock
    } else {
      collect(t, t.push(in[i], out, packets), out, packets, c);
    }
  }
  EXPECT_EQ(c.payloads.size(), 20u);
  EXPECT_EQ(c.timestamp, 20u * 160u);
}

// Silence into a G.729 Annex B target: DTX packets come out with size 0 but their timestamp
// increment, so the caller's RTP clock keeps running (RFC 3551 4.5.6).
TEST(Transcoder, DtxPacketsKeepTheClock) {
  Transcoder t(config(CodecId::Pcmu, CodecId::G729));
  std::vector<std::uint8_t> out(t.outputCapacity());
  std::array<TranscodedPacket, Transcoder::kMaxPacketsPerCall> packets{};
  std::vector<std::uint8_t> silence(160, 0xff);  // PCMU zero
  std::size_t empty = 0, total = 0;
  std::uint64_t timestamp = 0;
  for (int i = 0; i < 100; ++i) {
    TranscodeResult r = t.push(silence, out, packets);
    ASSERT_EQ(r.status, CodecStatus::Ok);
    for (std::size_t k = 0; k < r.packets; ++k) {
      ++total;
      timestamp += packets[k].timestampIncrement;
      if (packets[k].size == 0) ++empty;
    }
  }
  EXPECT_EQ(total, 100u);
  EXPECT_EQ(timestamp, 16000u);
  EXPECT_GE(empty, 80u);
}

// The source's CN (level 40 = -40 dBov) becomes noise at that level in a PCMU target.
TEST(Transcoder, ComfortNoiseFillsTheSourcesDtxGap) {
  Transcoder t(config(CodecId::G722, CodecId::Pcmu));
  std::vector<std::uint8_t> out(t.outputCapacity());
  std::array<TranscodedPacket, Transcoder::kMaxPacketsPerCall> packets{};
  Collected c;
  for (int i = 0; i < 25; ++i) {
    collect(t, t.pushComfortNoise(40, 160, out, packets), out, packets, c);  // 20 ms
  }
  ASSERT_EQ(c.payloads.size(), 25u);
  auto pcm = decodeAll(CodecId::Pcmu, c.payloads);
  EXPECT_NEAR(measureLevelDbov(std::span(pcm).subspan(800)), 40, 3);
  EXPECT_EQ(t.pushComfortNoise(40, 0, out, packets).status, CodecStatus::BadFrameSize);
}

// Toward a target that takes CN (RFC 3389): the source's silence becomes one CN packet after
// the hangover and nothing in between the refreshes; its time passes all along.
TEST(Transcoder, SilenceTowardACnTargetBecomesCnPackets) {
  TranscoderConfig c = config(CodecId::Pcmu, CodecId::G722);
  c.sendComfortNoise = true;
  Transcoder t(c);
  ASSERT_TRUE(t.sendsComfortNoise());
  std::vector<std::uint8_t> out(t.outputCapacity());
  std::array<TranscodedPacket, Transcoder::kMaxPacketsPerCall> packets{};
  auto tone = sourcePayloads(CodecId::Pcmu, 1000, 400);
  std::vector<std::uint8_t> silence(160, 0xff);  // PCMU zero
  std::string kinds;  // per frame: a = audio, c = CN, . = nothing
  std::uint64_t timestamp = 0;
  auto push = [&](std::span<const std::uint8_t> payload) {
    TranscodeResult r = t.push(payload, out, packets);
    ASSERT_EQ(r.status, CodecStatus::Ok);
    for (std::size_t i = 0; i < r.packets; ++i) {
      timestamp += packets[i].timestampIncrement;
      if (packets[i].comfortNoise) {
        ASSERT_EQ(packets[i].size, 1u);
        EXPECT_GE(out[packets[i].offset], 50) << "a level below the threshold";
        kinds += 'c';
      } else {
        kinds += packets[i].size == 0 ? '.' : 'a';
        if (packets[i].size != 0) {
          EXPECT_EQ(packets[i].size, 160u);
        }
      }
    }
  };
  for (const auto& p : tone) push(p);
  for (int i = 0; i < 31; ++i) push(silence);
  for (int i = 0; i < 5; ++i) push(tone[static_cast<std::size_t>(i)]);
  ASSERT_EQ(kinds.size(), 56u);
  EXPECT_EQ(kinds.substr(0, 30), std::string(30, 'a')) << "the tone, then the 200 ms hangover: " << kinds;
  const std::size_t first = kinds.find('c');
  ASSERT_LE(first, 32u) << kinds;  // the resampler's tail of the tone may take a frame or two
  for (std::size_t k = first; k < 51; ++k) EXPECT_EQ(kinds[k], (k - first) % 10 == 0 ? 'c' : '.') << kinds;
  EXPECT_EQ(kinds.substr(51), "aaaaa") << "the next talkspurt at once";
  EXPECT_EQ(timestamp, 56u * 160) << "one target frame per source frame, CN or not";

  // Opus has its DTX and G.729 Annex B: no CN toward them.
  c.to = CodecId::G729;
  EXPECT_FALSE(Transcoder(c).sendsComfortNoise());
  Transcoder plain(config(CodecId::Pcmu, CodecId::G722));
  EXPECT_EQ(plain.pushSilence(160, out, packets).packets, 0u) << "no CN target: nothing to do";
}

// The source sends nothing (DTX, an underrun): toward a CN target, CN at once at the
// background level measured before, then refreshes.
TEST(Transcoder, ASilentSourceBecomesCnAtItsBackgroundLevel) {
  TranscoderConfig c = config(CodecId::Pcmu, CodecId::Pcma);
  c.sendComfortNoise = true;
  Transcoder t(c);
  std::vector<std::uint8_t> out(t.outputCapacity());
  std::array<TranscodedPacket, Transcoder::kMaxPacketsPerCall> packets{};
  ComfortNoiseGenerator background(64);
  auto enc = makeEncoder(CodecId::Pcmu, {});
  std::vector<std::int16_t> pcm(160);
  std::array<std::uint8_t, kMaxPayloadBytes> buf{};
  for (int i = 0; i < 15; ++i) {  // a quiet line: the hangover, then CN
    background.generate(pcm);
    t.push(std::span(buf.data(), enc->encode(pcm, buf).bytes), out, packets);
  }
  t.push(sourcePayloads(CodecId::Pcmu, 1000, 20).front(), out, packets);  // a word
  std::vector<std::uint8_t> levels;
  std::size_t frames = 0;
  for (int i = 0; i < 20; ++i) {
    TranscodeResult r = t.pushSilence(160, out, packets);
    for (std::size_t k = 0; k < r.packets; ++k, ++frames) {
      if (packets[k].comfortNoise) levels.push_back(out[packets[k].offset]);
    }
  }
  EXPECT_EQ(frames, 20u);
  ASSERT_EQ(levels.size(), 2u) << "at the gap's start and 200 ms later";
  EXPECT_NEAR(levels[0], 64, 2);
  EXPECT_EQ(levels[1], levels[0]) << "no drift: our own noise is not measured";
}

TEST(Transcoder, BadInputIsReportedAndTheStreamContinues) {
  Transcoder t(config(CodecId::G729, CodecId::Pcmu));
  std::vector<std::uint8_t> out(t.outputCapacity());
  std::array<TranscodedPacket, Transcoder::kMaxPacketsPerCall> packets{};
  std::array<std::uint8_t, 7> bad{};
  EXPECT_EQ(t.push(bad, out, packets).status, CodecStatus::BadPayload);
  EXPECT_EQ(t.push({}, out, packets).status, CodecStatus::BadPayload);
  EXPECT_EQ(t.pushLost(40, {}, out, packets).status, CodecStatus::BadFrameSize);  // < 10 ms
  std::array<std::uint8_t, 20> good{};
  TranscodeResult r = t.push(good, out, packets);
  EXPECT_EQ(r.status, CodecStatus::Ok);
  EXPECT_EQ(r.packets, 1u);
  // Too few packet slots: the rest stays queued for the next call.
  Transcoder u(config(CodecId::Pcmu, CodecId::Pcma, true, 10));
  std::array<std::uint8_t, 160> pcmu{};
  r = u.push(pcmu, out, std::span(packets.data(), 1));
  EXPECT_EQ(r.status, CodecStatus::BufferTooSmall);
  EXPECT_EQ(r.packets, 1u);
  EXPECT_EQ(u.queuedSamples(), 80u);
}

}  // namespace
}  // namespace medius::media::codec
