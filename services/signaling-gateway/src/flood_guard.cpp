#include "medius/gateway/flood_guard.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <cstring>

namespace medius::gateway {

namespace {

// The part of a User-Agent that is searched: scanners put their name first, and a bound
// keeps a huge header from costing more than a small one.
constexpr std::size_t kUserAgentScan = 256;

std::string lower(std::string_view text) {
  std::string out(text.substr(0, kUserAgentScan));
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  std::string s(text);
  IpAddress ip;
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    ip.bytes[10] = 0xff;
    ip.bytes[11] = 0xff;
    std::memcpy(ip.bytes.data() + 12, &v4, 4);
    return ip;
  }
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(ip.bytes.data(), &v6, 16);
    return ip;
  }
  return std::nullopt;
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  auto slash = text.find('/');
  auto ip = IpAddress::parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  bool v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  IpPrefix p;
  p.address = *ip;
  p.bits = 128;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    int n = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      n = n * 10 + (c - '0');
    }
    if (n > (v4 ? 32 : 128)) return std::nullopt;
    p.bits = v4 ? 96 + n : n;
  }
  return p;
}

bool IpPrefix::contains(const IpAddress& ip) const {
  int full = bits / 8;
  if (std::memcmp(ip.bytes.data(), address.bytes.data(), static_cast<std::size_t>(full)) != 0) {
    return false;
  }
  int rest = bits % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (ip.bytes[static_cast<std::size_t>(full)] & mask) ==
         (address.bytes[static_cast<std::size_t>(full)] & mask);
}

std::size_t FloodGuard::Hash::operator()(const IpAddress& ip) const noexcept {
  // FNV-1a over the 16 bytes.
  std::uint64_t h = 1469598103934665603ull;
  for (std::uint8_t b : ip.bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return static_cast<std::size_t>(h);
}

void FloodGuard::Window::advance(std::int64_t now, std::int64_t length) {
  std::int64_t elapsed = now - startMs;
  if (elapsed < 0) {
    // The clock went back (wall clock set): restart rather than count forever.
    startMs = now;
    prev = 0;
    cur = 0;
  } else if (elapsed >= 2 * length) {
    startMs = now;
    prev = 0;
    cur = 0;
  } else if (elapsed >= length) {
    startMs += length;
    prev = cur;
    cur = 0;
  }
}

std::int64_t FloodGuard::Window::estimate(std::int64_t now, std::int64_t length) const {
  std::int64_t into = std::clamp<std::int64_t>(now - startMs, 0, length);
  return prev * (length - into) / length + cur;
}

FloodGuard::FloodGuard(FloodSettings settings, const Clock& clock)
    : settings_(std::move(settings)), clock_(clock) {
  assert(settings_.windowMs > 0 && settings_.maxRequests > 0 && settings_.maxSources > 0);
  for (const auto& p : settings_.userAgentDeny) {
    if (!p.empty()) deny_.push_back(lower(p));
  }
  table_.reserve(static_cast<std::size_t>(settings_.maxSources));
}

bool FloodGuard::exempt(const IpAddress& ip) const {
  for (const auto& p : settings_.exempt) {
    if (p.contains(ip)) return true;
  }
  return false;
}

bool FloodGuard::scanner(std::string_view userAgent) const {
  if (userAgent.empty() || deny_.empty()) return false;
  std::string ua = lower(userAgent);
  for (const auto& p : deny_) {
    if (ua.find(p) != std::string::npos) return true;
  }
  return false;
}

bool FloodGuard::isBanned(const IpAddress& ip) const {
  auto it = table_.find(ip);
  return it != table_.end() && it->second->bannedUntilMs > clock_.nowMs();
}

void FloodGuard::unban(Source& source) {
  if (source.bannedUntilMs == 0) return;
  source.bannedUntilMs = 0;
  source.banId = 0;
  source.window = Window{};
  --banned_;
}

void FloodGuard::releaseExpired(std::int64_t now) {
  while (!expiries_.empty() && expiries_.top().untilMs <= now) {
    Expiry e = expiries_.top();
    expiries_.pop();
    auto it = table_.find(e.ip);
    // A ban id that no longer matches: the source was forgotten (evicted) meanwhile.
    if (it != table_.end() && it->second->banId == e.banId) unban(*it->second);
  }
}

void FloodGuard::startBan(Source& source, std::int64_t untilMs) {
  source.bannedUntilMs = untilMs;
  source.banId = nextBanId_++;
  expiries_.push(Expiry{untilMs, source.ip, source.banId});
  ++banned_;
}

bool FloodGuard::ban(const IpAddress& ip, std::int64_t seconds) {
  if (!settings_.enabled || exempt(ip)) return false;
  std::int64_t now = clock_.nowMs();
  releaseExpired(now);
  Source& s = touch(ip, now);
  if (s.bannedUntilMs > now) return false;
  startBan(s, now + seconds * 1000);
  return true;
}

FloodGuard::Source& FloodGuard::touch(const IpAddress& ip, std::int64_t now) {
  auto it = table_.find(ip);
  if (it != table_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return *it->second;
  }
  if (table_.size() >= static_cast<std::size_t>(settings_.maxSources)) {
    Source& oldest = lru_.back();
    unban(oldest);  // its queued expiry finds no matching ban id and is skipped
    table_.erase(oldest.ip);
    // Reuse the node: no allocation per new source once the table is full.
    lru_.splice(lru_.begin(), lru_, std::prev(lru_.end()));
    Source& s = lru_.front();
    s = Source{};
    s.ip = ip;
    s.window.startMs = now;
    table_.emplace(ip, lru_.begin());
    return s;
  }
  lru_.push_front(Source{});
  Source& s = lru_.front();
  s.ip = ip;
  s.window.startMs = now;
  table_.emplace(ip, lru_.begin());
  return s;
}

FloodVerdict FloodGuard::check(const FloodRequest& request) {
  if (!settings_.enabled) return FloodVerdict::Pass;
  std::int64_t now = clock_.nowMs();
  if (scanner(request.userAgent)) return FloodVerdict::DropScanner;

  releaseExpired(now);
  if (!request.trusted && !exempt(request.source)) {
    Source& s = touch(request.source, now);
    if (s.bannedUntilMs > now) return FloodVerdict::DropBanned;
    s.window.advance(now, settings_.windowMs);
    ++s.window.cur;
    if (s.window.estimate(now, settings_.windowMs) > settings_.maxRequests) {
      startBan(s, now + settings_.banSeconds * 1000);
      ++bansTotal_;
      return FloodVerdict::DropBanned;
    }
  }

  if (request.inDialog) return FloodVerdict::Pass;
  if (request.newDialog && settings_.maxDialogs > 0 &&
      request.activeDialogs >= static_cast<std::size_t>(settings_.maxDialogs)) {
    return FloodVerdict::RejectDialogs;
  }
  if (settings_.maxRequestsPerSecond > 0) {
    constexpr std::int64_t kSecond = 1000;
    global_.advance(now, kSecond);
    // Only admitted requests count: at twice the limit, half get through, not none.
    if (global_.estimate(now, kSecond) >= settings_.maxRequestsPerSecond) {
      return FloodVerdict::RejectRate;
    }
    ++global_.cur;
  }
  return FloodVerdict::Pass;
}

FloodVerdict FloodGuard::checkConnection(const IpAddress& source, bool trusted) {
  FloodRequest request;
  request.source = source;
  request.trusted = trusted;
  request.inDialog = true;  // not a request of its own: no global limit applies
  return check(request);
}

}  // namespace medius::gateway
