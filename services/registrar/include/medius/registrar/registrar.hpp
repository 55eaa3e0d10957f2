// The registrar's logic, without sockets: REGISTER processing (RFC 3261 section 10.3,
// RFC 5626 instance-id/reg-id keying), digest authentication (RFC 7616), lookups,
// administrative removal and expiry sweeps. Effects go through the BindingStore.
//
// Ownership: borrows the config, store, clock and metrics, which must outlive it.
// Thread: thread-safe; the store provides the atomicity.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "medius/common/clock.hpp"
#include "medius/common/digest.hpp"
#include "medius/registrar/binding_store.hpp"
#include "medius/registrar/config.hpp"
#include "medius/registrar/metrics.hpp"

namespace medius::registrar {

// The request is malformed (empty AOR, missing Call-ID...): gRPC INVALID_ARGUMENT.
class InvalidRequest : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Outcome of verifying digest credentials.
enum class AuthOutcome { Ok, Missing, Malformed, UnknownUser, BadResponse, Stale, Replayed };

struct AuthCheck {
  AuthOutcome outcome = AuthOutcome::Missing;
  // The authenticated user (Ok), else nullptr.
  const UserConfig* user = nullptr;
  std::string reason;
};

class Registrar {
 public:
  Registrar(const RegistrarConfig& config, BindingStore& store, const Clock& clock,
            RegistrarMetrics& metrics);

  // Applies one REGISTER. Throws InvalidRequest, StoreUnavailable.
  medius::v1::RegisterResponse handleRegister(const medius::v1::RegisterRequest& request);

  // Unexpired bindings of one AOR, highest q first, then most recently refreshed first;
  // bindings whose flow is unreachable only with includeUnreachable.
  Bindings lookup(const std::string& aor, bool includeUnreachable = false);
  // All bindings (aor == "") or one AOR's, sorted by AOR then as lookup().
  Bindings list(const std::string& aor);
  // Removes one contact (contactUri != "") or every binding of `aor`; returns how many.
  std::uint32_t removeBindings(const std::string& aor, const std::string& contactUri);
  // A gateway's report on a flow: the AOR's bindings registered over req.received through
  // req.gateway_id take req.state (REFRESHED events for those that changed); returns how
  // many changed. Throws InvalidRequest, StoreUnavailable.
  std::uint32_t reportFlow(const medius::v1::ReportFlowRequest& request);
  // Removes expired bindings, publishes EXPIRED for each, updates the bindings gauge.
  std::size_t sweep();

  // Fresh challenges, one per configured algorithm, in configured order.
  std::vector<medius::v1::DigestChallenge> challenges(bool stale);
  // Verifies credentials for any method (consumes the nonce-count). Counts failures.
  AuthCheck verify(const medius::v1::DigestCredentials& credentials);
  medius::v1::VerifyDigestResponse verifyDigest(const medius::v1::DigestCredentials& credentials);

  const RegistrarConfig& config() const { return config_; }
  std::int64_t nowMs() const { return clock_.nowMs(); }

 private:
  // Nonces are made and checked with the secret shared through the store (lazily fetched,
  // so that a registrar starts while Redis is down).
  const digest::NonceManager& nonces();
  std::string opaque();
  void countAuthFailure(AuthOutcome outcome);
  void countResult(medius::v1::RegisterResponse::Result result);
  medius::v1::RegisterResponse finish(medius::v1::RegisterResponse response);
  void publish(BindingEvent::Kind kind, const Binding& binding);
  void fillExpiresIn(Bindings& bindings, std::int64_t nowMs) const;

  const RegistrarConfig& config_;
  BindingStore& store_;
  const Clock& clock_;
  RegistrarMetrics& metrics_;
  std::mutex nonceMutex_;
  std::unique_ptr<digest::NonceManager> nonces_;
  std::string opaque_;
};

// Sorts as LookupResponse documents: q descending, then updated_at descending.
void sortBindings(Bindings& bindings);

}  // namespace medius::registrar
