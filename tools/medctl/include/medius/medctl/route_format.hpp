// `medctl route` and `medctl reload`: building the RouteCallRequest from what an operator
// types, and rendering the routing service's explanation for a terminal or as JSON.
//
// Pure functions over the generated proto types: no I/O, so tests/medctl checks them byte
// for byte. Thread: any.
#pragma once

#include <string>

#include "medius/v1/routing.pb.h"

namespace medius::medctl {

// "alice" -> "sip:alice@<domain>", "alice@host" -> "sip:alice@host", a URI with a scheme
// (sip:, sips:, tel:) unchanged; a number ("+14255550100", "(425) 555-0123") -> "tel:<it>".
std::string callerUri(const std::string& from, const std::string& domain);

// The callee as a phone would dial it: a URI with a scheme unchanged; a number (digits,
// '+', '*', '#' and visual separators " -.()") -> "sip:<number>@<domain>;user=phone";
// anything else ("bob", "bob@host") like callerUri.
std::string calleeUri(const std::string& to, const std::string& domain);

// The request for `medctl route`: from an internal user (`fromTrunk` empty: source
// internal_user = caller URI) or arriving on trunk `fromTrunk` (`from` may be empty).
medius::v1::RouteCallRequest routeRequest(const std::string& from, const std::string& to,
                                          const std::string& fromTrunk,
                                          const std::string& domain);

// The SIP response code of a no-route outcome (404, 403, 484, 503, 480), 0 when routed.
int sipCode(medius::v1::RoutePlan::Outcome outcome);

// "ROUTED", "NOT FOUND", "FORBIDDEN", "INCOMPLETE", "ALL TRUNKS DOWN", "UNAVAILABLE",
// "UNSPECIFIED".
std::string outcomeName(medius::v1::RoutePlan::Outcome outcome);

struct RouteFormatOptions {
  // ANSI colours (outcome, taken/skipped marks); off for pipes and tests.
  bool color = false;
};

// The explanation for a terminal: the outcome and its SIP code first with the caller and
// callee, then the normalized numbers, the reason, the config hash; then every step
// ("✓" taken, "✗" skipped) with its stage, subject and detail; then the target groups
// in order with their targets (trunk, request URI, number in the trunk's format, caller
// ID, failover codes) and timeouts. Every line ends with '\n'.
std::string formatExplanation(const medius::v1::RouteCallRequest& request,
                              const medius::v1::RouteExplanation& explanation,
                              const RouteFormatOptions& options = {});

// The explanation as pretty JSON (protobuf JSON mapping, proto field names, every field
// printed, enums by name) plus '\n'.
std::string explanationToJson(const medius::v1::RouteExplanation& explanation);

// `medctl reload`: "reloaded: now serving config <hash>" or
// "config <hash> unchanged (the file has the same hash)", plus '\n'.
std::string formatReload(const medius::v1::ReloadResponse& response);

}  // namespace medius::medctl
