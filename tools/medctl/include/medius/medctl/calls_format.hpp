// `medctl calls`: the gateway's active calls (GatewayAdmin.ListCalls) for a terminal.
//
// Pure functions over the generated proto types; "now" is a parameter (Unix ms) so
// tests/medctl checks them byte for byte. Thread: any. JSON output is messageToJson
// (status_format.hpp).
#pragma once

#include <cstdint>
#include <string>

#include "medius/v1/gateway.pb.h"

namespace medius::medctl {

// "internal", "trunk" or "-".
std::string sideName(medius::v1::Side side);

// The call's state from its legs: "terminating" when any leg is terminating, else the most
// advanced leg state ("routing" < "calling" < "proceeding" < "early" < "confirmed"); an
// unknown state only when no leg has a known one; "-" without legs.
std::string callState(const medius::v1::CallInfo& call);

// "45s", "3m07s", "2h00m05s".
std::string formatDuration(std::int64_t seconds);

// The `medctl calls` table: header CALL, CALLER -> CALLEE, STATE, AGE (since started_at_ms),
// DURATION (since answered_at_ms, "-" when unanswered), TRUNK, MEDIA WORKER (empty values
// "-"); under each call one indented line per leg: side, Call-ID, target, state (aligned
// over every leg). Then "N call(s), M answered". With no calls: "no calls" plus the total
// line. Lines end in '\n'; a clock behind a timestamp reads as 0s.
std::string formatCallsTable(const medius::v1::ListCallsResponse& response, std::int64_t nowMs);

// `medctl flows --gateway`: one line per watched flow (FLOW address/transport, AORS
// comma-separated, NAT, OUTBOUND, STATE, KEEPALIVE-AGE(s) = nowMs minus its last sign of
// life, REASON), then "N flow(s), M unreachable"; "no flows" when empty.
std::string formatGatewayFlowsTable(const medius::v1::ListFlowsResponse& response,
                                    std::int64_t nowMs);

}  // namespace medius::medctl
