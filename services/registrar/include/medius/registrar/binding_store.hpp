// Where bindings live: the seam between the registrar's logic and its storage.
//
// Two implementations: MemoryBindingStore (one process) and RedisBindingStore (replicas
// share bindings, nonce counts, the nonce secret and binding events). Tests run the same
// behaviour suite against both.
//
// Thread: every method is thread-safe. Subscriber callbacks run on a store thread (the
// publisher's thread for the memory store, the Redis subscriber thread otherwise); they
// must be quick and must not call back into the store.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "medius/v1/registrar.pb.h"

namespace medius::registrar {

using Binding = medius::v1::Binding;
using BindingEvent = medius::v1::BindingEvent;
using Bindings = std::vector<Binding>;

// The store cannot be reached (Redis down, timeout). The gRPC layer maps it to UNAVAILABLE.
class StoreUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Changes the unexpired bindings of one AOR in place; returns false to abort (nothing is
// written). May run more than once for one update (optimistic retries): it must only
// depend on its argument and reset whatever it records at each call.
using Mutator = std::function<bool(Bindings&)>;

struct UpdateResult {
  // False when the mutator aborted.
  bool committed = false;
  // The bindings after the update (or the unchanged ones when aborted).
  Bindings bindings;
  // Expired bindings this update removed (when committed); the caller reports them as
  // EXPIRED, exactly once, as the sweeper would have.
  Bindings expired;
};

using Subscriber = std::function<void(const BindingEvent&)>;

class BindingStore {
 public:
  virtual ~BindingStore() = default;

  // Atomic read-modify-write of one AOR's bindings. Bindings with expires_at_ms <= nowMs
  // are not passed to the mutator.
  virtual UpdateResult update(const std::string& aor, std::int64_t nowMs,
                              const Mutator& mutator) = 0;
  // Unexpired bindings of one AOR, in stored order.
  virtual Bindings lookup(const std::string& aor, std::int64_t nowMs) = 0;
  // Unexpired bindings of every AOR, sorted by AOR.
  virtual Bindings list(std::int64_t nowMs) = 0;
  virtual std::size_t count(std::int64_t nowMs) = 0;
  // Removes every binding expired at nowMs and returns them. Atomic: with several
  // replicas sweeping, each binding is returned by exactly one of them.
  virtual Bindings sweepExpired(std::int64_t nowMs) = 0;

  // Records nonce-count `nc` for `nonce`; true only when nc is greater than every count
  // seen for that nonce (RFC 7616 replay protection), remembered for ttlMs.
  virtual bool useNonceCount(const std::string& nonce, std::uint32_t nc, std::int64_t ttlMs) = 0;
  // The nonce secret every replica uses: the first candidate ever offered wins.
  virtual std::string sharedNonceSecret(const std::string& candidate) = 0;

  // Delivers `event` to the subscribers of every replica sharing this store.
  virtual void publish(const BindingEvent& event) = 0;
  // Returns a subscription id. When subscribe returns, later publishes (from any replica)
  // reach `callback` (for Redis: once its SUBSCRIBE is confirmed; throws StoreUnavailable
  // when it cannot be).
  virtual std::uint64_t subscribe(Subscriber callback) = 0;
  // After unsubscribe returns, the callback is not running and never runs again.
  virtual void unsubscribe(std::uint64_t id) = 0;
};

}  // namespace medius::registrar
