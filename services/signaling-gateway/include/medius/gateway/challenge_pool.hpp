// ChallengePool: 401 challenges for REGISTERs without credentials, issued in advance by the
// registrar (Registrar.Challenge with register_sets), so that the gateway answers those
// REGISTERs itself: one registrar round trip per registration (the one with credentials)
// instead of two. The registrar stays the only one that knows the nonce secret, and each
// set goes to one client only (nonce-count replay protection counts per nonce).
//
// A set is used while it is young: at most `maxAgeMs`, and never past a quarter of the
// nonces' lifetime (the client answers well before its nonce goes stale). The pool asks for
// `batch` more when it holds fewer than `low`; a registrar that issues none (REGISTER needs
// no authentication there) or fails is asked again after `retryMs`, and until then every
// REGISTER goes to the registrar as before.
//
// Thread: one thread (the SIP loop). Time comes from an injectable Clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

#include "medius/common/clock.hpp"
#include "medius/v1/registrar.pb.h"

namespace medius::gateway {

class ChallengePool {
 public:
  struct Settings {
    std::size_t batch = 128;     // sets asked for at once (the registrar gives at most 256)
    std::size_t low = 32;        // ask for more below this many usable sets
    std::int64_t maxAgeMs = 30000;
    std::int64_t retryMs = 10000;  // after a refill that brought none, or failed
  };

  explicit ChallengePool(const Clock& clock);
  ChallengePool(const Clock& clock, Settings settings);

  // A set for one 401 (its challenges, in the registrar's order), or nullopt: none is
  // young enough, then the REGISTER goes to the registrar.
  std::optional<v1::ChallengeSet> take();
  // Whether to ask the registrar for more now (nothing asked yet, below `low`, not in
  // flight, not waiting to retry). The caller then calls asking() and, with the answer,
  // refilled() or refillFailed().
  bool wantsRefill();
  void asking();
  void refilled(const v1::ChallengeResponse& response);
  void refillFailed();

  std::size_t size() const { return sets_.size(); }
  const Settings& settings() const { return settings_; }
  // The request to send: realm "" (the registrar's), batch sets.
  v1::ChallengeRequest request() const;

 private:
  struct Entry {
    std::int64_t usableUntilMs;
    v1::ChallengeSet set;
  };
  void dropOld(std::int64_t now);

  const Clock& clock_;
  Settings settings_;
  std::deque<Entry> sets_;  // in the order received: the oldest first
  bool inFlight_ = false;
  std::int64_t retryAtMs_ = 0;
};

}  // namespace medius::gateway
