// ChallengePool (medius/gateway/challenge_pool.hpp): challenge sets issued in advance by the
// registrar, each handed out once, young ones only, refills asked for below the low mark,
// on a ManualClock (no sockets, no registrar).
#include <gtest/gtest.h>

#include <string>

#include "medius/common/clock.hpp"
#include "medius/gateway/challenge_pool.hpp"

namespace medius::gateway {
namespace {

v1::ChallengeResponse sets(int count, std::uint32_t ttlSeconds = 300, int first = 1) {
  v1::ChallengeResponse r;
  r.set_nonce_ttl_seconds(ttlSeconds);
  for (int i = 0; i < count; ++i) {
    auto* c = r.add_register_sets()->add_challenges();
    c->set_nonce("n" + std::to_string(first + i));
  }
  return r;
}

ChallengePool::Settings small() {
  ChallengePool::Settings s;
  s.batch = 4;
  s.low = 2;
  s.maxAgeMs = 30000;
  s.retryMs = 10000;
  return s;
}

TEST(ChallengePoolTest, EachSetIsHandedOutOnceInOrder) {
  ManualClock clock;
  ChallengePool pool(clock, small());
  EXPECT_FALSE(pool.take());
  EXPECT_TRUE(pool.wantsRefill());
  pool.asking();
  EXPECT_FALSE(pool.wantsRefill());  // one refill in flight at a time
  pool.refilled(sets(4));
  EXPECT_EQ(pool.size(), 4u);
  EXPECT_FALSE(pool.wantsRefill());
  EXPECT_EQ(pool.take()->challenges(0).nonce(), "n1");
  EXPECT_EQ(pool.take()->challenges(0).nonce(), "n2");
  EXPECT_FALSE(pool.wantsRefill());
  EXPECT_EQ(pool.take()->challenges(0).nonce(), "n3");
  EXPECT_TRUE(pool.wantsRefill());  // below the low mark (2)
  EXPECT_EQ(pool.request().register_sets(), 4u);
  EXPECT_EQ(pool.request().realm(), "");
  EXPECT_EQ(pool.take()->challenges(0).nonce(), "n4");
  EXPECT_FALSE(pool.take());
}

TEST(ChallengePoolTest, OnlyYoungSetsAreUsed) {
  ManualClock clock;
  ChallengePool pool(clock, small());
  pool.asking();
  pool.refilled(sets(2));
  clock.advanceMs(29999);
  EXPECT_TRUE(pool.take());
  clock.advanceMs(1);  // 30 s: too old to hand out
  EXPECT_FALSE(pool.take());
  EXPECT_EQ(pool.size(), 0u);
  // Never past a quarter of the nonces' lifetime: 40 s nonces are used for 10 s.
  pool.asking();
  pool.refilled(sets(1, 40));
  clock.advanceMs(10000);
  EXPECT_FALSE(pool.take());
}

TEST(ChallengePoolTest, ARegistrarThatIssuesNoneOrFailsIsAskedAgainLater) {
  ManualClock clock;
  ChallengePool pool(clock, small());
  ASSERT_TRUE(pool.wantsRefill());
  pool.asking();
  pool.refilled(v1::ChallengeResponse{});  // REGISTER needs no authentication there
  EXPECT_FALSE(pool.take());
  EXPECT_FALSE(pool.wantsRefill());
  clock.advanceMs(9999);
  EXPECT_FALSE(pool.wantsRefill());
  clock.advanceMs(1);
  ASSERT_TRUE(pool.wantsRefill());
  pool.asking();
  pool.refillFailed();
  EXPECT_FALSE(pool.wantsRefill());
  clock.advanceMs(10000);
  EXPECT_TRUE(pool.wantsRefill());
}

}  // namespace
}  // namespace medius::gateway
