// SilenceSuppressor: which frames toward a CN peer become CN packets (RFC 3389), and which
// never do.
#include "medius/media/codec/silence_suppressor.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "medius/media/codec/comfort_noise.hpp"
#include "signal.hpp"

namespace medius::media::codec {
namespace {

constexpr std::size_t kFrame = 160;  // 20 ms at 8 kHz

std::vector<SilenceDecision> run(SilenceSuppressor& s, std::vector<std::int16_t> frame, int frames) {
  std::vector<SilenceDecision> out;
  for (int i = 0; i < frames; ++i) out.push_back(s.next(frame));
  return out;
}

std::vector<SilenceDecision> runNoise(SilenceSuppressor& s, ComfortNoiseGenerator& noise, int frames) {
  std::vector<SilenceDecision> out;
  std::vector<std::int16_t> frame(kFrame);
  for (int i = 0; i < frames; ++i) {
    noise.generate(frame);
    out.push_back(s.next(frame));
  }
  return out;
}

std::vector<SilenceDecision> runTone(SilenceSuppressor& s, test::SineSource& sine, int frames) {
  std::vector<SilenceDecision> out;
  for (int i = 0; i < frames; ++i) out.push_back(s.next(sine.take(kFrame)));
  return out;
}

int count(const std::vector<SilenceDecision>& d, SilenceAction action) {
  return static_cast<int>(std::count_if(d.begin(), d.end(), [action](const auto& x) { return x.action == action; }));
}

TEST(SilenceSuppressor, SilenceAfterTheHangoverIsOneCnPacketThenARefreshEvery200Ms) {
  SilenceSuppressor s(8000, kFrame);
  test::SineSource speech(440, 8000);
  EXPECT_EQ(count(runTone(s, speech, 50), SilenceAction::Audio), 50);
  ComfortNoiseGenerator noise(62);
  auto d = runNoise(s, noise, 10);  // the 200 ms hangover: still audio
  EXPECT_EQ(count(d, SilenceAction::Audio), 10);
  EXPECT_FALSE(s.silent());
  d = runNoise(s, noise, 41);
  ASSERT_EQ(d[0].action, SilenceAction::ComfortNoise) << "silence starts with a CN packet";
  EXPECT_NEAR(d[0].levelDbov, 62, 1) << "the background's level";
  EXPECT_TRUE(s.silent());
  for (int i = 1; i < 41; ++i) {
    // Every 10th frame (200 ms) repeats the level; the others send nothing.
    EXPECT_EQ(d[static_cast<std::size_t>(i)].action, i % 10 == 0 ? SilenceAction::ComfortNoise : SilenceAction::Nothing)
        << i;
  }
  // Speech resumes at once, no onset lost.
  EXPECT_EQ(s.next(speech.take(kFrame)).action, SilenceAction::Audio);
  EXPECT_FALSE(s.silent());
}

TEST(SilenceSuppressor, DigitalSilenceIsTheQuietestLevel) {
  SilenceSuppressor s(8000, kFrame);
  auto d = run(s, std::vector<std::int16_t>(kFrame, 0), 11);
  EXPECT_EQ(d[10].action, SilenceAction::ComfortNoise);
  EXPECT_EQ(d[10].levelDbov, kComfortNoiseMinLevel);
}

TEST(SilenceSuppressor, ALevelChangeSendsAnUpdateBeforeTheRefresh) {
  SilenceSuppressor s(8000, kFrame);
  ComfortNoiseGenerator noise(70);
  auto d = runNoise(s, noise, 12);
  ASSERT_EQ(d[10].action, SilenceAction::ComfortNoise);
  noise.setLevel(55);  // louder background, still below the -50 dBov threshold
  d = runNoise(s, noise, 5);
  auto update = std::find_if(d.begin(), d.end(), [](const auto& x) { return x.action == SilenceAction::ComfortNoise; });
  ASSERT_NE(update, d.end());
  EXPECT_LT(update - d.begin(), 5) << "after the 100 ms between updates, not at the 200 ms refresh";
  d = runNoise(s, noise, 10);
  EXPECT_NEAR(std::find_if(d.begin(), d.end(), [](const auto& x) { return x.action == SilenceAction::ComfortNoise; })
                  ->levelDbov,
              55, 1);
}

TEST(SilenceSuppressor, AFadingTailGetsAnUpdateEvery100MsNotEveryFrame) {
  SilenceSuppressor s(8000, kFrame);
  ComfortNoiseGenerator noise(60);
  ASSERT_EQ(runNoise(s, noise, 11)[10].action, SilenceAction::ComfortNoise);
  std::vector<SilenceDecision> d;
  for (int level = 63; level <= 120; level += 3) {  // 3 dB quieter every frame
    noise.setLevel(static_cast<std::uint8_t>(level));
    d.push_back(runNoise(s, noise, 1)[0]);
  }
  const int updates = count(d, SilenceAction::ComfortNoise);
  EXPECT_GE(updates, 3);
  EXPECT_LE(updates, 4) << "20 frames: one update per 5 frames at most";
  // Below -90 dBov the level no longer matters: only the refresh.
  noise.setLevel(127);
  EXPECT_EQ(count(runNoise(s, noise, 9), SilenceAction::ComfortNoise), 1);
}

TEST(SilenceSuppressor, AToneIsNeverReplacedByComfortNoise) {
  // A minute of a held tone at normal level and one just above the threshold (-45 dBov):
  // energy, not stationarity, decides (a noise-tracking VAD would learn them as noise).
  for (double amplitude : {test::kMinus10Dbfs, 32767.0 * 0.0079}) {
    SilenceSuppressor s(8000, kFrame);
    test::SineSource tone(2100, 8000, amplitude);
    EXPECT_EQ(count(runTone(s, tone, 3000), SilenceAction::Audio), 3000) << amplitude;
  }
}

TEST(SilenceSuppressor, KnownSilenceNeedsNoHangoverAndKeepsTheSourcesLevel) {
  SilenceSuppressor s(8000, kFrame);
  test::SineSource speech(440, 8000);
  runTone(s, speech, 10);
  // The source sent CN at -40 dBov (above the threshold): its noise is CN at once.
  s.sourceSilent(40);
  ComfortNoiseGenerator noise(40);
  auto d = runNoise(s, noise, 11);
  EXPECT_EQ(d[0].action, SilenceAction::ComfortNoise);
  EXPECT_EQ(d[0].levelDbov, 40);
  EXPECT_EQ(count(d, SilenceAction::ComfortNoise), 2);
  EXPECT_EQ(s.backgroundLevel(), 40);
  // Louder than its CN: audio (what was still in the pipeline, or the talkspurt).
  EXPECT_EQ(s.next(speech.take(kFrame)).action, SilenceAction::Audio);
  s.sourceActive();
  noise.setLevel(60);
  EXPECT_EQ(count(runNoise(s, noise, 10), SilenceAction::Audio), 10) << "measured again: the hangover applies";
}

TEST(SilenceSuppressor, FramesOf30MsCountTheHangoverAndRefreshInTime) {
  SilenceSuppressor s(16000, 480);  // G.722 at 30 ms
  auto d = run(s, std::vector<std::int16_t>(480, 0), 7 + 1 + 7);
  EXPECT_EQ(count(std::vector(d.begin(), d.begin() + 7), SilenceAction::Audio), 7);  // ceil(200 / 30)
  EXPECT_EQ(d[7].action, SilenceAction::ComfortNoise);
  EXPECT_EQ(d[14].action, SilenceAction::ComfortNoise);  // 7 x 30 ms >= 200 ms
  s.reset();
  EXPECT_EQ(s.next(std::vector<std::int16_t>(480, 0)).action, SilenceAction::Audio) << "a new stream starts talking";
  EXPECT_THROW(SilenceSuppressor(8000, 0), std::invalid_argument);
}

}  // namespace
}  // namespace medius::media::codec
