// FloodGuard: flood and scan protection of the SIP front end, as pure logic (no sockets, no
// Sofia), asked once per out-of-dialog request before nta spends a server transaction on it.
//
//   - User-Agent deny patterns (known scanners: friendly-scanner, sipvicious, ...): the
//     request is dropped without an answer. Case-insensitive substring match.
//   - Per-source request rate (as Kamailio's pike module): a source address that sends more
//     than max_requests requests in one window (a sliding estimate over two fixed windows)
//     is banned for ban_s seconds; a banned source's requests are dropped without an answer.
//     A ban is not extended by traffic during it; a source still flooding when it ends is
//     banned again within one window. Trusted sources (trunk addresses, the exempt list) are
//     never counted or banned.
//   - Bans from elsewhere (ban(): failed authentications, auth_guard.hpp) share the ban list,
//     with their own duration.
//   - Global limits, for every source including the trusted ones: a new INVITE while
//     maxDialogs calls are in progress, and any request beyond max_requests_per_second
//     admitted requests in the last second, gets 503 with Retry-After. Requests with a To tag
//     (in-dialog) and ACKs never hit the global limits; requests of existing calls reach
//     their dialog's nta leg and never come here at all.
//
// Memory is bounded: the source table holds at most max_sources addresses and evicts the one
// seen least recently (a spoofed-source flood churns the table but cannot grow it; an evicted
// source starts again from zero). Every check is O(1) apart from the User-Agent scan
// (patterns x a bounded prefix of the header) and the exempt list (a few prefixes).
//
// Thread: one thread (the SIP loop). Time comes from the injected Clock.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "medius/common/clock.hpp"

namespace medius::gateway {

// An IPv4 or IPv6 address as 16 bytes (IPv4 as ::ffff:a.b.c.d), the table's key.
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};
  bool operator==(const IpAddress&) const = default;
  // "192.0.2.1", "2001:db8::1" (no brackets, no port); nullopt when not an address.
  static std::optional<IpAddress> parse(std::string_view text);
};

// "192.0.2.0/24", "2001:db8::/32" or a single address ("192.0.2.7" = /32 or /128).
struct IpPrefix {
  IpAddress address;
  int bits = 128;  // over the 16-byte form (an IPv4 /24 is 96 + 24)
  static std::optional<IpPrefix> parse(std::string_view text);
  bool contains(const IpAddress& ip) const;
};

struct FloodSettings {
  bool enabled = true;
  std::int64_t windowMs = 2000;
  std::int64_t maxRequests = 400;   // per source and window
  std::int64_t banSeconds = 60;
  std::int64_t maxSources = 16384;  // size bound of the source table
  std::int64_t maxRequestsPerSecond = 0;  // global; 0: no limit
  std::int64_t maxDialogs = 0;            // global calls in progress; 0: no limit
  std::int64_t retryAfterSeconds = 5;
  std::vector<std::string> userAgentDeny{"friendly-scanner", "sipvicious", "sipcli",
                                         "VaxSIPUserAgent", "sip-scan",   "sipsak",
                                         "sundayddr",       "iWar",       "SIVuS",
                                         "smap",            "pplsip",     "cpxsipuseragent"};
  std::vector<IpPrefix> exempt;
};

enum class FloodVerdict {
  Pass,
  DropScanner,      // User-Agent on the deny list: no answer
  DropBanned,       // source banned (now or before): no answer
  RejectDialogs,    // 503: too many calls in progress
  RejectRate,       // 503: too many requests per second overall
};

struct FloodRequest {
  IpAddress source;
  std::string_view userAgent;  // "" when absent
  bool trusted = false;        // a configured trunk's address (the exempt list is ours)
  bool inDialog = false;       // has a To tag
  bool newDialog = false;      // INVITE without a To tag
  std::size_t activeDialogs = 0;
};

class FloodGuard {
 public:
  FloodGuard(FloodSettings settings, const Clock& clock);
  FloodGuard(const FloodGuard&) = delete;
  FloodGuard& operator=(const FloodGuard&) = delete;

  FloodVerdict check(const FloodRequest& request);
  // A new TLS connection from `source` (asked at its ClientHello, before any crypto): one
  // event against the source's window, as a request, so a handshake flood bans its source
  // like a request flood; a banned source's handshakes are refused (DropBanned). Trusted
  // sources pass uncounted. Never subject to the global limits.
  FloodVerdict checkConnection(const IpAddress& source, bool trusted);

  // Bans `ip` for `seconds` from now (failed authentication, auth_guard.hpp): its requests
  // are dropped as a flooding source's are. Exempt addresses are never banned; a ban in
  // progress is not shortened. True when a ban started (not exempt, not banned already).
  // Such bans are not in bansTotal() (that counts rate bans) but are in bannedSources().
  bool ban(const IpAddress& ip, std::int64_t seconds);

  const FloodSettings& settings() const { return settings_; }
  // Sources in the table now (<= maxSources).
  std::size_t sources() const { return table_.size(); }
  // Sources banned now (expired bans are released on the next check).
  std::size_t bannedSources() const { return banned_; }
  // Bans started since construction.
  std::uint64_t bansTotal() const { return bansTotal_; }
  bool isBanned(const IpAddress& ip) const;

 private:
  // Two fixed windows; the rate is prev * (unelapsed part of the current window) + cur.
  struct Window {
    std::int64_t startMs = 0;
    std::int64_t prev = 0;
    std::int64_t cur = 0;
    void advance(std::int64_t now, std::int64_t length);
    std::int64_t estimate(std::int64_t now, std::int64_t length) const;
  };
  struct Source {
    IpAddress ip;
    Window window;
    std::int64_t bannedUntilMs = 0;  // 0: not banned
    std::uint64_t banId = 0;
  };
  struct Hash {
    std::size_t operator()(const IpAddress& ip) const noexcept;
  };
  using Lru = std::list<Source>;  // most recently seen first

  bool exempt(const IpAddress& ip) const;
  bool scanner(std::string_view userAgent) const;
  void releaseExpired(std::int64_t now);
  Source& touch(const IpAddress& ip, std::int64_t now);
  void unban(Source& source);

  FloodSettings settings_;
  const Clock& clock_;
  std::vector<std::string> deny_;  // lower case
  Lru lru_;
  std::unordered_map<IpAddress, Lru::iterator, Hash> table_;
  struct Expiry {
    std::int64_t untilMs;
    IpAddress ip;
    std::uint64_t banId;
    bool operator>(const Expiry& o) const { return untilMs > o.untilMs; }
  };
  void startBan(Source& source, std::int64_t untilMs);
  // Bans by the time they end, soonest first (rate and authentication bans last
  // differently long).
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<>> expiries_;
  std::size_t banned_ = 0;
  std::uint64_t bansTotal_ = 0;
  std::uint64_t nextBanId_ = 1;
  Window global_;
};

}  // namespace medius::gateway
