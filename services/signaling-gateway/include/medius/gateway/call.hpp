// The B2BUA's decisions that need no SIP stack: how a route plan's outcome is answered,
// which failures move a call to the next target group, which of several failures is
// relayed to the caller, and how a call is classified. b2bua.hpp does the SIP work.
//
// Thread: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/support/status.h>

#include "medius/gateway/metrics.hpp"
#include "medius/gateway/register_request.hpp"
#include "medius/v1/media.pb.h"
#include "medius/v1/routing.pb.h"

namespace medius::gateway {

// The answer to a caller whose plan is not OUTCOME_ROUTED: NOT_FOUND 404, FORBIDDEN 403,
// INCOMPLETE 484, UNAVAILABLE 480, ALL_TRUNKS_DOWN 503 with Retry-After, anything else 500.
// The phrase carries routing's reason (one line, at most 120 characters).
SipReply routeOutcomeReply(const v1::RoutePlan& plan, std::int64_t retryAfterSeconds);

// 503 with Retry-After when a dependency ("Routing", "Media") failed or missed its deadline.
SipReply dependencyFailureReply(std::string_view service, const grpc::Status& status,
                                std::int64_t retryAfterSeconds);

// How one fork ended.
struct ForkOutcome {
  int status = 0;            // final status (nta's local 408/503 included)
  bool local = false;        // made by our own stack: timeout or transport error
  bool timedOut = false;     // the group timer cancelled it
  bool trunk = false;        // toward a trunk (else a user's device)
  std::vector<std::uint32_t> failoverCodes;  // the trunk's; empty: 408, 503, 504
};

// True when this failure lets the call move on to the next group: a timeout, a transport
// error, a trunk's failover code; for a user's device any 3xx-5xx (its owner's next
// group, e.g. forwarding, is what routing planned for "not answered"). A 6xx never does.
bool failoverAllowed(const ForkOutcome& outcome);

// The final status relayed when every target failed (RFC 3261 16.7 step 6, in spirit):
// a 6xx first; then 4xx other than 408/487 (486 Busy beats 404); then 5xx; then 408;
// then 487; none -> 480. A 503 from a downstream element is relayed as 500 (16.7: a
// proxy must not relay 503 as its own overload signal) unless `keep503`.
int bestFailure(const std::vector<int>& statuses, bool keep503 = false);

// "outbound" (internal -> trunk), "inbound" (trunk -> a user), "internal" (user -> user),
// "transit" (trunk -> trunk).
std::string_view callDirection(Side source, bool calleeIsUser);

// The default reason phrase of a status (sip_status_phrase), "Unknown" when none.
std::string statusPhrase(int status);

// Max-Forwards for the outgoing leg: nullopt when the request must be refused with 483
// (received 0); an absent header counts as 70.
std::optional<std::uint32_t> nextMaxForwards(std::optional<std::uint32_t> received);

// The media policy of one call target (LegParams: side, trunk, SRTP policy, codecs in
// preference order): a trunk target's TrunkTarget.media, the internal policy
// (gateway.json media.internal_srtp / internal_codecs) for a user's devices. A trunk routing
// sent no media for (an older routing) leaves srtp unspecified and the codecs empty: the
// worker's defaults.
v1::LegParams targetLegParams(const v1::RouteTarget& target, v1::SrtpPolicy internalSrtp,
                              const std::vector<std::string>& internalCodecs);

// Whether two legs get the same offer from the media worker: same side, SRTP policy, codecs
// and strict_source (the trunk's name does not change an offer).
bool sameMediaPolicy(const v1::LegParams& a, const v1::LegParams& b);

// Which offer of the session a target gets: 0 for leg_b's, i + 1 for leg_b_alternatives(i);
// 0 when none matches.
std::uint32_t offerIndexFor(const v1::CreateSessionRequest& request, const v1::LegParams& target);

// Fills the legs of a new call's media session:
//   leg_a (the caller): the internal policy for a caller on the internal side, else
//     sourceTrunkMedia (the source trunk's srtp and codecs from routing's ListTrunks,
//     TrunkLocator::media);
//   leg_b: the first target of the plan's first group (targetLegParams);
//   leg_b_alternatives: every other policy among the plan's targets, once each (the
//     devices of a dual fork next to a PBX trunk, failover trunks with SRTP or other
//     codecs): the worker makes an offer for each, and each fork gets the one of its policy.
void fillLegParams(v1::CreateSessionRequest& request, Side aSide, const std::string& sourceTrunk,
                   const v1::TrunkMedia& sourceTrunkMedia, const v1::RoutePlan& plan,
                   v1::SrtpPolicy internalSrtp, const std::vector<std::string>& internalCodecs);

}  // namespace medius::gateway
