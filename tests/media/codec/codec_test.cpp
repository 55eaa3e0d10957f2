// Codec table, fmtp, and encode -> decode of tones through every codec (spandsp G.711/G.722,
// bcg729, libopus), PLC, Opus FEC, G.729 Annex B DTX, bad payloads.
#include "medius/media/codec/codec.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <vector>

#include "signal.hpp"

namespace medius::media::codec {
namespace {

using test::SineSource;

CodecParams withPtime(std::uint16_t ms, bool annexB = true) {
  CodecParams p;
  p.ptimeMs = ms;
  p.g729.annexB = annexB;
  return p;
}

// Encodes `ms` of a sine frame by frame and decodes each payload; returns the decoded PCM.
std::vector<std::int16_t> roundTrip(CodecId id, const CodecParams& params, double freq,
                                    unsigned ms) {
  auto enc = makeEncoder(id, params);
  auto dec = makeDecoder(id, params);
  SineSource sine(freq, enc->sampleRate());
  std::vector<std::int16_t> frame(enc->samplesPerPacket());
  std::array<std::uint8_t, kMaxPayloadBytes> payload{};
  std::array<std::int16_t, kMaxDecodedSamples> pcm{};
  std::vector<std::int16_t> out;
  for (unsigned t = 0; t < ms; t += enc->ptimeMs()) {
    sine.fill(frame);
    EncodeResult e = enc->encode(frame, payload);
    EXPECT_EQ(e.status, CodecStatus::Ok);
    if (e.bytes == 0) continue;
    DecodeResult d = dec->decode(std::span(payload.data(), e.bytes), pcm);
    EXPECT_EQ(d.status, CodecStatus::Ok);
    out.insert(out.end(), pcm.begin(), pcm.begin() + static_cast<std::ptrdiff_t>(d.samples));
  }
  return out;
}

struct ToneCase {
  CodecId id;
  double freq;
  double minSnrDb;  // measured value minus a margin, see the table below
};

class ToneRoundTrip : public ::testing::TestWithParam<ToneCase> {};

// Bounds: measured tone-to-residual SNR minus 3-7 dB. Measured (0.5 s after 200 ms):
// PCMU 44.1/37.1 dB (1000/440 Hz), PCMA 41.3/36.7, G.722 47.6/57.5, G.729 25.6/25.6,
// Opus (48 kHz, 32 kbit/s, complexity 5) 35.0/33.2.
TEST_P(ToneRoundTrip, KeepsFrequencyAndSnr) {
  const ToneCase& c = GetParam();
  CodecParams params;
  auto out = roundTrip(c.id, params, c.freq, 1000);
  std::uint32_t rate = makeDecoder(c.id, params)->sampleRate();
  ASSERT_GE(out.size(), rate * 9 / 10);
  // Skip codec start-up; analyse 0.5 s (a whole number of periods of 440 and 1000 Hz).
  std::span<const std::int16_t> window(out.data() + rate / 5, rate / 2);
  double snr = test::toneSnrDb(window, c.freq, rate);
  double dominant =
      test::dominantFrequency(window.first(rate / 10), rate, std::min(rate / 2.0 - 50, 4000.0));
  std::printf("%s %.0f Hz: SNR %.1f dB, dominant %.0f Hz\n",
              std::string(codecInfo(c.id).encodingName).c_str(), c.freq, snr, dominant);
  EXPECT_NEAR(dominant, c.freq, 10.0);
  EXPECT_GE(snr, c.minSnrDb);
  // Level kept within 1.5 dB (the tone's power against the input sine's A^2/2).
  double level = test::toDb(test::tonePower(window, c.freq, rate) /
                            (test::kMinus10Dbfs * test::kMinus10Dbfs / 2));
  EXPECT_NEAR(level, 0.0, 1.5);
}

INSTANTIATE_TEST_SUITE_P(
    Codecs, ToneRoundTrip,
    ::testing::Values(ToneCase{CodecId::Pcmu, 1000, 33}, ToneCase{CodecId::Pcmu, 440, 33},
                      ToneCase{CodecId::Pcma, 1000, 33}, ToneCase{CodecId::Pcma, 440, 33},
                      ToneCase{CodecId::G722, 1000, 40}, ToneCase{CodecId::G722, 440, 40},
                      ToneCase{CodecId::G729, 1000, 20}, ToneCase{CodecId::G729, 440, 20},
                      ToneCase{CodecId::Opus, 1000, 28}, ToneCase{CodecId::Opus, 440, 28}),
    [](const auto& tp) {
      return std::string(codecInfo(tp.param.id).encodingName) + "_" +
             std::to_string(static_cast<int>(tp.param.freq));
    });

// Encodes `ms` of a sine with `enc` and decodes every payload with `dec` (an encoder and a
// decoder of different kinds: interoperability).
std::vector<std::int16_t> across(Encoder& enc, Decoder& dec, double freq, unsigned ms) {
  SineSource sine(freq, enc.sampleRate());
  std::vector<std::int16_t> frame(enc.samplesPerPacket());
  std::array<std::uint8_t, kMaxPayloadBytes> payload{};
  std::array<std::int16_t, kMaxDecodedSamples> pcm{};
  std::vector<std::int16_t> out;
  for (unsigned t = 0; t < ms; t += enc.ptimeMs()) {
    sine.fill(frame);
    EncodeResult e = enc.encode(frame, payload);
    EXPECT_EQ(e.status, CodecStatus::Ok);
    DecodeResult d = dec.decode(std::span(payload.data(), e.bytes), pcm);
    EXPECT_EQ(d.status, CodecStatus::Ok);
    out.insert(out.end(), pcm.begin(), pcm.begin() + static_cast<std::ptrdiff_t>(d.samples));
  }
  return out;
}

// G.722 with narrowband PCM (lower sub-band only, at 8 kHz) is ordinary G.722 on the wire:
// what it encodes from 8 kHz a 16 kHz G.722 decoder (a wideband phone) plays, and what a
// 16 kHz G.722 encoder sends it decodes to 8 kHz. Measured: 1 kHz tone 8k -> 16k decoder
// SNR 47.5 dB, 16k encoder -> 8k 47.6 dB (bounds 30).
TEST(G722Narrowband, InteroperatesWithWidebandG722) {
  CodecParams narrow;
  narrow.g722.narrowbandPcm = true;
  auto enc8 = makeEncoder(CodecId::G722, narrow);
  auto dec8 = makeDecoder(CodecId::G722, narrow);
  auto enc16 = makeEncoder(CodecId::G722);
  auto dec16 = makeDecoder(CodecId::G722);
  EXPECT_EQ(enc8->sampleRate(), 8000u);
  EXPECT_EQ(enc8->samplesPerPacket(), 160u);
  EXPECT_EQ(enc8->timestampIncrement(), 160u);  // the RTP clock is 8000 either way
  EXPECT_EQ(dec8->sampleRate(), 8000u);

  auto wide = across(*enc8, *dec16, 1000, 1000);
  ASSERT_EQ(wide.size(), 16000u);  // 160 bytes per 20 ms packet, as from a 16 kHz encoder
  std::span<const std::int16_t> w16(wide.data() + 3200, 8000);
  double snr16 = test::toneSnrDb(w16, 1000, 16000);
  std::printf("G.722 8k -> 16k decoder: SNR %.1f dB\n", snr16);
  EXPECT_NEAR(test::dominantFrequency(w16.first(1600), 16000, 4000), 1000, 10);
  EXPECT_GE(snr16, 30);
  double level = test::toDb(test::tonePower(w16, 1000, 16000) /
                            (test::kMinus10Dbfs * test::kMinus10Dbfs / 2));
  EXPECT_NEAR(level, 0.0, 1.5);

  auto narrowOut = across(*enc16, *dec8, 1000, 1000);
  ASSERT_EQ(narrowOut.size(), 8000u);
  std::span<const std::int16_t> w8(narrowOut.data() + 1600, 4000);
  double snr8 = test::toneSnrDb(w8, 1000, 8000);
  std::printf("G.722 16k encoder -> 8k: SNR %.1f dB\n", snr8);
  EXPECT_NEAR(test::dominantFrequency(w8.first(800), 8000), 1000, 10);
  EXPECT_GE(snr8, 30);
  level = test::toDb(test::tonePower(w8, 1000, 8000) / (test::kMinus10Dbfs * test::kMinus10Dbfs / 2));
  EXPECT_NEAR(level, 0.0, 1.5);
}

TEST(CodecInfo, Rfc3551AndRfc7587Values) {
  EXPECT_EQ(codecInfo(CodecId::Pcmu).staticPayloadType, 0);
  EXPECT_EQ(codecInfo(CodecId::Pcma).staticPayloadType, 8);
  EXPECT_EQ(codecInfo(CodecId::G722).staticPayloadType, 9);
  EXPECT_EQ(codecInfo(CodecId::G729).staticPayloadType, 18);
  EXPECT_FALSE(codecInfo(CodecId::Opus).staticPayloadType.has_value());
  EXPECT_EQ(codecInfo(CodecId::G722).rtpClockRate, 8000u);
  EXPECT_EQ(codecInfo(CodecId::G722).sampleRate, 16000u);
  EXPECT_EQ(codecInfo(CodecId::Opus).rtpClockRate, 48000u);
  EXPECT_EQ(codecFromName("pcmu", 8000), CodecId::Pcmu);
  EXPECT_EQ(codecFromName("OPUS", 48000), CodecId::Opus);
  EXPECT_EQ(codecFromName("G722"), CodecId::G722);
  EXPECT_FALSE(codecFromName("opus", 8000).has_value());
  EXPECT_FALSE(codecFromName("GSM").has_value());
  EXPECT_TRUE(ptimeAllowed(CodecId::G729, 40));
  EXPECT_FALSE(ptimeAllowed(CodecId::Opus, 30));
  EXPECT_THROW(makeEncoder(CodecId::Opus, withPtime(30)), std::invalid_argument);
}

TEST(CodecInfo, TimestampIncrementUsesRtpClock) {
  EXPECT_EQ(makeEncoder(CodecId::G722)->timestampIncrement(), 160u);  // 20 ms at 8000
  EXPECT_EQ(makeEncoder(CodecId::G722)->samplesPerPacket(), 320u);    // 20 ms at 16000
  EXPECT_EQ(makeEncoder(CodecId::Opus, withPtime(40))->timestampIncrement(), 1920u);
  EXPECT_EQ(makeEncoder(CodecId::Pcma, withPtime(30))->timestampIncrement(), 240u);
}

TEST(Fmtp, OpusParameters) {
  CodecParams p;
  EXPECT_FALSE(p.opus.useInbandFec);  // RFC 7587 6.1 defaults
  EXPECT_FALSE(p.opus.useDtx);
  EXPECT_EQ(p.opus.maxPlaybackRate, 48000u);
  EXPECT_TRUE(applyFmtp(CodecId::Opus,
                        "maxplaybackrate=16000; sprop-maxcapturerate=16000;useinbandfec=1; "
                        "usedtx=1;maxaveragebitrate=20000;stereo=0",
                        p));
  EXPECT_EQ(p.opus.maxPlaybackRate, 16000u);
  EXPECT_TRUE(p.opus.useInbandFec);
  EXPECT_TRUE(p.opus.useDtx);
  EXPECT_EQ(p.opus.maxAverageBitrate, 20000u);
  EXPECT_FALSE(p.opus.stereo);
  EXPECT_EQ(opusPcmRate(p.opus), 16000u);
  EXPECT_EQ(makeEncoder(CodecId::Opus, p)->sampleRate(), 16000u);
  CodecParams bad;
  EXPECT_FALSE(applyFmtp(CodecId::Opus, "maxplaybackrate=abc;useinbandfec=2", bad));
  EXPECT_EQ(bad.opus.maxPlaybackRate, 48000u);
}

TEST(Fmtp, G729AnnexB) {
  CodecParams p;
  EXPECT_TRUE(p.g729.annexB);  // RFC 4856: default yes
  EXPECT_TRUE(applyFmtp(CodecId::G729, "annexb=no", p));
  EXPECT_FALSE(p.g729.annexB);
  EXPECT_FALSE(applyFmtp(CodecId::G729, "annexb=maybe", p));
}

TEST(Encoder, RejectsWrongFrameSizeAndSmallBuffer) {
  auto enc = makeEncoder(CodecId::Pcmu);
  std::array<std::int16_t, 100> shortFrame{};
  std::array<std::uint8_t, kMaxPayloadBytes> out{};
  EXPECT_EQ(enc->encode(shortFrame, out).status, CodecStatus::BadFrameSize);
  std::array<std::int16_t, 160> frame{};
  EXPECT_EQ(enc->encode(frame, std::span(out.data(), 10)).status, CodecStatus::BufferTooSmall);
  auto enc2 = makeEncoder(CodecId::G722);
  std::array<std::int16_t, 320> wide{};
  EncodeResult r = enc2->encode(wide, out);
  EXPECT_EQ(r.status, CodecStatus::Ok);
  EXPECT_EQ(r.bytes, 160u);  // 64 kbit/s, 20 ms
}

// A tone through the codec, packet `lost` replaced by conceal(): the concealed frame is not
// silence and carries the tone.
void expectPlcContinuesTone(CodecId id, CodecParams params) {
  auto enc = makeEncoder(id, params);
  auto dec = makeDecoder(id, params);
  SineSource sine(1000, enc->sampleRate());
  std::vector<std::int16_t> frame(enc->samplesPerPacket());
  std::array<std::uint8_t, kMaxPayloadBytes> payload{};
  std::array<std::int16_t, kMaxDecodedSamples> pcm{};
  for (int i = 0; i < 25; ++i) {
    sine.fill(frame);
    EncodeResult e = enc->encode(frame, payload);
    ASSERT_EQ(e.status, CodecStatus::Ok);
    ASSERT_EQ(dec->decode(std::span(payload.data(), e.bytes), pcm).status, CodecStatus::Ok);
  }
  DecodeResult c = dec->conceal(frame.size(), pcm);
  ASSERT_EQ(c.status, CodecStatus::Ok);
  ASSERT_EQ(c.samples, frame.size());
  std::span<const std::int16_t> concealed(pcm.data(), c.samples);
  double level =
      test::toDb(test::meanPower(concealed) / (test::kMinus10Dbfs * test::kMinus10Dbfs / 2));
  double snr = test::toneSnrDb(concealed, 1000, dec->sampleRate());
  std::printf("%s PLC: level %.1f dB, tone SNR %.1f dB\n",
              std::string(codecInfo(id).encodingName).c_str(), level, snr);
  EXPECT_GT(level, -10.0) << "concealment is (nearly) silence";
  // The tone is the strongest component of the concealed frame (20 ms: 50 Hz resolution).
  double dominant = test::dominantFrequency(concealed, dec->sampleRate(), 4000);
  std::printf("  dominant %.0f Hz\n", dominant);
  EXPECT_NEAR(dominant, 1000, 50) << "concealment does not continue the tone";
}

TEST(Plc, Pcmu) { expectPlcContinuesTone(CodecId::Pcmu, {}); }
TEST(Plc, Pcma) { expectPlcContinuesTone(CodecId::Pcma, {}); }
TEST(Plc, G722) { expectPlcContinuesTone(CodecId::G722, {}); }
TEST(Plc, G729) { expectPlcContinuesTone(CodecId::G729, {}); }
TEST(Plc, Opus) { expectPlcContinuesTone(CodecId::Opus, {}); }

TEST(Plc, RejectsSizesOffTheCodecFrame) {
  std::array<std::int16_t, kMaxDecodedSamples> pcm{};
  EXPECT_EQ(makeDecoder(CodecId::G729)->conceal(100, pcm).status, CodecStatus::BadFrameSize);
  EXPECT_EQ(makeDecoder(CodecId::Opus)->conceal(100, pcm).status, CodecStatus::BadFrameSize);
  EXPECT_EQ(makeDecoder(CodecId::Pcmu)->conceal(0, pcm).status, CodecStatus::BadFrameSize);
  EXPECT_EQ(makeDecoder(CodecId::Pcmu)->conceal(320, std::span(pcm.data(), 160)).status,
            CodecStatus::BufferTooSmall);
}

// Speech-like signal for FEC: a harmonic "voice" whose pitch changes every 20 ms under a
// 4 Hz syllable envelope. SILK's VAD takes it for speech (it only adds LBRR to active
// frames), and PLC's extrapolation of the previous frame is wrong for the lost one.
std::vector<std::int16_t> steppedTone(std::uint32_t rate, std::size_t frames, std::size_t frame) {
  std::vector<std::int16_t> x(frames * frame);
  double phase = 0;
  const std::array<double, 5> freqs{300, 520, 410, 650, 350};
  for (std::size_t i = 0; i < x.size(); ++i) {
    double f = freqs[(i / frame) % freqs.size()];
    phase += 2 * std::numbers::pi * f / rate;
    double env = 0.5 + 0.5 * std::sin(2 * std::numbers::pi * 4 * static_cast<double>(i) / rate);
    x[i] = static_cast<std::int16_t>(
        8000 * env * (std::sin(phase) + 0.5 * std::sin(2 * phase) + 0.3 * std::sin(3 * phase)));
  }
  return x;
}

TEST(OpusFec, RecoversLostFrameBetterThanPlc) {
  CodecParams params;
  params.opus.pcmRate = 16000;  // SILK wideband: where Opus carries LBRR (RFC 6716 4.2.4)
  params.opus.maxPlaybackRate = 16000;
  params.opus.useInbandFec = true;
  params.opus.expectedLossPercent = 20;
  auto enc = makeEncoder(CodecId::Opus, params);
  const std::size_t frame = enc->samplesPerPacket();
  const std::size_t frames = 40, lost = 30;
  auto input = steppedTone(16000, frames, frame);
  std::vector<std::vector<std::uint8_t>> packets;
  std::array<std::uint8_t, kMaxPayloadBytes> buf{};
  for (std::size_t i = 0; i < frames; ++i) {
    EncodeResult e = enc->encode(std::span(input.data() + i * frame, frame), buf);
    ASSERT_EQ(e.status, CodecStatus::Ok);
    ASSERT_GT(e.bytes, 0u);
    packets.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(e.bytes));
  }
  // The same stream decoded three times: no loss (reference), PLC, FEC.
  auto decodeWith = [&](int mode) {
    auto dec = makeDecoder(CodecId::Opus, params);
    std::array<std::int16_t, kMaxDecodedSamples> pcm{};
    std::vector<std::int16_t> lostFrame;
    for (std::size_t i = 0; i < frames; ++i) {
      DecodeResult d;
      if (i == lost && mode == 1) {
        d = dec->conceal(frame, pcm);
      } else if (i == lost && mode == 2) {
        EXPECT_TRUE(dec->hasFec());
        d = dec->decodeFec(packets[i + 1], frame, pcm);
      } else {
        d = dec->decode(packets[i], pcm);
      }
      EXPECT_EQ(d.status, CodecStatus::Ok);
      EXPECT_EQ(d.samples, frame);
      if (i == lost)
        lostFrame.assign(pcm.begin(), pcm.begin() + static_cast<std::ptrdiff_t>(frame));
    }
    return lostFrame;
  };
  auto ref = decodeWith(0), plc = decodeWith(1), fec = decodeWith(2);
  auto errorPower = [&](const std::vector<std::int16_t>& y) {
    double e = 0;
    for (std::size_t i = 0; i < frame; ++i) e += std::pow(double(y[i]) - ref[i], 2);
    return e / static_cast<double>(frame);
  };
  double refPower = test::meanPower(ref);
  double plcSnr = test::toDb(refPower / errorPower(plc));
  double fecSnr = test::toDb(refPower / errorPower(fec));
  std::printf("Opus lost frame vs no-loss decode: PLC %.1f dB, FEC %.1f dB\n", plcSnr, fecSnr);
  EXPECT_GT(fecSnr, plcSnr + 3.0);
  EXPECT_GT(fecSnr, 3.0);
}

TEST(G729, AnnexBSilenceGivesSidAndDtx) {
  auto enc = makeEncoder(CodecId::G729);
  auto dec = makeDecoder(CodecId::G729);
  std::array<std::int16_t, 160> frame{};
  std::array<std::uint8_t, kMaxPayloadBytes> out{};
  std::array<std::int16_t, kMaxDecodedSamples> pcm{};
  std::mt19937 rng(7);
  std::normal_distribution<double> noise(0, 5);  // about -76 dBov background
  SineSource talk(440, 8000);
  int voice = 0, sid = 0, none = 0;
  for (int i = 0; i < 150; ++i) {  // 0.5 s of tone ("speech"), then 2.5 s of silence
    if (i < 25) {
      talk.fill(frame);
    } else {
      for (auto& s : frame) s = static_cast<std::int16_t>(noise(rng));
    }
    EncodeResult e = enc->encode(frame, out);
    ASSERT_EQ(e.status, CodecStatus::Ok);
    if (i < 25) {
      EXPECT_EQ(e.bytes, 20u);
    } else if (e.bytes == 0) {
      ++none;
    } else if (e.bytes % 10 == 2) {
      ++sid;
    } else {
      ++voice;  // VAD hangover
    }
    if (e.bytes > 0) {
      DecodeResult d = dec->decode(std::span(out.data(), e.bytes), pcm);
      ASSERT_EQ(d.status, CodecStatus::Ok);
      EXPECT_EQ(d.samples, (e.bytes + 8) / 10 * 80);
    }
  }
  std::printf("G.729B on silence: %d speech, %d SID, %d empty packets\n", voice, sid, none);
  EXPECT_GE(sid, 1);
  EXPECT_GE(none, 100);
  EXPECT_LE(voice, 10);
}

// Annex B receive side: after a SID, concealing the untransmitted frames gives comfort noise
// near the sender's background level (G.729 B.4), not silence and not a loud burst.
TEST(G729, ConcealAfterSidContinuesComfortNoise) {
  auto enc = makeEncoder(CodecId::G729);
  auto dec = makeDecoder(CodecId::G729);
  std::array<std::int16_t, 160> frame{};
  std::array<std::uint8_t, kMaxPayloadBytes> out{};
  std::array<std::int16_t, kMaxDecodedSamples> pcm{};
  std::mt19937 rng(3);
  std::normal_distribution<double> noise(0, 100);  // about -50 dBov
  SineSource talk(440, 8000);
  std::vector<std::int16_t> tail;
  int concealed = 0;
  for (int i = 0; i < 100; ++i) {
    if (i < 25) {
      talk.fill(frame);
    } else {
      for (auto& s : frame) s = static_cast<std::int16_t>(noise(rng));
    }
    EncodeResult e = enc->encode(frame, out);
    DecodeResult d =
        e.bytes > 0 ? dec->decode(std::span(out.data(), e.bytes), pcm) : dec->conceal(160, pcm);
    ASSERT_EQ(d.status, CodecStatus::Ok);
    if (e.bytes == 0) ++concealed;
    if (i >= 60)
      tail.insert(tail.end(), pcm.begin(), pcm.begin() + static_cast<std::ptrdiff_t>(d.samples));
  }
  double inputDbov = 20 * std::log10(100 / 32767.0);
  double outputDbov = test::toDb(test::meanPower(tail) / (32767.0 * 32767.0));
  std::printf("G.729B CNG: input %.1f dBov, comfort noise %.1f dBov, %d frames concealed\n",
              inputDbov, outputDbov, concealed);
  EXPECT_GE(concealed, 30);
  EXPECT_NEAR(outputDbov, inputDbov, 8.0);
}

// RFC 7587 3.1.3: with usedtx=1 the encoder stops sending in silence (a packet about every
// 400 ms keeps the comfort noise going).
TEST(OpusDtx, SilenceIsMostlyNotSent) {
  CodecParams p;
  p.opus.useDtx = true;
  auto enc = makeEncoder(CodecId::Opus, p);
  std::vector<std::int16_t> frame(enc->samplesPerPacket(), 0);
  std::array<std::uint8_t, kMaxPayloadBytes> out{};
  int sent = 0;
  for (int i = 0; i < 100; ++i) {
    EncodeResult e = enc->encode(frame, out);
    ASSERT_EQ(e.status, CodecStatus::Ok);
    if (i >= 20 && e.bytes > 0) ++sent;
  }
  std::printf("Opus DTX: %d of 80 silent frames sent\n", sent);
  EXPECT_LE(sent, 10);
  CodecParams noDtx;
  auto plain = makeEncoder(CodecId::Opus, noDtx);
  EXPECT_GT(plain->encode(frame, out).bytes, 0u);
}

TEST(G729, NoAnnexBSendsEveryFrame) {
  CodecParams p;
  p.g729.annexB = false;
  auto enc = makeEncoder(CodecId::G729, p);
  std::array<std::int16_t, 160> frame{};
  std::array<std::uint8_t, kMaxPayloadBytes> out{};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(enc->encode(frame, out).bytes, 20u);
}

TEST(G729, DecoderHandlesPacketSizes) {
  auto dec = makeDecoder(CodecId::G729);
  std::array<std::int16_t, kMaxDecodedSamples> pcm{};
  // Real frames from the encoder.
  auto enc = makeEncoder(CodecId::G729, withPtime(40, false));
  SineSource sine(440, 8000);
  std::array<std::int16_t, 320> frame{};
  std::array<std::uint8_t, kMaxPayloadBytes> bytes{};
  sine.fill(frame);
  ASSERT_EQ(enc->encode(frame, bytes).bytes, 40u);
  for (std::size_t len : {10u, 20u, 30u, 40u}) {
    DecodeResult d = dec->decode(std::span(bytes.data(), len), pcm);
    EXPECT_EQ(d.status, CodecStatus::Ok);
    EXPECT_EQ(d.samples, len / 10 * 80);
  }
  std::array<std::uint8_t, 22> withSid{};
  std::copy_n(bytes.begin(), 20, withSid.begin());
  DecodeResult d = dec->decode(withSid, pcm);
  EXPECT_EQ(d.status, CodecStatus::Ok);
  EXPECT_EQ(d.samples, 240u);  // two frames + one SID frame
  for (std::size_t bad : {1u, 5u, 11u, 13u, 19u}) {
    EXPECT_EQ(dec->decode(std::span(bytes.data(), bad), pcm).status, CodecStatus::BadPayload);
  }
  EXPECT_EQ(dec->decode(std::span(bytes.data(), 40), std::span(pcm.data(), 100)).status,
            CodecStatus::BufferTooSmall);
}

// Random bytes into every decoder: only Ok/BadPayload, never more samples than the buffer
// (run under ASan/UBSan in the sanitizer build; a fuzz-style check of untrusted payloads).
TEST(Decoders, RandomPayloadsAreAnsweredNotCrashedOn) {
  std::mt19937 rng(42);
  std::array<std::int16_t, kMaxDecodedSamples> pcm{};
  std::vector<std::uint8_t> payload;
  for (CodecId id : {CodecId::Pcmu, CodecId::Pcma, CodecId::G722, CodecId::G729, CodecId::Opus}) {
    auto dec = makeDecoder(id);
    int ok = 0;
    for (int i = 0; i < 300; ++i) {
      payload.resize(rng() % 200);
      for (auto& b : payload) b = static_cast<std::uint8_t>(rng());
      DecodeResult d = dec->decode(payload, pcm);
      EXPECT_TRUE(d.status == CodecStatus::Ok || d.status == CodecStatus::BadPayload);
      EXPECT_LE(d.samples, pcm.size());
      if (d.status == CodecStatus::Ok) ++ok;
    }
    EXPECT_GT(ok, 0);
    EXPECT_EQ(dec->decode({}, pcm).status, CodecStatus::BadPayload);
  }
}

}  // namespace
}  // namespace medius::media::codec
