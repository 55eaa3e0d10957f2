// AuthGuard: limits on failed digest authentication (password guessing), as pure logic (no
// sockets, no Sofia). The Gateway asks it before a request's credentials go to the
// registrar, and tells it how the registrar judged them.
//
//   - Per source: a source address whose credentials fail source.max_failures times within
//     source.window_s is banned for source.ban_s (the Gateway puts it on the FloodGuard's
//     ban list: its requests are dropped unanswered). Exempt sources are never banned.
//   - Per user: a digest username whose credentials fail user.max_failures times within
//     user.window_s, from any sources, is locked for user.lock_s: credentials for it are
//     refused with 403 and never reach the registrar (the password is not tested), unless
//     they come from a source address that authenticated successfully as that user within
//     known_source_s (a phone that registers keeps working while someone else guesses its
//     password). Refused attempts do not count and do not extend the lock: a distributed
//     guesser gets user.max_failures guesses per window + lock, everyone else is unaffected.
//
// What counts as a failure is what tests a password and fails: an unknown user, a wrong
// response, malformed credentials. A stale nonce or a replayed nonce-count come with a right
// response, and a request without credentials is the normal first step: none of them count.
// Unknown and known usernames are treated alike (the gateway cannot tell them apart, and
// must not: no enumeration).
//
// Memory is bounded: each table (failures per source, failures per user, known sources per
// user) holds at most max_entries keys and forgets the least recently used first; a
// username is keyed by its first 128 bytes; a user remembers at most 8 known sources.
//
// Thread: one thread (the SIP loop). Time comes from the injected Clock.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "medius/common/clock.hpp"
#include "medius/gateway/flood_guard.hpp"

namespace medius::gateway {

struct AuthLimitSettings {
  bool enabled = true;
  std::int64_t sourceMaxFailures = 10;
  std::int64_t sourceWindowS = 60;
  std::int64_t sourceBanS = 600;
  std::int64_t userMaxFailures = 20;
  std::int64_t userWindowS = 300;
  std::int64_t userLockS = 300;
  std::int64_t knownSourceS = 86400;
  std::int64_t maxEntries = 16384;
};

class AuthGuard {
 public:
  AuthGuard(AuthLimitSettings settings, const Clock& clock);
  AuthGuard(const AuthGuard&) = delete;
  AuthGuard& operator=(const AuthGuard&) = delete;

  // May credentials for `user` from `source` go to the registrar? False while the user is
  // locked and the source is not one it authenticated from recently: answer 403.
  bool allowed(const IpAddress& source, std::string_view user);

  struct Outcome {
    bool banSource = false;  // ban `source` now for sourceBanS (it reached the limit)
    bool lockedUser = false;  // the user's lock started now
  };
  // Credentials for `user` from `source` failed. (Exempt sources: the FloodGuard refuses
  // to ban them; their failures still count toward the user's limit.)
  Outcome failed(const IpAddress& source, std::string_view user);
  // Credentials for `user` from `source` were right.
  void succeeded(const IpAddress& source, std::string_view user);

  const AuthLimitSettings& settings() const { return settings_; }
  bool userLocked(std::string_view user) const;
  std::size_t trackedSources() const { return sources_.size(); }
  std::size_t trackedUsers() const { return users_.size(); }
  std::size_t knownUsers() const { return known_.size(); }

 private:
  struct Counter {
    std::int64_t windowStartMs = 0;
    std::int64_t failures = 0;
    std::int64_t lockedUntilMs = 0;  // users only
  };
  struct KnownSource {
    IpAddress ip;
    std::int64_t lastOkMs = 0;
  };
  // A hash map with a bound: least recently used first out.
  template <typename Key, typename Value, typename Hash = std::hash<Key>>
  class Lru {
   public:
    explicit Lru(std::size_t bound) : bound_(bound) {}
    Value* find(const Key& key);
    const Value* peek(const Key& key) const;
    Value& touch(const Key& key);  // found or inserted (default value), now most recent
    std::size_t size() const { return map_.size(); }

   private:
    using List = std::list<std::pair<Key, Value>>;
    std::size_t bound_;
    List list_;  // most recent first
    std::unordered_map<Key, typename List::iterator, Hash> map_;
  };
  struct IpHash {
    std::size_t operator()(const IpAddress& ip) const noexcept;
  };

  static std::string key(std::string_view user);
  // Counts one failure; true when it reached `max` (the counter starts again from zero).
  static bool count(Counter& c, std::int64_t now, std::int64_t windowMs, std::int64_t max);
  bool knownSource(const std::string& user, const IpAddress& source, std::int64_t now);

  AuthLimitSettings settings_;
  const Clock& clock_;
  Lru<IpAddress, Counter, IpHash> sources_;
  Lru<std::string, Counter> users_;
  Lru<std::string, std::vector<KnownSource>> known_;
};

}  // namespace medius::gateway
