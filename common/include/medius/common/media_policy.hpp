// The media policy of one side of a call, as configured: the SRTP policy and the codec
// preference list. Read from routing.json (per trunk) and gateway.json (the internal side),
// carried to the media worker in CreateSessionRequest.leg_a/leg_b (media.proto LegParams).
//
//   "srtp":   "off" | "optional" | "required"
//   "codecs": ["PCMU", "PCMA", ...] in preference order. Names are case-insensitive on
//             input and normalized to their SDP encoding names: "opus", "G722", "PCMU",
//             "PCMA", "G729", and "CN": RFC 3389 comfort noise, which lets the media worker
//             offer CN to the side even when the other side did not offer it (see
//             docs/media.md). Unknown names, duplicates and a list without an audio codec
//             are errors.
//
// Thread: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "medius/common/config.hpp"
#include "medius/v1/media.pb.h"

namespace medius::config {

// The codec names a policy may list, in their normalized spelling.
const std::vector<std::string>& knownCodecs();

// The normalized spelling of a codec name ("pcmu" -> "PCMU", "OPUS" -> "opus"), or
// nullopt for a name that is not in knownCodecs().
std::optional<std::string> normalizeCodec(std::string_view name);

// "off", "optional", "required" ("unspecified" for SRTP_POLICY_UNSPECIFIED).
std::string_view srtpPolicyName(v1::SrtpPolicy policy);

// o[key] as an SRTP policy; missing -> fallback. Errors name the file and JSON path.
v1::SrtpPolicy readSrtpPolicy(Object& o, std::string_view key, v1::SrtpPolicy fallback);

// o[key] as a codec preference list, normalized; missing -> fallback. An unknown name or a
// duplicate fails at key[i]; an empty list fails at key.
std::vector<std::string> readCodecs(Object& o, std::string_view key,
                                    std::vector<std::string> fallback);

}  // namespace medius::config
