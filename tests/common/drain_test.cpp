// DrainState: the decision of a draining service (medius/common/drain.hpp), on a fake clock.
#include "medius/common/drain.hpp"

#include <gtest/gtest.h>

namespace medius {
namespace {

using namespace std::chrono_literals;
using Verdict = DrainState::Verdict;

const DrainState::Clock::time_point t0{};

TEST(DrainState, ServingUntilAskedThenDrainedWhenTheWorkEnds) {
  DrainState d(60s);
  EXPECT_FALSE(d.draining());
  EXPECT_EQ(d.verdict(t0, 3), Verdict::Serving);
  EXPECT_EQ(d.signal(t0), Verdict::Draining);
  EXPECT_TRUE(d.draining());
  EXPECT_EQ(d.verdict(t0 + 10s, 3), Verdict::Draining);
  EXPECT_EQ(d.remaining(t0 + 10s), 50s);
  EXPECT_EQ(d.verdict(t0 + 20s, 0), Verdict::Drained);
}

TEST(DrainState, TheLimitEndsWhatIsLeft) {
  DrainState d(60s);
  d.signal(t0);
  EXPECT_EQ(d.verdict(t0 + 59s, 1), Verdict::Draining);
  EXPECT_EQ(d.verdict(t0 + 60s, 1), Verdict::LimitReached);
  EXPECT_EQ(d.remaining(t0 + 61s), 0ms);
  // Work gone at the same instant: drained, not cut short.
  EXPECT_EQ(d.verdict(t0 + 60s, 0), Verdict::Drained);
}

TEST(DrainState, ASecondSignalEndsNow) {
  DrainState d(60s);
  EXPECT_EQ(d.signal(t0), Verdict::Draining);
  EXPECT_EQ(d.signal(t0 + 1s), Verdict::EndNow);
  EXPECT_EQ(d.verdict(t0 + 1s, 5), Verdict::EndNow);
}

TEST(DrainState, ARequestIsNotASignal) {
  // medctl drain, then the SIGTERM of the pod's deletion: the calls still go on.
  DrainState d(60s);
  EXPECT_TRUE(d.request(t0));
  EXPECT_FALSE(d.request(t0 + 1s));
  EXPECT_EQ(d.signal(t0 + 2s), Verdict::Draining);
  EXPECT_EQ(d.verdict(t0 + 3s, 2), Verdict::Draining);
  EXPECT_EQ(d.signal(t0 + 4s), Verdict::EndNow);
}

TEST(DrainState, ARequestedGraceOnlyShortensTheLimit) {
  DrainState d(60s);
  EXPECT_TRUE(d.request(t0, 10s));
  EXPECT_EQ(d.verdict(t0 + 10s, 1), Verdict::LimitReached);
  DrainState e(60s);
  e.request(t0);
  e.request(t0, 120s);  // later and longer: the first deadline stays
  EXPECT_EQ(e.verdict(t0 + 60s, 1), Verdict::LimitReached);
  e.request(t0 + 1s, 5s);  // shorter: brought forward
  EXPECT_EQ(e.remaining(t0 + 2s), 4s);
  DrainState f(60s);
  f.request(t0, 0s);  // 0: the configured limit
  EXPECT_EQ(f.remaining(t0), 60s);
}

}  // namespace
}  // namespace medius
