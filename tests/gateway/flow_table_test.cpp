// FlowTable without sockets: which flows are watched, pings, timeouts, closed connections,
// reports, un-REGISTER.
#include "medius/gateway/flow_table.hpp"

#include <gtest/gtest.h>

namespace medius::gateway {
namespace {

FlowKey udp(const std::string& host, std::uint32_t port) {
  return FlowKey{v1::TRANSPORT_UDP, host, port};
}
FlowKey tcp(const std::string& host, std::uint32_t port) {
  return FlowKey{v1::TRANSPORT_TCP, host, port};
}
v1::Flow natFlow() {
  v1::Flow f;
  f.set_nat(true);
  return f;
}

FlowSettings settings() {
  FlowSettings s;
  s.pingIntervalMs = 1000;
  s.udpTimeoutMs = 5000;
  s.forgetAfterMs = 60000;
  return s;
}

TEST(FlowTable, WatchesStreamsNatAndOutboundUdpButNotLanUdpOrProxiedFlows) {
  v1::Flow plain;
  v1::Flow outbound;
  outbound.set_outbound(true);
  EXPECT_TRUE(FlowTable::watched(tcp("192.0.2.1", 40000), plain, true));
  EXPECT_TRUE(FlowTable::watched(udp("192.0.2.1", 5060), natFlow(), true));
  EXPECT_TRUE(FlowTable::watched(udp("192.0.2.1", 5060), outbound, true));
  EXPECT_FALSE(FlowTable::watched(udp("192.0.2.1", 5060), plain, true));
  // Behind an edge proxy (Path): the proxy holds the flow.
  EXPECT_FALSE(FlowTable::watched(tcp("192.0.2.1", 40000), plain, false));
  EXPECT_FALSE(FlowTable::watched(udp("", 0), natFlow(), true));
}

TEST(FlowTable, SilentUdpFlowIsPingedThenUnreachableThenActiveWhenHeardAgain) {
  FlowTable t(settings());
  auto key = udp("203.0.113.7", 40112);
  EXPECT_TRUE(t.registered(key, "sip:alice@example.com", "sip:c@10.200.10.5", natFlow(), true, 0));
  EXPECT_FALSE(t.registered(key, "sip:bob@example.com", "sip:c@10.200.10.5", natFlow(), true, 0));
  EXPECT_TRUE(t.duePings(500).empty());
  auto pings = t.duePings(1000);
  ASSERT_EQ(pings.size(), 1u);
  EXPECT_EQ(pings[0].key, key);
  EXPECT_EQ(pings[0].contact, "sip:c@10.200.10.5");
  EXPECT_TRUE(t.duePings(1500).empty());  // once per interval
  EXPECT_EQ(t.duePings(2000).size(), 1u);
  // An answer resets the clock.
  EXPECT_TRUE(t.heard(key, 2100).empty());
  EXPECT_TRUE(t.duePings(2500).empty());
  EXPECT_TRUE(t.expire(7000).empty());
  auto reports = t.expire(7100);
  ASSERT_EQ(reports.size(), 2u);
  for (const auto& r : reports) {
    EXPECT_EQ(r.state, v1::Flow::STATE_UNREACHABLE);
    EXPECT_EQ(r.reason, "keepalive timeout");
    EXPECT_EQ(r.lastHeardMs, 2100);
    EXPECT_EQ(r.key, key);
  }
  EXPECT_EQ(reports[0].aor, "sip:alice@example.com");
  EXPECT_EQ(reports[1].aor, "sip:bob@example.com");
  EXPECT_TRUE(t.expire(8000).empty());     // reported once
  EXPECT_TRUE(t.duePings(9000).empty());   // not pinged while unreachable
  EXPECT_EQ(t.unreachableCount(), 1u);
  auto back = t.heard(key, 9000);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].state, v1::Flow::STATE_ACTIVE);
  EXPECT_EQ(t.activeCount(), 1u);
}

TEST(FlowTable, ClosedConnectionIsUnreachableForGoodAndForgottenLater) {
  FlowTable t(settings());
  auto key = tcp("203.0.113.7", 50000);
  t.registered(key, "sip:alice@example.com", "sip:c@10.200.10.5", v1::Flow{}, true, 0);
  EXPECT_EQ(t.streamKeys(), std::vector<FlowKey>{key});
  EXPECT_TRUE(t.duePings(100000).empty());  // streams are not pinged
  EXPECT_TRUE(t.expire(50000).empty());     // nor timed out
  auto reports = t.closed(key, 50000);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].reason, "connection closed");
  EXPECT_TRUE(t.closed(key, 50001).empty());
  EXPECT_TRUE(t.heard(key, 50002).empty());  // a closed connection never comes back
  EXPECT_TRUE(t.streamKeys().empty());
  t.expire(50000 + 60000);
  EXPECT_FALSE(t.contains(key));
  EXPECT_EQ(t.forgotten(), std::vector<FlowKey>{key});
  EXPECT_TRUE(t.forgotten().empty());
}

TEST(FlowTable, UnregisterLeavesTheFlowAndTheLastOneForgetsIt) {
  FlowTable t(settings());
  auto key = udp("203.0.113.7", 40112);
  t.registered(key, "sip:alice@example.com", "sip:c@10.200.10.5", natFlow(), true, 0);
  t.registered(key, "sip:bob@example.com", "sip:c@10.200.10.5", natFlow(), true, 0);
  t.registered(key, "sip:alice@example.com", "sip:c@10.200.10.5", natFlow(), false, 10);
  ASSERT_TRUE(t.contains(key));
  EXPECT_EQ(t.view()[0].aors, std::vector<std::string>{"sip:bob@example.com"});
  t.registered(key, "sip:bob@example.com", "sip:c@10.200.10.5", natFlow(), false, 20);
  EXPECT_FALSE(t.contains(key));
  EXPECT_EQ(t.forgotten(), std::vector<FlowKey>{key});
  EXPECT_TRUE(t.heard(key, 30).empty());  // unknown: ignored
}

TEST(FlowTable, AFlowNobodyRegistersOverAnyMoreIsForgotten) {
  FlowSettings s = settings();
  s.registrationLifetimeMs = 100000;
  FlowTable t(s);
  auto key = tcp("203.0.113.7", 50000);
  t.registered(key, "sip:alice@example.com", "sip:c@10.200.10.5", v1::Flow{}, true, 0);
  t.registered(key, "sip:alice@example.com", "sip:c@10.200.10.5", v1::Flow{}, true, 60000);
  EXPECT_TRUE(t.expire(159999).empty());
  EXPECT_TRUE(t.contains(key));
  EXPECT_TRUE(t.expire(160000).empty());  // forgotten without a report
  EXPECT_FALSE(t.contains(key));
  EXPECT_EQ(t.forgotten(), std::vector<FlowKey>{key});
}

TEST(FlowTable, RegisterRevivesAnUnreachableFlowWithoutAReport) {
  FlowTable t(settings());
  auto key = udp("203.0.113.7", 40112);
  t.registered(key, "sip:alice@example.com", "sip:c@10.200.10.5", natFlow(), true, 0);
  ASSERT_EQ(t.expire(6000).size(), 1u);
  t.registered(key, "sip:alice@example.com", "sip:c@10.200.10.5", natFlow(), true, 6500);
  auto v = t.view();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].state, v1::Flow::STATE_ACTIVE);
  EXPECT_EQ(v[0].lastHeardMs, 6500);
  EXPECT_TRUE(v[0].nat);
  EXPECT_EQ(v[0].key.text(), "udp:203.0.113.7:40112");
}

}  // namespace
}  // namespace medius::gateway
