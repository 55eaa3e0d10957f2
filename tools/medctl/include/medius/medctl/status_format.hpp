// `medctl trunks` (the gateway's trunk keepalive view) and `medctl sessions` (a media
// worker's relay sessions): rendering for a terminal and as JSON.
//
// Pure functions over the generated proto types; "now" is a parameter (Unix ms) so
// tests/medctl checks them byte for byte. Thread: any.
#pragma once

#include <cstdint>
#include <string>

#include <google/protobuf/message.h>

#include "medius/v1/gateway.pb.h"
#include "medius/v1/media.pb.h"

namespace medius::medctl {

// The `medctl trunks` table: header TRUNK, ADDRESS (host:port/transport), STATE (up/down),
// LAST OPTIONS (the last OPTIONS response code, "timeout" for 0), SINCE (seconds since
// last_change_ms, "-" when 0), ACTIVE CALLS; one line per trunk in the given order; then
// "N trunk(s), M up". With no trunks: "no trunks" plus the total line. Lines end in '\n'.
std::string formatTrunksTable(const medius::v1::ListTrunkStatusResponse& response,
                              std::int64_t nowMs);

// One line per session: "SESSION <id>  AGE <s>s  A <local> -> <remote> in <n> out <n>
// lost <n>  B ..." (age from created_at_ms, "-" when 0), then
// "N session(s), load L of LIMIT". Lines end in '\n'.
std::string formatSessions(const medius::v1::ListSessionsResponse& response,
                           std::int64_t nowMs);

// Any message as pretty JSON (protobuf JSON mapping, proto field names, every field
// printed) plus '\n'.
std::string messageToJson(const google::protobuf::Message& message);

}  // namespace medius::medctl
