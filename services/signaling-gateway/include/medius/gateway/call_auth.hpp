// Who a request really comes from: digest authentication of calls (and of every other
// out-of-dialog request from the internal side but REGISTER, OPTIONS, ACK and CANCEL),
// the From check, and the RFC 3325 identity headers. Pure functions over Sofia's parsed
// message and the registrar's answers; the Gateway runs the two gRPC steps
// (Registrar.Challenge, Registrar.VerifyDigest) and the B2bua uses the identity.
//
//   no Proxy-Authorization for auth.realm     -> Challenge -> 407 (Proxy-Authenticate per
//                                                 algorithm), counted "missing"
//   credentials -> VerifyDigest: OK            -> the request goes on as the user's AOR;
//                                                 From AOR not that one: 403 (counted
//                                                 "from_mismatch") unless auth.from_must_match
//                                 INVALID      -> 407 with fresh challenges ("invalid"), as the
//                                                 registrar answers a REGISTER (401): a client
//                                                 whose credentials fail twice gives up
//                                 STALE        -> 407 with stale=true ("stale", RFC 7616 3.3)
//                                 REPLAYED     -> 407 ("replayed")
//   registrar unreachable, late or failing     -> 503 with Retry-After ("unavailable"); never
//                                                 let through unauthenticated
// A request over mutual TLS from a trusted peer (a verified client certificate naming one
// of internal.tls.trusted_names) skips the digest step (needsCredentials()).
//
// Thread: any (they only read their arguments).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <grpcpp/support/status.h>
#include <sofia-sip/sip.h>

#include "medius/gateway/config.hpp"
#include "medius/gateway/metrics.hpp"
#include "medius/gateway/register_request.hpp"
#include "medius/v1/registrar.pb.h"

namespace medius::gateway {

// The identity a request was authenticated as.
struct CallerIdentity {
  // The user's AOR as the registrar knows it ("sip:alice@example.com"); "" when the
  // request was not authenticated (trunk side, or auth.calls "off").
  std::string aor;
  bool authenticated() const { return !aor.empty(); }
};

// True when a request needs digest credentials before anything acts on it: the internal
// side, auth.calls "required", out of dialog (no To tag), any method but REGISTER (the
// registrar challenges it itself), OPTIONS (keepalives and capability queries change
// nothing), ACK (never answered) and CANCEL (it follows its INVITE, which was checked).
// Nor does a request from a trusted peer (`trustedPeer`: it came over a TLS connection
// whose verified client certificate names one of internal.tls.trusted_names).
bool needsCredentials(const sip_t* sip, Side side, CallAuthMode mode, bool trustedPeer = false);

// Digest credentials of the first Authorization-type header in `list` (Authorization or
// Proxy-Authorization: both are msg_auth_t) whose realm is `realm`; `method` is the
// request's method. nullopt when there is none (credentials for another realm are not
// ours, RFC 3261 22.3).
std::optional<v1::DigestCredentials> digestCredentials(const msg_auth_t* list,
                                                       const std::string& realm,
                                                       const std::string& method);

// The 407 for a Challenge result: one Proxy-Authenticate per challenge (preferred
// algorithm first). 503 with Retry-After when the call failed or brought no challenge.
SipReply challengeReply(const grpc::Status& status, const v1::ChallengeResponse& response,
                        std::int64_t retryAfterSeconds);

// What to do with a request after VerifyDigest.
struct AuthVerdict {
  std::optional<CallerIdentity> identity;  // set: let the request through as this user
  SipReply reply;                          // otherwise: answer this
  std::optional<AuthFailure> failure;      // and count this (also set on a 407 challenge)
};

// fromAor: aorOf() of the request's From URI.
AuthVerdict verifyVerdict(const grpc::Status& status, const v1::VerifyDigestResponse& response,
                          const std::string& fromAor, bool fromMustMatch,
                          std::int64_t retryAfterSeconds);

// The 403 of a trunk-side request from an address that is no configured trunk.
SipReply unknownTrunkReply();
// The 403 to a request from a TLS trunk's address that did not come over a TLS connection
// whose certificate verified and named the trunk.
SipReply trunkTlsRequiredReply();

// The 403 of credentials for a username locked after failed attempts (auth_guard.hpp),
// the same whether the user exists or not.
SipReply userLockedReply();

// The URI of the first P-Asserted-Identity header (RFC 3325), without its display name
// and angle brackets; "" when none. Only a trusted trunk's is believed.
std::string assertedIdentity(const sip_t* sip);

// True when the request's Privacy header (RFC 3323) asks for "id": the caller's identity
// must be withheld from everyone outside our trust domain (RFC 3325 7).
bool privacyId(const sip_t* sip);

// The From of a call whose caller asked for privacy (RFC 3323 4.1.1.3).
inline constexpr const char* kAnonymousFrom = "\"Anonymous\" <sip:anonymous@anonymous.invalid>";

// The P-Asserted-Identity value we send toward a trusted trunk for an authenticated
// caller presented as `user` (the number routing formatted for that trunk) at `host`:
// "<sip:user@host>" (with the display name when there is one).
std::string assertedIdentityValue(const std::string& display, const std::string& user,
                                  const std::string& host);

}  // namespace medius::gateway
