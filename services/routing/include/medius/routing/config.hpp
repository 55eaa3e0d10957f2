// The routing model (routing.json), loaded once by loadConfig() (engine.hpp), validated,
// cross-referenced, then immutable. docs/configuration.md ("routing") and
// config/schema/routing.schema.json describe every key; docs/routing.md the semantics.
//
//   {
//     "service": {...},                          see medius/common/service.hpp
//     "domain": "example.com",                   required
//     "registrar": {"address": "127.0.0.1:50051", "timeout_ms": 500}, env MEDIUS_REGISTRAR_ADDRESS
//     "default_dial_plan": "redmond",            required; a dial_plans[].name
//     "dial_plans": [{"name", "description", "rules": [{"name", "description", "pattern",
//                     "translation" | "incomplete": true}]}],
//     "trunks": [{"name", "description", "address": "host:port", "transport": "udp|tcp|tls",
//                 "max_concurrent_calls": 0, "failover_codes": [408, 503, 504],
//                 "failover_timeout_ms": 10000,
//                 "srtp": "off" | "optional" | "required",   default "off"
//                 "codecs": ["PCMU", "PCMA"],   preference order; see common/media_policy.hpp
//                 "trusted": false,             RFC 3325 trust: P-Asserted-Identity sent to it
//                 "outbound": {"called": [rule], "calling": [rule]},
//                 "inbound": {"called": [rule], "calling": [rule]}}],
//     "routes": [{"name", "description", "pattern",
//                 "trunks": ["a", "b"] | [{"name", "priority": 1, "weight": 1}],
//                 "caller_id": {"number": "+1...", "name": "..."}}],
//     "pstn_usages": [{"name", "description", "routes": ["route", ...]}],
//     "voice_policies": [{"name", "description", "usages": ["usage", ...]}],
//     "users": [{"uri", "display_name", "line": "+14255550100;ext=100", "dial_plan",
//                "voice_policy", "coexistence": {"pbx_trunk", "pbx_number"},
//                "forwarding": {"immediate": {"target"}, "no_answer": {"target", "after_seconds"},
//                               "unavailable": {"target"}},
//                "simultaneous_ring": {"target"}}]
//   }
//
// Thread: immutable after loadConfig(); shared as std::shared_ptr<const Config> between
// any number of threads and swapped whole on reload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "medius/common/config.hpp"
#include "medius/common/service.hpp"
#include "medius/routing/engine.hpp"
#include "medius/routing/numbers.hpp"
#include "medius/v1/common.pb.h"
#include "medius/v1/media.pb.h"

namespace medius::routing {

inline constexpr std::size_t kNone = static_cast<std::size_t>(-1);

// Hashing for heterogeneous (string_view) lookups without allocating a key.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
// One normalization rule of a dial plan: dialled digits -> (usually) E.164.
struct NormalizationRule {
  std::string name;
  std::string description;
  Pattern pattern;
  // True: a match means the number is incomplete (SIP 484); no translation.
  bool incomplete = false;
};

struct DialPlan {
  std::string name;
  std::string description;
  std::vector<NormalizationRule> rules;  // first match wins
};

// A trunk translation rule (E.164 <-> the trunk's number format).
struct TranslationRule {
  std::string name;  // optional; "" -> "#<index>" in explanations
  std::string description;
  Pattern pattern;
};

struct Translations {
  std::vector<TranslationRule> called;   // first match wins; none -> unchanged
  std::vector<TranslationRule> calling;  // first match wins; none -> unchanged
};

struct Trunk {
  std::string name;
  std::string description;
  config::HostPort address;
  v1::Transport transport = v1::TRANSPORT_UDP;
  // 0: unlimited. Reported by ListTrunks; enforced by the gateway.
  std::uint32_t maxConcurrentCalls = 0;
  std::vector<std::uint32_t> failoverCodes{408, 503, 504};
  // The group timeout of this trunk's target group, milliseconds (0: SIP's own timers).
  std::uint32_t failoverTimeoutMs = 10000;
  Translations outbound;  // E.164 -> trunk format
  Translations inbound;   // trunk format -> E.164
  // The trunk side's media policy, for the media worker (TrunkTarget.media, TrunkInfo.media).
  v1::SrtpPolicy srtp = v1::SRTP_POLICY_OFF;
  std::vector<std::string> codecs{"PCMU", "PCMA"};  // normalized names, preference order
  // In our RFC 3325 trust domain: the gateway sends it P-Asserted-Identity (TrunkInfo.trusted).
  bool trusted = false;
  // transport "tls" only: the name the trunk's certificate must carry (TrunkInfo.tls_name);
  // "tls_name" in routing.json, the address's host by default.
  std::string tlsName;
};

struct RouteTrunk {
  std::size_t trunk = kNone;  // index into Config::trunks
  std::int64_t priority = 0;  // lower first
  std::int64_t weight = 1;    // among equal priorities, chance proportional to weight
};

struct Route {
  std::string name;
  std::string description;
  Pattern pattern;  // on the normalized number
  // Sorted by priority (stable: file order among equals).
  std::vector<RouteTrunk> trunks;
  // True when some priority has more than one trunk (order decided per call by weight).
  bool weighted = false;
  // Caller ID rewrite (E.164 number before the trunk's calling rules; display name).
  std::optional<std::string> callerIdNumber;
  std::optional<std::string> callerIdName;
};

struct PstnUsage {
  std::string name;
  std::string description;
  std::vector<std::size_t> routes;  // indexes into Config::routes, in order
};

struct VoicePolicy {
  std::string name;
  std::string description;
  std::vector<std::size_t> usages;  // indexes into Config::usages, in order
  // Every (usage, route) pair in decision order, computed at load; `repeat` marks a route
  // already listed by an earlier usage of this policy (considered once).
  struct Entry {
    std::size_t usage = kNone;
    std::size_t route = kNone;
    bool repeat = false;
  };
  std::vector<Entry> entries;
  // Prefix index over `entries` (not repeats): a route can only match numbers that start
  // with its pattern's literal prefix, so a decision looks up the number's prefixes of
  // these lengths instead of trying every route. Values are sorted entry positions.
  std::unordered_map<std::string, std::vector<std::uint32_t>, StringHash, std::equal_to<>>
      entriesByPrefix;
  std::vector<std::size_t> prefixLengths;  // distinct, ascending
  std::vector<std::uint32_t> allEntries;   // 0..entries.size()-1 (explanations list all)
};

// A forwarding (or simultaneous ring) destination.
struct ForwardTarget {
  std::string target;      // as configured
  std::string normalized;  // through the user's dial plan, at load
};

struct User {
  std::string uri;  // "sip:alice@example.com"
  std::string displayName;
  std::string line;       // as configured: "+14255550100;ext=100"
  std::string number;     // E.164 part: "+14255550100"
  std::string extension;  // "100" or ""
  std::size_t dialPlan = kNone;     // index into Config::dialPlans (the default when unset)
  std::size_t voicePolicy = kNone;  // kNone: calls to other users only
  // Co-existence (dual forking): the PBX trunk and the number the PBX knows the user by.
  std::size_t pbxTrunk = kNone;
  std::string pbxNumber;
  std::optional<ForwardTarget> forwardImmediate;
  std::optional<ForwardTarget> forwardNoAnswer;
  std::uint32_t noAnswerSeconds = 20;
  std::optional<ForwardTarget> forwardUnavailable;  // busy or unavailable
  std::optional<ForwardTarget> simultaneousRing;
};

using NameIndex = std::unordered_map<std::string, std::size_t, StringHash, std::equal_to<>>;

struct Config {
  std::string file;
  std::string hash;  // first 12 hex digits of SHA-256 over the file's text
  ServiceSettings service;
  RegistrarSettings registrar;
  std::string domain;
  std::size_t defaultDialPlan = kNone;
  std::vector<DialPlan> dialPlans;
  std::vector<Trunk> trunks;
  std::vector<Route> routes;
  std::vector<PstnUsage> usages;
  std::vector<VoicePolicy> policies;
  std::vector<User> users;

  // Name -> index.
  NameIndex dialPlanByName, trunkByName, routeByName, usageByName, policyByName;
  // Reverse number lookup: E.164 line number (without ;ext) -> user index.
  NameIndex userByNumber;
  // User URI ("sip:alice@example.com", host lower-case) -> user index.
  NameIndex userByUri;

  const User* findUserByNumber(std::string_view e164) const;
  const User* findUserByUri(std::string_view uri) const;
  const Trunk* findTrunk(std::string_view name) const;
};

// The trunk's "srtp" and "codecs" as the proto carried by TrunkTarget and TrunkInfo.
void trunkMedia(const Trunk& trunk, v1::TrunkMedia& media);

// Loads from JSON text (tests, fuzzing); `name` is the file name used in errors.
std::shared_ptr<const Config> loadConfigText(std::string_view text, const std::string& name);

}  // namespace medius::routing
