// In-band DTMF: spandsp generation -> detection for all 16 digits at 8, 16 and 48 kHz.
#include "medius/media/codec/dtmf_tones.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "medius/media/codec/codec.hpp"
#include "signal.hpp"

namespace medius::media::codec {
namespace {

class DtmfRate : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(DtmfRate, AllSixteenDigitsGenerateThenDetect) {
  const std::uint32_t rate = GetParam();
  DtmfGenerator gen(rate);
  DtmfDetector det(rate);
  const std::string digits = "0123456789*#ABCD";
  std::vector<std::int16_t> frame(rate / 50);  // 20 ms
  std::string started, ended;
  std::vector<std::uint64_t> startAt, endAt;
  std::array<DtmfEvent, DtmfDetector::kMaxEventsPerFrame> events{};
  auto run = [&](int frames) {
    for (int i = 0; i < frames; ++i) {
      gen.generate(frame);
      std::size_t n = det.process(frame, events);
      for (std::size_t k = 0; k < n; ++k) {
        if (events[k].edge == DtmfEdge::Start) {
          started += events[k].digit;
          startAt.push_back(events[k].sample);
        } else {
          ended += events[k].digit;
          endAt.push_back(events[k].sample);
        }
      }
    }
  };
  for (char d : digits) {
    ASSERT_TRUE(gen.start(d, 100));
    EXPECT_TRUE(gen.active());
    run(5);  // 100 ms of tone
    EXPECT_FALSE(gen.active());
    run(5);  // 100 ms of silence
  }
  EXPECT_EQ(started, digits);
  EXPECT_EQ(ended, digits);
  ASSERT_EQ(startAt.size(), 16u);
  ASSERT_EQ(endAt.size(), 16u);
  for (std::size_t i = 0; i < startAt.size(); ++i) {
    // Each digit starts within 60 ms of its 200 ms slot and lasts about 100 ms.
    std::uint64_t slot = i * rate / 5;
    EXPECT_GE(startAt[i], slot);
    EXPECT_LE(startAt[i], slot + rate * 60 / 1000);
    EXPECT_NEAR(static_cast<double>(endAt[i] - startAt[i]), rate / 10.0, rate * 0.04);
  }
  EXPECT_EQ(det.droppedEvents(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Rates, DtmfRate, ::testing::Values(8000u, 16000u, 48000u));

TEST(Dtmf, GeneratorLevelAndBadInput) {
  DtmfGenerator gen(8000);
  EXPECT_FALSE(gen.start('x', 100));
  EXPECT_FALSE(gen.start('1', 0));
  ASSERT_TRUE(gen.start('a', 40));
  std::vector<std::int16_t> frame(160);
  EXPECT_EQ(gen.generate(frame), 160u);
  // Two tones (697 + 1633 Hz for 'A') at -10 dBm0 each.
  EXPECT_GT(test::tonePower(frame, 697, 8000), 1e6);
  EXPECT_GT(test::tonePower(frame, 1633, 8000), 1e6);
  EXPECT_EQ(gen.generate(frame), 160u);
  EXPECT_EQ(gen.generate(frame), 0u);
  EXPECT_EQ(test::meanPower(frame), 0);
  std::vector<std::int16_t> odd(7);
  DtmfGenerator wide(16000);
  EXPECT_EQ(wide.generate(odd), 0u);
  EXPECT_THROW(DtmfGenerator(44100), std::invalid_argument);
}

}  // namespace
}  // namespace medius::media::codec

namespace medius::media::codec {
namespace {

// Digits rendered in-band survive a G.711 / G.722 leg: generate, encode, decode, detect.
TEST(Dtmf, DigitsSurviveG711AndG722) {
  for (CodecId id : {CodecId::Pcmu, CodecId::Pcma, CodecId::G722}) {
    auto enc = makeEncoder(id);
    auto dec = makeDecoder(id);
    DtmfGenerator gen(enc->sampleRate());
    DtmfDetector det(enc->sampleRate());
    std::vector<std::int16_t> frame(enc->samplesPerPacket());
    std::array<std::uint8_t, kMaxPayloadBytes> payload{};
    std::array<std::int16_t, kMaxDecodedSamples> pcm{};
    std::array<DtmfEvent, DtmfDetector::kMaxEventsPerFrame> events{};
    std::string got;
    for (char d : std::string("159#D*0")) {
      gen.start(d, 80);
      for (int i = 0; i < 8; ++i) {  // 80 ms tone, 80 ms gap
        gen.generate(frame);
        EncodeResult e = enc->encode(frame, payload);
        DecodeResult r = dec->decode(std::span(payload.data(), e.bytes), pcm);
        std::size_t n = det.process(std::span(pcm.data(), r.samples), events);
        for (std::size_t k = 0; k < n; ++k) {
          if (events[k].edge == DtmfEdge::Start) got += events[k].digit;
        }
      }
    }
    EXPECT_EQ(got, "159#D*0") << codecInfo(id).encodingName;
  }
}

// A steady 1 kHz tone and a two-tone pair that is not DTMF (440 + 350 Hz, dial tone) are
// not digits.
TEST(Dtmf, NoFalseDigitsOnTones) {
  DtmfDetector det(8000);
  test::SineSource a(1000, 8000), b(440, 8000, 3000), c(350, 8000, 3000);
  std::vector<std::int16_t> frame(160), x(160), y(160);
  std::array<DtmfEvent, DtmfDetector::kMaxEventsPerFrame> events{};
  std::size_t total = 0;
  for (int i = 0; i < 100; ++i) {
    if (i < 50) {
      a.fill(frame);
    } else {
      b.fill(x);
      c.fill(y);
      for (std::size_t k = 0; k < frame.size(); ++k) {
        frame[k] = static_cast<std::int16_t>(x[k] + y[k]);
      }
    }
    total += det.process(frame, events);
  }
  EXPECT_EQ(total, 0u);
}

}  // namespace
}  // namespace medius::media::codec
