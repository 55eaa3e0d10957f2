#include "medius/registrar/memory_binding_store.hpp"

namespace medius::registrar {

namespace {

// Splits `all` into unexpired (kept in `all`) and expired (returned).
Bindings takeExpired(Bindings& all, std::int64_t nowMs) {
  Bindings expired;
  Bindings live;
  for (auto& b : all) {
    (b.expires_at_ms() <= nowMs ? expired : live).push_back(std::move(b));
  }
  all = std::move(live);
  return expired;
}

}  // namespace

MemoryBindingStore::MemoryBindingStore(const Clock& clock) : clock_(clock) {}

UpdateResult MemoryBindingStore::update(const std::string& aor, std::int64_t nowMs,
                                        const Mutator& mutator) {
  std::lock_guard lock(mutex_);
  UpdateResult result;
  auto it = aors_.find(aor);
  Bindings current = it == aors_.end() ? Bindings{} : it->second;
  Bindings expired = takeExpired(current, nowMs);
  Bindings working = current;
  if (!mutator(working)) {
    result.bindings = std::move(current);
    return result;
  }
  result.committed = true;
  result.expired = std::move(expired);
  if (working.empty()) {
    if (it != aors_.end()) aors_.erase(it);
  } else {
    aors_[aor] = working;
  }
  result.bindings = std::move(working);
  return result;
}

Bindings MemoryBindingStore::lookup(const std::string& aor, std::int64_t nowMs) {
  std::lock_guard lock(mutex_);
  Bindings out;
  auto it = aors_.find(aor);
  if (it == aors_.end()) return out;
  for (const auto& b : it->second) {
    if (b.expires_at_ms() > nowMs) out.push_back(b);
  }
  return out;
}

Bindings MemoryBindingStore::list(std::int64_t nowMs) {
  std::lock_guard lock(mutex_);
  Bindings out;
  for (const auto& [aor, bindings] : aors_) {
    for (const auto& b : bindings) {
      if (b.expires_at_ms() > nowMs) out.push_back(b);
    }
  }
  return out;
}

std::size_t MemoryBindingStore::count(std::int64_t nowMs) {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [aor, bindings] : aors_) {
    for (const auto& b : bindings) n += b.expires_at_ms() > nowMs ? 1 : 0;
  }
  return n;
}

Bindings MemoryBindingStore::sweepExpired(std::int64_t nowMs) {
  std::lock_guard lock(mutex_);
  Bindings removed;
  for (auto it = aors_.begin(); it != aors_.end();) {
    Bindings expired = takeExpired(it->second, nowMs);
    for (auto& b : expired) removed.push_back(std::move(b));
    it = it->second.empty() ? aors_.erase(it) : std::next(it);
  }
  std::int64_t now = clock_.nowMs();
  for (auto it = nonceCounts_.begin(); it != nonceCounts_.end();) {
    it = it->second.expiresAtMs <= now ? nonceCounts_.erase(it) : std::next(it);
  }
  return removed;
}

bool MemoryBindingStore::useNonceCount(const std::string& nonce, std::uint32_t nc,
                                       std::int64_t ttlMs) {
  std::lock_guard lock(mutex_);
  std::int64_t now = clock_.nowMs();
  auto it = nonceCounts_.find(nonce);
  if (it != nonceCounts_.end() && it->second.expiresAtMs > now && nc <= it->second.nc) {
    return false;
  }
  nonceCounts_[nonce] = NonceCount{nc, now + ttlMs};
  return true;
}

std::string MemoryBindingStore::sharedNonceSecret(const std::string& candidate) {
  std::lock_guard lock(mutex_);
  if (secret_.empty()) secret_ = candidate;
  return secret_;
}

void MemoryBindingStore::publish(const BindingEvent& event) { hub_.dispatch(event); }

std::uint64_t MemoryBindingStore::subscribe(Subscriber callback) {
  return hub_.add(std::move(callback));
}

void MemoryBindingStore::unsubscribe(std::uint64_t id) { hub_.remove(id); }

}  // namespace medius::registrar
