// AuthGuard (medius/gateway/auth_guard.hpp): failed-authentication limits per source and
// per user, the known-source exception and the table bounds; and FloodGuard::ban, where a
// source's ban lands. On a ManualClock (no sockets, no waiting).
#include <gtest/gtest.h>

#include <string>

#include "medius/common/clock.hpp"
#include "medius/gateway/auth_guard.hpp"
#include "medius/gateway/flood_guard.hpp"

namespace medius::gateway {
namespace {

IpAddress ip(const char* text) {
  auto parsed = IpAddress::parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed.value_or(IpAddress{});
}

AuthLimitSettings small() {
  AuthLimitSettings s;
  s.sourceMaxFailures = 3;
  s.sourceWindowS = 60;
  s.sourceBanS = 600;
  s.userMaxFailures = 5;
  s.userWindowS = 300;
  s.userLockS = 120;
  s.knownSourceS = 3600;
  s.maxEntries = 16;
  return s;
}

TEST(AuthGuard, ASourceIsBannedAtItsLimitOfFailures) {
  ManualClock clock;
  AuthGuard guard(small(), clock);
  auto attacker = ip("192.0.2.66");
  EXPECT_FALSE(guard.failed(attacker, "alice").banSource);
  EXPECT_FALSE(guard.failed(attacker, "bob").banSource);  // any usernames count
  EXPECT_TRUE(guard.failed(attacker, "carol").banSource);
  // The count starts again (the ban itself is the FloodGuard's).
  EXPECT_FALSE(guard.failed(attacker, "dave").banSource);
}

TEST(AuthGuard, FailuresSpreadOverMoreThanTheWindowDoNotBan) {
  ManualClock clock;
  AuthGuard guard(small(), clock);
  auto phone = ip("192.0.2.10");
  for (int i = 0; i < 10; ++i) {
    // A phone with a wrong password retrying every 40 s: two failures per window at most.
    EXPECT_FALSE(guard.failed(phone, "alice").banSource) << i;
    clock.advanceMs(40'000);
  }
}

TEST(AuthGuard, SourcesAreCountedApart) {
  ManualClock clock;
  AuthGuard guard(small(), clock);
  guard.failed(ip("192.0.2.1"), "u1");
  guard.failed(ip("192.0.2.1"), "u2");
  EXPECT_FALSE(guard.failed(ip("192.0.2.2"), "u3").banSource);
  EXPECT_TRUE(guard.failed(ip("192.0.2.1"), "u4").banSource);
}

TEST(AuthGuard, AUserIsLockedAfterFailuresFromManySources) {
  ManualClock clock;
  AuthGuard guard(small(), clock);
  // A distributed guesser: one failure from each of five addresses.
  for (int i = 1; i <= 4; ++i) {
    auto r = guard.failed(ip(("198.51.100." + std::to_string(i)).c_str()), "alice");
    EXPECT_FALSE(r.lockedUser);
    EXPECT_FALSE(r.banSource);
  }
  EXPECT_TRUE(guard.allowed(ip("198.51.100.9"), "alice"));
  EXPECT_TRUE(guard.failed(ip("198.51.100.5"), "alice").lockedUser);
  EXPECT_TRUE(guard.userLocked("alice"));
  // Locked: nobody without history gets to test a password; other users are untouched.
  EXPECT_FALSE(guard.allowed(ip("198.51.100.6"), "alice"));
  EXPECT_FALSE(guard.allowed(ip("198.51.100.1"), "alice"));
  EXPECT_TRUE(guard.allowed(ip("198.51.100.6"), "bob"));
  // The lock ends after user_lock_s and is not extended by refused attempts.
  clock.advanceMs(119'000);
  EXPECT_FALSE(guard.allowed(ip("198.51.100.6"), "alice"));
  clock.advanceMs(1'000);
  EXPECT_TRUE(guard.allowed(ip("198.51.100.6"), "alice"));
  EXPECT_FALSE(guard.userLocked("alice"));
}

TEST(AuthGuard, AKnownSourceOfTheUserStillGetsInDuringTheLock) {
  ManualClock clock;
  AuthGuard guard(small(), clock);
  auto phone = ip("192.0.2.10");
  guard.succeeded(phone, "alice");  // the phone registered
  clock.advanceMs(60'000);
  for (int i = 1; i <= 5; ++i) guard.failed(ip(("203.0.113." + std::to_string(i)).c_str()), "alice");
  ASSERT_TRUE(guard.userLocked("alice"));
  EXPECT_TRUE(guard.allowed(phone, "alice"));
  EXPECT_FALSE(guard.allowed(ip("203.0.113.99"), "alice"));
  // Its own failure during the lock (a re-typed password) neither ends nor extends it.
  guard.failed(phone, "alice");
  EXPECT_TRUE(guard.allowed(phone, "alice"));
  // A source known as bob's is not alice's.
  guard.succeeded(ip("192.0.2.20"), "bob");
  EXPECT_FALSE(guard.allowed(ip("192.0.2.20"), "alice"));
}

TEST(AuthGuard, ASourceIsKnownOnlyForKnownSourceSeconds) {
  ManualClock clock;
  auto settings = small();
  settings.knownSourceS = 100;
  settings.userLockS = 1000;
  AuthGuard guard(settings, clock);
  auto phone = ip("192.0.2.10");
  guard.succeeded(phone, "alice");
  for (int i = 1; i <= 5; ++i) guard.failed(ip(("203.0.113." + std::to_string(i)).c_str()), "alice");
  EXPECT_TRUE(guard.allowed(phone, "alice"));
  clock.advanceMs(100'000);
  EXPECT_FALSE(guard.allowed(phone, "alice"));
}

TEST(AuthGuard, UnknownAndKnownUsernamesAreTreatedAlike) {
  // The guard never knows whether a user exists: a name nobody configured is locked and
  // refused exactly as a real one (no enumeration through the lock).
  ManualClock clock;
  AuthGuard guard(small(), clock);
  guard.succeeded(ip("192.0.2.10"), "alice");
  for (const char* user : {"alice", "nobody-here"}) {
    for (int i = 1; i <= 5; ++i) {
      auto r = guard.failed(ip(("198.51.100." + std::to_string(i)).c_str()), user);
      EXPECT_EQ(r.lockedUser, i == 5) << user;
    }
    EXPECT_FALSE(guard.allowed(ip("198.51.100.77"), user)) << user;
  }
}

TEST(AuthGuard, TablesAreBounded) {
  ManualClock clock;
  AuthGuard guard(small(), clock);  // 16 entries per table
  for (int i = 0; i < 200; ++i) {
    std::string user = "user" + std::to_string(i) + std::string(1000, 'x');  // long names too
    guard.failed(ip(("10.200.0." + std::to_string(i % 250)).c_str()), user);
    guard.succeeded(ip(("10.200.1." + std::to_string(i % 250)).c_str()), user);
  }
  EXPECT_EQ(guard.trackedSources(), 16u);
  EXPECT_EQ(guard.trackedUsers(), 16u);
  EXPECT_EQ(guard.knownUsers(), 16u);
}

TEST(AuthGuard, DisabledCountsNothing) {
  ManualClock clock;
  auto settings = small();
  settings.enabled = false;
  AuthGuard guard(settings, clock);
  for (int i = 0; i < 50; ++i) {
    auto r = guard.failed(ip("192.0.2.66"), "alice");
    EXPECT_FALSE(r.banSource);
    EXPECT_FALSE(r.lockedUser);
  }
  EXPECT_TRUE(guard.allowed(ip("192.0.2.66"), "alice"));
}

TEST(FloodGuardBan, ABanDropsTheSourceUntilItEndsAndExemptOnesAreNeverBanned) {
  ManualClock clock;
  FloodSettings settings;
  settings.banSeconds = 30;
  settings.exempt = {*IpPrefix::parse("192.0.2.0/24")};
  FloodGuard guard(settings, clock);
  FloodRequest request;
  request.source = ip("198.51.100.7");
  request.userAgent = "svcrack-renamed";
  EXPECT_EQ(guard.check(request), FloodVerdict::Pass);
  EXPECT_TRUE(guard.ban(request.source, 600));
  EXPECT_FALSE(guard.ban(request.source, 600));  // already banned: not counted twice
  EXPECT_EQ(guard.bannedSources(), 1u);
  EXPECT_EQ(guard.bansTotal(), 0u);  // rate bans only
  EXPECT_EQ(guard.check(request), FloodVerdict::DropBanned);
  // A rate ban of another source (30 s) ends before the authentication ban (600 s).
  FloodRequest other = request;
  other.source = ip("198.51.100.8");
  EXPECT_TRUE(guard.ban(other.source, 30));
  clock.advanceMs(30'000);
  EXPECT_EQ(guard.check(other), FloodVerdict::Pass);
  EXPECT_EQ(guard.check(request), FloodVerdict::DropBanned);
  clock.advanceMs(570'000);
  EXPECT_EQ(guard.check(request), FloodVerdict::Pass);
  EXPECT_EQ(guard.bannedSources(), 0u);
  EXPECT_FALSE(guard.ban(ip("192.0.2.5"), 600));
  EXPECT_FALSE(guard.isBanned(ip("192.0.2.5")));
}

}  // namespace
}  // namespace medius::gateway
