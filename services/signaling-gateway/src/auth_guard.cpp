#include "medius/gateway/auth_guard.hpp"

#include <algorithm>
#include <cassert>

namespace medius::gateway {

namespace {

constexpr std::size_t kUserKeyBytes = 128;
constexpr std::size_t kKnownSourcesPerUser = 8;

}  // namespace

template <typename Key, typename Value, typename Hash>
Value* AuthGuard::Lru<Key, Value, Hash>::find(const Key& key) {
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  list_.splice(list_.begin(), list_, it->second);
  return &it->second->second;
}

template <typename Key, typename Value, typename Hash>
const Value* AuthGuard::Lru<Key, Value, Hash>::peek(const Key& key) const {
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : &it->second->second;
}

template <typename Key, typename Value, typename Hash>
Value& AuthGuard::Lru<Key, Value, Hash>::touch(const Key& key) {
  if (Value* v = find(key)) return *v;
  if (map_.size() >= bound_) {
    map_.erase(list_.back().first);
    list_.pop_back();
  }
  list_.emplace_front(key, Value{});
  map_.emplace(key, list_.begin());
  return list_.front().second;
}

std::size_t AuthGuard::IpHash::operator()(const IpAddress& ip) const noexcept {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (std::uint8_t b : ip.bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return static_cast<std::size_t>(h);
}

AuthGuard::AuthGuard(AuthLimitSettings settings, const Clock& clock)
    : settings_(settings),
      clock_(clock),
      sources_(static_cast<std::size_t>(settings.maxEntries)),
      users_(static_cast<std::size_t>(settings.maxEntries)),
      known_(static_cast<std::size_t>(settings.maxEntries)) {
  assert(settings_.maxEntries > 0 && settings_.sourceMaxFailures > 0 &&
         settings_.userMaxFailures > 0);
}

std::string AuthGuard::key(std::string_view user) {
  return std::string(user.substr(0, kUserKeyBytes));
}

bool AuthGuard::count(Counter& c, std::int64_t now, std::int64_t windowMs, std::int64_t max) {
  // One fixed window that starts at the first failure: simple, and a guesser spreading its
  // attempts just under the limit is slowed to max per window anyway.
  if (c.failures == 0 || now - c.windowStartMs >= windowMs || now < c.windowStartMs) {
    c.windowStartMs = now;
    c.failures = 0;
  }
  if (++c.failures < max) return false;
  c.failures = 0;
  return true;
}

bool AuthGuard::knownSource(const std::string& user, const IpAddress& source, std::int64_t now) {
  const auto* list = known_.peek(user);
  if (!list) return false;
  return std::any_of(list->begin(), list->end(), [&](const KnownSource& k) {
    return k.ip == source && now - k.lastOkMs < settings_.knownSourceS * 1000;
  });
}

bool AuthGuard::userLocked(std::string_view user) const {
  const Counter* c = users_.peek(key(user));
  return c && c->lockedUntilMs > clock_.nowMs();
}

bool AuthGuard::allowed(const IpAddress& source, std::string_view user) {
  if (!settings_.enabled) return true;
  std::int64_t now = clock_.nowMs();
  std::string k = key(user);
  const Counter* c = users_.peek(k);
  if (!c || c->lockedUntilMs <= now) return true;
  return knownSource(k, source, now);
}

AuthGuard::Outcome AuthGuard::failed(const IpAddress& source, std::string_view user) {
  Outcome out;
  if (!settings_.enabled) return out;
  std::int64_t now = clock_.nowMs();
  out.banSource = count(sources_.touch(source), now, settings_.sourceWindowS * 1000,
                        settings_.sourceMaxFailures);
  Counter& u = users_.touch(key(user));
  if (u.lockedUntilMs > now) return out;  // a known source failing during the lock
  if (count(u, now, settings_.userWindowS * 1000, settings_.userMaxFailures)) {
    u.lockedUntilMs = now + settings_.userLockS * 1000;
    out.lockedUser = true;
  }
  return out;
}

void AuthGuard::succeeded(const IpAddress& source, std::string_view user) {
  if (!settings_.enabled) return;
  std::int64_t now = clock_.nowMs();
  auto& list = known_.touch(key(user));
  auto it = std::find_if(list.begin(), list.end(),
                         [&](const KnownSource& k) { return k.ip == source; });
  if (it != list.end()) {
    it->lastOkMs = now;
    return;
  }
  if (list.size() >= kKnownSourcesPerUser) {
    // Forget the one that authenticated least recently.
    auto oldest = std::min_element(list.begin(), list.end(), [](const auto& a, const auto& b) {
      return a.lastOkMs < b.lastOkMs;
    });
    *oldest = KnownSource{source, now};
    return;
  }
  list.push_back(KnownSource{source, now});
}

}  // namespace medius::gateway
