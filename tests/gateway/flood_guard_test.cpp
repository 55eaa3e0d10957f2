// FloodGuard (medius/gateway/flood_guard.hpp): per-source rates and bans with expiry, the
// table bound, trusted and exempt sources, User-Agent deny patterns and the global limits,
// on a ManualClock (no sockets, no waiting).
#include <gtest/gtest.h>

#include <string>

#include "medius/common/clock.hpp"
#include "medius/gateway/flood_guard.hpp"

namespace medius::gateway {
namespace {

IpAddress ip(const char* text) {
  auto parsed = IpAddress::parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed.value_or(IpAddress{});
}

FloodRequest from(const char* source, std::string_view ua = "SIPp") {
  FloodRequest r;
  r.source = ip(source);
  r.userAgent = ua;
  return r;
}

FloodSettings small() {
  FloodSettings s;
  s.windowMs = 1000;
  s.maxRequests = 10;
  s.banSeconds = 30;
  s.maxSources = 100;
  return s;
}

TEST(IpAddress, ParsesV4AndV6AndRefusesTheRest) {
  EXPECT_TRUE(IpAddress::parse("127.0.0.1"));
  EXPECT_TRUE(IpAddress::parse("2001:db8::1"));
  EXPECT_EQ(IpAddress::parse("::ffff:10.200.0.1"), IpAddress::parse("10.200.0.1"));
  EXPECT_FALSE(IpAddress::parse(""));
  EXPECT_FALSE(IpAddress::parse("localhost"));
  EXPECT_FALSE(IpAddress::parse("192.0.2.1:5060"));
  EXPECT_FALSE(IpAddress::parse("[2001:db8::1]"));
  EXPECT_FALSE(IpAddress::parse("192.0.2.256"));
}

TEST(IpPrefix, MatchesItsAddresses) {
  auto p = IpPrefix::parse("192.0.2.0/24");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->contains(ip("192.0.2.200")));
  EXPECT_FALSE(p->contains(ip("192.0.3.1")));
  auto odd = IpPrefix::parse("198.0.0.0/9");
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->contains(ip("198.127.255.255")));
  EXPECT_FALSE(odd->contains(ip("198.128.0.0")));
  auto one = IpPrefix::parse("127.0.0.11");
  ASSERT_TRUE(one);
  EXPECT_TRUE(one->contains(ip("127.0.0.11")));
  EXPECT_FALSE(one->contains(ip("127.0.0.12")));
  auto v6 = IpPrefix::parse("2001:db8::/32");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(ip("2001:db8:ffff::1")));
  EXPECT_FALSE(v6->contains(ip("2001:db9::1")));
  EXPECT_TRUE(IpPrefix::parse("0.0.0.0/0")->contains(ip("203.0.113.9")));
  EXPECT_FALSE(IpPrefix::parse("192.0.2.0/33"));
  EXPECT_FALSE(IpPrefix::parse("192.0.2.0/"));
  EXPECT_FALSE(IpPrefix::parse("192.0.2.0/-1"));
  EXPECT_FALSE(IpPrefix::parse("192.0.2.0/1x"));
  EXPECT_FALSE(IpPrefix::parse("2001:db8::/129"));
  EXPECT_FALSE(IpPrefix::parse("example.com/8"));
}

TEST(FloodGuard, BansASourceOverItsRateAndDropsItUntilTheBanEnds) {
  ManualClock clock;
  FloodGuard guard(small(), clock);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(guard.check(from("127.0.0.50")), FloodVerdict::Pass) << i;
  EXPECT_EQ(guard.check(from("127.0.0.50")), FloodVerdict::DropBanned);
  EXPECT_TRUE(guard.isBanned(ip("127.0.0.50")));
  EXPECT_EQ(guard.bannedSources(), 1u);
  EXPECT_EQ(guard.bansTotal(), 1u);
  // Another source is not affected.
  EXPECT_EQ(guard.check(from("127.0.0.51")), FloodVerdict::Pass);
  // Banned for ban_s even when it goes quiet, and traffic during the ban does not extend it.
  clock.advanceMs(29'000);
  EXPECT_EQ(guard.check(from("127.0.0.50")), FloodVerdict::DropBanned);
  clock.advanceMs(1'000);
  EXPECT_EQ(guard.check(from("127.0.0.50")), FloodVerdict::Pass);
  EXPECT_FALSE(guard.isBanned(ip("127.0.0.50")));
  EXPECT_EQ(guard.bannedSources(), 0u);
  EXPECT_EQ(guard.bansTotal(), 1u);
}

TEST(FloodGuard, TlsHandshakesCountAsTheSourcesRequests) {
  ManualClock clock;
  FloodSettings settings = small();
  settings.maxRequestsPerSecond = 1;  // never applies to a connection
  FloodGuard guard(settings, clock);
  // Handshakes and requests share the window: 6 + 4 pass, the next of either is banned.
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(guard.checkConnection(ip("127.0.0.50"), false), FloodVerdict::Pass) << i;
  }
  for (int i = 0; i < 4; ++i) {
    FloodRequest inDialog = from("127.0.0.50");
    inDialog.inDialog = true;
    EXPECT_EQ(guard.check(inDialog), FloodVerdict::Pass) << i;
  }
  EXPECT_EQ(guard.checkConnection(ip("127.0.0.50"), false), FloodVerdict::DropBanned);
  EXPECT_EQ(guard.bansTotal(), 1u);
  EXPECT_EQ(guard.check(from("127.0.0.50")), FloodVerdict::DropBanned);
  // A trunk's address is never counted or banned.
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(guard.checkConnection(ip("127.0.0.11"), true), FloodVerdict::Pass) << i;
  }
  settings.enabled = false;
  FloodGuard off(settings, clock);
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(off.checkConnection(ip("127.0.0.50"), false), FloodVerdict::Pass) << i;
  }
}

TEST(FloodGuard, ASteadyRateUnderTheLimitIsNeverBanned) {
  ManualClock clock;
  FloodGuard guard(small(), clock);
  // 9 per second for a minute (limit 10 per 1 s window), spread evenly.
  for (int i = 0; i < 540; ++i) {
    ASSERT_EQ(guard.check(from("127.0.0.50")), FloodVerdict::Pass) << i;
    clock.advanceMs(111);
  }
  EXPECT_EQ(guard.bansTotal(), 0u);
}

TEST(FloodGuard, ABurstAcrossAWindowEdgeStillCounts) {
  ManualClock clock;
  FloodGuard guard(small(), clock);
  // 8 at the end of one window and 8 at the start of the next: 16 in 200 ms. The sliding
  // estimate sees them; two fixed windows alone would not.
  clock.advanceMs(900);
  for (int i = 0; i < 8; ++i) guard.check(from("127.0.0.50"));
  clock.advanceMs(200);
  FloodVerdict last = FloodVerdict::Pass;
  for (int i = 0; i < 8; ++i) last = guard.check(from("127.0.0.50"));
  EXPECT_EQ(last, FloodVerdict::DropBanned);
}

TEST(FloodGuard, AFloodStillGoingWhenTheBanEndsIsBannedAgain) {
  ManualClock clock;
  FloodGuard guard(small(), clock);
  for (int i = 0; i < 11; ++i) guard.check(from("127.0.0.50"));
  ASSERT_EQ(guard.bansTotal(), 1u);
  clock.advanceMs(30'000);
  int passed = 0;
  for (int i = 0; i < 50; ++i) passed += guard.check(from("127.0.0.50")) == FloodVerdict::Pass;
  EXPECT_EQ(passed, 10);
  EXPECT_EQ(guard.bansTotal(), 2u);
  EXPECT_EQ(guard.bannedSources(), 1u);
}

TEST(FloodGuard, TheSourceTableIsBoundedUnderASpoofedFlood) {
  ManualClock clock;
  FloodSettings s = small();
  s.maxSources = 64;
  FloodGuard guard(s, clock);
  // One banned source, then 10000 spoofed sources with one request each.
  for (int i = 0; i < 11; ++i) guard.check(from("198.51.100.7"));
  ASSERT_TRUE(guard.isBanned(ip("198.51.100.7")));
  for (int i = 0; i < 10000; ++i) {
    std::string a = "10.200." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    ASSERT_EQ(guard.check(from(a.c_str())), FloodVerdict::Pass);
    ASSERT_LE(guard.sources(), 64u);
  }
  // The banned source was the least recently seen and went with the churn; its ban is no
  // longer counted.
  EXPECT_EQ(guard.sources(), 64u);
  EXPECT_EQ(guard.bannedSources(), 0u);
  EXPECT_FALSE(guard.isBanned(ip("198.51.100.7")));
  // A source that keeps flooding stays in the table (it is always the most recent).
  for (int i = 0; i < 11; ++i) guard.check(from("198.51.100.8"));
  for (int i = 0; i < 1000; ++i) {
    std::string a = "10.200." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    guard.check(from(a.c_str()));
    ASSERT_EQ(guard.check(from("198.51.100.8")), FloodVerdict::DropBanned);
  }
  // The evicted ban's queued expiry must not release the later one.
  clock.advanceMs(30'000);
  EXPECT_EQ(guard.check(from("198.51.100.8")), FloodVerdict::Pass);
  EXPECT_EQ(guard.bannedSources(), 0u);
}

TEST(FloodGuard, TrustedAndExemptSourcesAreNeverBanned) {
  ManualClock clock;
  FloodSettings s = small();
  s.exempt = {*IpPrefix::parse("192.0.2.0/24")};
  FloodGuard guard(s, clock);
  FloodRequest trunk = from("127.0.0.11");
  trunk.trusted = true;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(guard.check(trunk), FloodVerdict::Pass);
    ASSERT_EQ(guard.check(from("192.0.2.44")), FloodVerdict::Pass);
  }
  EXPECT_EQ(guard.bansTotal(), 0u);
  EXPECT_EQ(guard.sources(), 0u);  // not even counted
}

TEST(FloodGuard, ScannerUserAgentsAreDroppedWhateverTheirSource) {
  ManualClock clock;
  FloodGuard guard(FloodSettings{}, clock);
  for (const char* ua : {"friendly-scanner", "sipvicious 0.3.0", "SIPVicious", "sipcli/v1.8",
                         "VaxSIPUserAgent/3.1", "pplsip"}) {
    EXPECT_EQ(guard.check(from("203.0.113.5", ua)), FloodVerdict::DropScanner) << ua;
  }
  FloodRequest trunk = from("127.0.0.11", "friendly-scanner");
  trunk.trusted = true;
  EXPECT_EQ(guard.check(trunk), FloodVerdict::DropScanner);
  EXPECT_EQ(guard.check(from("203.0.113.5", "Linphone/5.2")), FloodVerdict::Pass);
  EXPECT_EQ(guard.check(from("203.0.113.5", "")), FloodVerdict::Pass);
  // A pattern far into a huge header is not searched (bounded work per request).
  EXPECT_EQ(guard.check(from("203.0.113.5", std::string(300, 'x') + "sipcli")), FloodVerdict::Pass);
}

TEST(FloodGuard, TheDenyListIsConfigurable) {
  ManualClock clock;
  FloodSettings s;
  s.userAgentDeny = {"EvilTool"};
  FloodGuard guard(s, clock);
  EXPECT_EQ(guard.check(from("203.0.113.5", "eviltool 2")), FloodVerdict::DropScanner);
  EXPECT_EQ(guard.check(from("203.0.113.5", "friendly-scanner")), FloodVerdict::Pass);
}

TEST(FloodGuard, TheDialogLimitRejectsNewInvitesOnly) {
  ManualClock clock;
  FloodSettings s;
  s.maxDialogs = 2;
  FloodGuard guard(s, clock);
  FloodRequest invite = from("127.0.0.21");
  invite.newDialog = true;
  invite.activeDialogs = 1;
  EXPECT_EQ(guard.check(invite), FloodVerdict::Pass);
  invite.activeDialogs = 2;
  EXPECT_EQ(guard.check(invite), FloodVerdict::RejectDialogs);
  invite.trusted = true;  // trunks too
  EXPECT_EQ(guard.check(invite), FloodVerdict::RejectDialogs);
  FloodRequest options = from("127.0.0.21");
  options.activeDialogs = 2;
  EXPECT_EQ(guard.check(options), FloodVerdict::Pass);
  FloodRequest reInvite = invite;
  reInvite.newDialog = false;
  reInvite.inDialog = true;
  EXPECT_EQ(guard.check(reInvite), FloodVerdict::Pass);
}

TEST(FloodGuard, TheGlobalRateAdmitsUpToTheLimitAndRejectsTheRest) {
  ManualClock clock;
  FloodSettings s;
  s.maxRequestsPerSecond = 50;
  FloodGuard guard(s, clock);
  // 100 per second from 100 trusted sources (no per-source limit applies) for 10 s.
  int passed = 0, rejected = 0, inDialog = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string a = "127.0.1." + std::to_string(i % 100);
    FloodRequest r = from(a.c_str());
    r.trusted = true;
    FloodVerdict v = guard.check(r);
    passed += v == FloodVerdict::Pass;
    rejected += v == FloodVerdict::RejectRate;
    FloodRequest bye = r;
    bye.inDialog = true;
    inDialog += guard.check(bye) == FloodVerdict::Pass;
    clock.advanceMs(10);
  }
  EXPECT_EQ(passed + rejected, 1000);
  EXPECT_NEAR(passed, 500, 60);
  EXPECT_EQ(inDialog, 1000);
  // Quiet for a second: full rate again.
  clock.advanceMs(2000);
  FloodRequest r = from("127.0.1.1");
  r.trusted = true;
  EXPECT_EQ(guard.check(r), FloodVerdict::Pass);
}

TEST(FloodGuard, ABannedSourceDoesNotUseUpTheGlobalRate) {
  ManualClock clock;
  FloodSettings s = small();
  s.maxRequestsPerSecond = 20;
  FloodGuard guard(s, clock);
  for (int i = 0; i < 1000; ++i) guard.check(from("127.0.0.50"));
  EXPECT_EQ(guard.check(from("127.0.0.60")), FloodVerdict::Pass);
}

TEST(FloodGuard, DisabledPassesEverything) {
  ManualClock clock;
  FloodSettings s = small();
  s.enabled = false;
  s.maxDialogs = 1;
  FloodGuard guard(s, clock);
  FloodRequest r = from("127.0.0.50", "friendly-scanner");
  r.newDialog = true;
  r.activeDialogs = 5;
  for (int i = 0; i < 100; ++i) ASSERT_EQ(guard.check(r), FloodVerdict::Pass);
}

TEST(FloodGuard, AClockGoingBackDoesNotBanOrUnbanForever) {
  ManualClock clock;
  FloodGuard guard(small(), clock);
  for (int i = 0; i < 5; ++i) guard.check(from("127.0.0.50"));
  clock.advanceMs(-3'600'000);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(guard.check(from("127.0.0.50")), FloodVerdict::Pass);
  EXPECT_EQ(guard.check(from("127.0.0.50")), FloodVerdict::DropBanned);
}

}  // namespace
}  // namespace medius::gateway
