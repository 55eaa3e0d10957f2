#include "medius/gateway/challenge_pool.hpp"

#include <algorithm>

namespace medius::gateway {

ChallengePool::ChallengePool(const Clock& clock) : ChallengePool(clock, Settings{}) {}

ChallengePool::ChallengePool(const Clock& clock, Settings settings)
    : clock_(clock), settings_(settings) {}

void ChallengePool::dropOld(std::int64_t now) {
  while (!sets_.empty() && sets_.front().usableUntilMs <= now) sets_.pop_front();
}

std::optional<v1::ChallengeSet> ChallengePool::take() {
  dropOld(clock_.nowMs());
  if (sets_.empty()) return std::nullopt;
  v1::ChallengeSet set = std::move(sets_.front().set);
  sets_.pop_front();
  return set;
}

bool ChallengePool::wantsRefill() {
  const std::int64_t now = clock_.nowMs();
  dropOld(now);
  return !inFlight_ && now >= retryAtMs_ && sets_.size() < settings_.low;
}

void ChallengePool::asking() { inFlight_ = true; }

void ChallengePool::refilled(const v1::ChallengeResponse& response) {
  inFlight_ = false;
  const std::int64_t now = clock_.nowMs();
  if (response.register_sets().empty()) {
    retryAtMs_ = now + settings_.retryMs;
    return;
  }
  std::int64_t age = settings_.maxAgeMs;
  if (response.nonce_ttl_seconds() > 0) {
    age = std::min<std::int64_t>(age, static_cast<std::int64_t>(response.nonce_ttl_seconds()) * 250);
  }
  for (const auto& set : response.register_sets()) {
    if (set.challenges().empty()) continue;
    sets_.push_back(Entry{now + age, set});
  }
}

void ChallengePool::refillFailed() {
  inFlight_ = false;
  retryAtMs_ = clock_.nowMs() + settings_.retryMs;
}

v1::ChallengeRequest ChallengePool::request() const {
  v1::ChallengeRequest r;
  r.set_register_sets(static_cast<std::uint32_t>(settings_.batch));
  return r;
}

}  // namespace medius::gateway
