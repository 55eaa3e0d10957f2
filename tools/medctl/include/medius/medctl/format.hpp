// Rendering of registrar data for humans (aligned tables) and machines (JSON).
//
// Pure functions over the generated proto types: no I/O, no clock, so tests/medctl checks
// them byte for byte. Thread: any.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "medius/v1/registrar.pb.h"

namespace medius::medctl {

// "udp", "tcp", "tls", "ws", "wss" or "?" for an unspecified transport.
std::string transportName(medius::v1::Transport transport);

// "host:port/transport" of a SocketAddress; "-" when the host is empty. IPv6 hosts get
// brackets ("[::1]:5062/udp").
std::string formatSource(const medius::v1::SocketAddress& address);

// The `medctl registrations` table: a header line, one line per binding in the given
// order (columns AOR, CONTACT, EXPIRES, SOURCE, USER-AGENT, INSTANCE; empty values shown
// as "-"), then "N binding(s), M AOR(s)". With no bindings: "no bindings" plus the
// total line. Every line ends with '\n'.
std::string formatBindingsTable(const std::vector<medius::v1::Binding>& bindings);

// One binding as a JSON object with stable snake_case keys: aor, contact, expires_in,
// expires_at_ms, q, instance_id, reg_id, path, user_agent, source{host,port,transport},
// call_id, cseq, gateway_id, created_at_ms, updated_at_ms.
nlohmann::json bindingToJson(const medius::v1::Binding& binding);

// "active", "unreachable" or "unknown".
std::string flowStateName(medius::v1::Flow::State state);

// A binding's flow as JSON: state, nat, outbound, flow_timer_s, last_keepalive_ms, reason,
// state_changed_at_ms (bindingToJson's "flow").
nlohmann::json flowToJson(const medius::v1::Flow& flow);

// The `medctl flows` table: one line per binding (columns AOR, FLOW (source/transport, or
// "path <first Path>" behind an edge proxy), GATEWAY, NAT, OUTBOUND, STATE,
// KEEPALIVE-AGE(s) (nowMs minus the flow's last keepalive, "-" when never), REASON), then
// "N flow(s) of binding(s), M behind NAT, K unreachable"; "no flows" when empty.
std::string formatFlowsTable(const std::vector<medius::v1::Binding>& bindings, std::int64_t nowMs);

// {"bindings": [...], "total": N, "aors": M}, pretty-printed (2 spaces) plus '\n'.
std::string formatBindingsJson(const std::vector<medius::v1::Binding>& bindings);

// "added", "refreshed", "removed", "expired", "snapshot-end" or "unknown".
std::string eventKindName(medius::v1::BindingEvent::Kind kind);

// One line for `medctl watch`: "<kind> <aor> <contact> expires=<s>s source=<src>" or
// "snapshot-end" (ends with '\n').
std::string formatEventLine(const medius::v1::BindingEvent& event);

// {"event": kind, "binding": {...}} on one line plus '\n' (no binding for snapshot-end).
std::string formatEventJson(const medius::v1::BindingEvent& event);

}  // namespace medius::medctl
