// In-process binding store: the default, no set-up, one registrar only.
//
// Thread: thread-safe (one mutex). Events are delivered synchronously on the publishing thread.
#pragma once

#include <map>
#include <mutex>

#include "medius/common/clock.hpp"
#include "medius/registrar/binding_store.hpp"
#include "medius/registrar/event_hub.hpp"

namespace medius::registrar {

class MemoryBindingStore final : public BindingStore {
 public:
  // `clock` (not owned) ages nonce counts out.
  explicit MemoryBindingStore(const Clock& clock = SystemClock::instance());

  UpdateResult update(const std::string& aor, std::int64_t nowMs, const Mutator& mutator) override;
  Bindings lookup(const std::string& aor, std::int64_t nowMs) override;
  Bindings list(std::int64_t nowMs) override;
  std::size_t count(std::int64_t nowMs) override;
  Bindings sweepExpired(std::int64_t nowMs) override;
  bool useNonceCount(const std::string& nonce, std::uint32_t nc, std::int64_t ttlMs) override;
  std::string sharedNonceSecret(const std::string& candidate) override;
  void publish(const BindingEvent& event) override;
  std::uint64_t subscribe(Subscriber callback) override;
  void unsubscribe(std::uint64_t id) override;

 private:
  struct NonceCount {
    std::uint32_t nc;
    std::int64_t expiresAtMs;
  };
  const Clock& clock_;
  std::mutex mutex_;
  std::map<std::string, Bindings> aors_;
  std::map<std::string, NonceCount> nonceCounts_;
  std::string secret_;
  EventHub hub_;
};

}  // namespace medius::registrar
