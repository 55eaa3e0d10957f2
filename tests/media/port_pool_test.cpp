// The RTP/RTCP port pair pool (medius/media/port_pool.hpp).
#include <gtest/gtest.h>

#include <set>

#include "medius/media/port_pool.hpp"

namespace medius::media {
namespace {

TEST(PortPool, HandsOutEvenPortsWithTheirRtcpPortInRange) {
  PortPool pool(20001, 20010);  // pairs 20002/3, 20004/5, 20006/7, 20008/9
  EXPECT_EQ(pool.totalPairs(), 4u);
  EXPECT_EQ(pool.freePairs(), 4u);
  std::set<std::uint16_t> seen;
  for (int i = 0; i < 4; ++i) {
    auto port = pool.acquire();
    ASSERT_TRUE(port);
    EXPECT_EQ(*port % 2, 0);
    EXPECT_GE(*port, 20002);
    EXPECT_LE(*port + 1, 20010);
    EXPECT_TRUE(seen.insert(*port).second);
  }
  EXPECT_EQ(pool.freePairs(), 0u);
  EXPECT_FALSE(pool.acquire());
}

TEST(PortPool, ReleasedPairsComeBackLast) {
  PortPool pool(30000, 30005);  // 30000, 30002, 30004
  auto a = pool.acquire();
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, 30000);
  pool.release(*a);
  EXPECT_EQ(pool.freePairs(), 3u);
  EXPECT_EQ(*pool.acquire(), 30002);
  EXPECT_EQ(*pool.acquire(), 30004);
  EXPECT_EQ(*pool.acquire(), 30000);  // the least recently released
}

TEST(PortPool, AnOddMaximumLeavesNoHalfPair) {
  PortPool pool(40000, 40002);  // 40000/40001 only: 40002 has no 40003
  EXPECT_EQ(pool.totalPairs(), 1u);
}

}  // namespace
}  // namespace medius::media
