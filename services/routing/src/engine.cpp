// route(): the Enterprise Voice decision (docs/routing.md) as a pure function of the
// configuration, trunk health, device presence and the request.
#include <algorithm>
#include <array>
#include <cstring>

#include "medius/routing/config.hpp"

namespace medius::routing {

namespace {

using Outcome = v1::RoutePlan::Outcome;

// Appends explanation steps when asked to; the detail text is only built then.
class Explain {
 public:
  explicit Explain(std::vector<v1::ExplainStep>* steps) : steps_(steps) {}
  bool on() const { return steps_ != nullptr; }
  template <typename Detail>
  void add(std::string_view stage, std::string_view subject, bool taken, Detail&& detail) {
    if (!steps_) return;
    v1::ExplainStep& s = steps_->emplace_back();
    s.set_stage(std::string(stage));
    s.set_subject(std::string(subject));
    s.set_taken(taken);
    s.set_detail(detail());
  }

 private:
  std::vector<v1::ExplainStep>* steps_;
};

std::string quote(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out += '"';
  return out;
}

// A few indexes kept on the stack; spills to the heap only for unusual plans.
class SmallIndexSet {
 public:
  bool contains(std::size_t v) const {
    for (std::size_t i = 0; i < size_ && i < inline_.size(); ++i) {
      if (inline_[i] == v) return true;
    }
    return std::find(overflow_.begin(), overflow_.end(), v) != overflow_.end();
  }
  void insert(std::size_t v) {
    if (size_ < inline_.size()) {
      inline_[size_] = v;
    } else {
      overflow_.push_back(v);
    }
    ++size_;
  }

 private:
  std::array<std::size_t, 16> inline_{};
  std::size_t size_ = 0;
  std::vector<std::size_t> overflow_;
};

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// First matching rule's translation of `in` into `out`; `in` unchanged when none matches.
// Returns the rule that matched or nullptr.
const TranslationRule* translateFirst(const std::vector<TranslationRule>& rules,
                                      std::string_view in, std::string& out) {
  for (const auto& r : rules) {
    if (r.pattern.translate(in, out)) return &r;
  }
  out.assign(in);
  return nullptr;
}

std::string ruleLabel(const std::vector<TranslationRule>& rules, const TranslationRule* r) {
  if (!r) return "no rule matched: unchanged";
  std::string name = r->name.empty()
                         ? "#" + std::to_string(static_cast<std::size_t>(r - rules.data()))
                         : r->name;
  return "rule " + name + " (" + r->pattern.pattern() + " -> " + r->pattern.translation() + ")";
}

// The result of routing a number over a voice policy's trunks.
struct TrunkRouting {
  Outcome outcome = v1::RoutePlan::OUTCOME_UNSPECIFIED;
  std::string reason;
  int groups = 0;
};

class Decision {
 public:
  Decision(const Config& cfg, const TrunkHealth& health, DeviceLookup& devices,
           const v1::RouteCallRequest& req, std::vector<v1::ExplainStep>* steps,
           v1::RoutePlan& plan)
      : cfg_(cfg), health_(health), devices_(devices), req_(req), ex_(steps), plan_(plan) {}

  void run();
  // The PBX phone of a co-existence user as a trunk target (ControlLine); false when the
  // PBX trunk is down.
  bool pbxPhoneTarget(const User& user, v1::TargetGroup& group);

 private:
  void fromTrunk(const Trunk& trunk, std::size_t trunkIndex);
  void fromInternal(const User* caller, std::string_view callerUri);
  void toUser(const User& callee, std::size_t fromTrunk);
  TrunkRouting toTrunks(const User* caller, std::size_t policy, const std::string& number,
                        std::string_view callerId, std::string_view why, bool single,
                        v1::TargetGroup* into);
  bool forward(const User& callee, const ForwardTarget& target, std::string_view kind,
               bool finalOutcome);
  void addTrunkTarget(v1::TargetGroup& group, const Trunk& trunk, std::string_view number,
                      std::string_view callerId, const Route* route, bool pbxPhone,
                      std::string reason);
  bool usable(const Trunk& trunk, std::string_view context);
  bool excluded(const std::string& trunk) const;
  void finish(Outcome outcome, std::string reason);

  const Config& cfg_;
  const TrunkHealth& health_;
  DeviceLookup& devices_;
  const v1::RouteCallRequest& req_;
  const User* caller_ = nullptr;
  Explain ex_;
  v1::RoutePlan& plan_;
  std::string scratch_;
};

void Decision::finish(Outcome outcome, std::string reason) {
  plan_.set_outcome(outcome);
  ex_.add("outcome", v1::RoutePlan::Outcome_Name(outcome), outcome == v1::RoutePlan::OUTCOME_ROUTED,
          [&] { return reason; });
  plan_.set_reason(std::move(reason));
}

bool Decision::excluded(const std::string& trunk) const {
  for (const auto& t : req_.exclude_trunks()) {
    if (t == trunk) return true;
  }
  return false;
}

bool Decision::usable(const Trunk& trunk, std::string_view context) {
  if (excluded(trunk.name)) {
    ex_.add("trunk", trunk.name, false, [&] {
      return std::string(context) + ": skipped, already tried in this call (exclude_trunks)";
    });
    return false;
  }
  if (!health_.isUp(trunk.name)) {
    ex_.add("trunk", trunk.name, false,
            [&] { return std::string(context) + ": skipped, trunk is down"; });
    return false;
  }
  return true;
}

void Decision::addTrunkTarget(v1::TargetGroup& group, const Trunk& trunk, std::string_view number,
                              std::string_view callerId, const Route* route, bool pbxPhone,
                              std::string reason) {
  v1::RouteTarget* target = group.add_targets();
  v1::TrunkTarget* tt = target->mutable_trunk();
  tt->set_trunk(trunk.name);
  const TranslationRule* calledRule = translateFirst(trunk.outbound.called, number, scratch_);
  tt->set_called_number(scratch_);
  std::string* uri = tt->mutable_request_uri();
  uri->reserve(4 + scratch_.size() + 1 + trunk.address.host.size() + 20);
  uri->append(trunk.transport == v1::TRANSPORT_TLS ? "sips:" : "sip:").append(scratch_).append("@");
  if (trunk.address.host.find(':') != std::string::npos) {
    uri->append("[").append(trunk.address.host).append("]");
  } else {
    uri->append(trunk.address.host);
  }
  uri->append(":").append(std::to_string(trunk.address.port));
  if (trunk.transport == v1::TRANSPORT_TCP) uri->append(";transport=tcp");
  v1::SocketAddress* address = tt->mutable_address();
  address->set_host(trunk.address.host);
  address->set_port(trunk.address.port);
  address->set_transport(trunk.transport);
  for (auto code : trunk.failoverCodes) tt->add_failover_codes(code);
  tt->set_pbx_phone(pbxPhone);
  trunkMedia(trunk, *tt->mutable_media());
  std::string_view cidSource = callerId;
  if (route && route->callerIdNumber) cidSource = *route->callerIdNumber;
  const TranslationRule* callingRule = translateFirst(trunk.outbound.calling, cidSource, scratch_);
  target->set_caller_id(scratch_);
  if (route && route->callerIdName) target->set_caller_display_name(*route->callerIdName);
  ex_.add("trunk", trunk.name, true, [&] {
    std::string d = reason + ": called " + quote(tt->called_number()) + " (" +
                    ruleLabel(trunk.outbound.called, calledRule) + "), caller ID " +
                    quote(target->caller_id());
    if (route && route->callerIdNumber) d += " (route caller_id " + *route->callerIdNumber + ")";
    d += " (" + ruleLabel(trunk.outbound.calling, callingRule) + "), request URI " +
         tt->request_uri();
    return d;
  });
  target->set_reason(std::move(reason));
}

TrunkRouting Decision::toTrunks(const User* caller, std::size_t policyIndex,
                                const std::string& number, std::string_view callerId,
                                std::string_view why, bool single, v1::TargetGroup* into) {
  TrunkRouting result;
  bool anyRoute = false;
  bool anyTrunk = false;
  if (policyIndex == kNone) {
    ex_.add("policy", "(none)", false, [&] {
      return std::string(caller ? caller->uri : "the caller") +
             " has no voice policy: calls to users only";
    });
  } else {
    const VoicePolicy& policy = cfg_.policies[policyIndex];
    ex_.add("policy", policy.name, true, [&] {
      std::string detail = std::string(why);
      if (!detail.empty()) detail += ": ";
      return detail + "voice policy of " + (caller ? caller->uri : std::string("the caller")) +
             ", " + std::to_string(policy.usages.size()) + " PSTN usage(s)";
    });
    SmallIndexSet trunksSeen;
    std::uint64_t callHash = fnv1a(req_.call_id());
    std::size_t lastUsage = kNone;
    // Explaining lists every route; deciding looks only at routes whose literal prefix
    // the number starts with (same result: the others cannot match).
    std::array<std::uint32_t, 64> inlineCandidates{};
    std::vector<std::uint32_t> bigCandidates;
    const std::uint32_t* list = policy.allEntries.data();
    std::size_t listSize = policy.allEntries.size();
    if (!ex_.on()) {
      std::size_t n = 0;
      for (std::size_t length : policy.prefixLengths) {
        if (length > number.size()) break;
        auto it = policy.entriesByPrefix.find(std::string_view(number).substr(0, length));
        if (it == policy.entriesByPrefix.end()) continue;
        for (std::uint32_t e : it->second) {
          if (n < inlineCandidates.size()) {
            inlineCandidates[n] = e;
          } else {
            if (bigCandidates.empty()) {
              bigCandidates.assign(inlineCandidates.begin(), inlineCandidates.end());
            }
            bigCandidates.push_back(e);
          }
          ++n;
        }
      }
      std::uint32_t* data = n > inlineCandidates.size() ? bigCandidates.data()
                                                        : inlineCandidates.data();
      std::sort(data, data + n);
      list = data;
      listSize = n;
    }
    for (std::size_t c = 0; c < listSize; ++c) {
      const VoicePolicy::Entry& entry = policy.entries[list[c]];
      const PstnUsage& usage = cfg_.usages[entry.usage];
      if (entry.usage != lastUsage) {
        lastUsage = entry.usage;
        ex_.add("usage", usage.name, true, [&] {
          return "PSTN usage of policy " + policy.name + ", " +
                 std::to_string(usage.routes.size()) + " route(s)";
        });
      }
      {
        std::size_t ri = entry.route;
        const Route& route = cfg_.routes[ri];
        if (entry.repeat) {
          ex_.add("route", route.name, false,
                  [&] { return "already considered in an earlier usage"; });
          continue;
        }
        if (!route.pattern.matches(number)) {
          ex_.add("route", route.name, false, [&] {
            return "pattern " + route.pattern.pattern() + " does not match " + number;
          });
          continue;
        }
        anyRoute = true;
        ex_.add("route", route.name, true, [&] {
          return "pattern " + route.pattern.pattern() + " matches " + number + " (usage " +
                 usage.name + ")";
        });
        // Trunk order: priority, then (equal priorities) weighted by the call's hash.
        std::array<std::size_t, 32> inlineOrder{};
        std::vector<std::size_t> bigOrder;  // only for routes with more than 32 trunks
        std::size_t count = route.trunks.size();
        if (count > inlineOrder.size()) bigOrder.resize(count);
        std::size_t* order = count > inlineOrder.size() ? bigOrder.data() : inlineOrder.data();
        for (std::size_t i = 0; i < count; ++i) order[i] = i;
        if (route.weighted) {
          std::uint64_t state = callHash ^ (ri * 0x9e3779b97f4a7c15ULL);
          for (std::size_t b = 0; b < count;) {
            std::size_t e = b;
            while (e < count && route.trunks[e].priority == route.trunks[b].priority) ++e;
            for (std::size_t pos = b; pos + 1 < e; ++pos) {
              std::uint64_t total = 0;
              for (std::size_t k = pos; k < e; ++k) {
                total += static_cast<std::uint64_t>(route.trunks[order[k]].weight);
              }
              std::uint64_t pick = splitmix(state) % total;
              std::size_t k = pos;
              for (; k + 1 < e; ++k) {
                auto w = static_cast<std::uint64_t>(route.trunks[order[k]].weight);
                if (pick < w) break;
                pick -= w;
              }
              std::swap(order[pos], order[k]);
            }
            b = e;
          }
        }
        for (std::size_t i = 0; i < count; ++i) {
          const RouteTrunk& rt = route.trunks[order[i]];
          const Trunk& trunk = cfg_.trunks[rt.trunk];
          if (trunksSeen.contains(rt.trunk)) {
            ex_.add("trunk", trunk.name, false, [&] {
              return "route " + route.name + ": skipped, already in this plan (a trunk appears once)";
            });
            continue;
          }
          trunksSeen.insert(rt.trunk);
          std::string context;
          if (ex_.on()) {
            context = "route " + route.name;
            if (route.weighted) {
              context += ", priority " + std::to_string(rt.priority) + ", weight " +
                         std::to_string(rt.weight);
            }
          }
          if (!usable(trunk, context)) continue;
          if (single && anyTrunk) continue;
          anyTrunk = true;
          std::string reason;
          reason.reserve(6 + route.name.size() + 8 + trunk.name.size() + why.size() + 2);
          reason.append("route ").append(route.name).append(", trunk ").append(trunk.name);
          if (!why.empty()) reason.append(" (").append(why).append(")");
          v1::TargetGroup* group = into;
          if (!group) {
            group = plan_.add_groups();
            group->set_timeout_ms(trunk.failoverTimeoutMs);
            group->set_route(route.name);
            group->set_reason(reason);
          }
          ++result.groups;
          addTrunkTarget(*group, trunk, number, callerId, &route, false, std::move(reason));
        }
      }
    }
  }
  if (anyTrunk) {
    result.outcome = v1::RoutePlan::OUTCOME_ROUTED;
    return result;
  }
  if (anyRoute) {
    result.outcome = v1::RoutePlan::OUTCOME_ALL_TRUNKS_DOWN;
    result.reason = "every trunk of the routes matching " + number + " is down or already tried";
    return result;
  }
  // Nothing in the policy: forbidden when some other route would take it.
  for (const auto& route : cfg_.routes) {
    if (route.pattern.matches(number)) {
      result.outcome = v1::RoutePlan::OUTCOME_FORBIDDEN;
      result.reason = number + " matches route " + route.name + ", which the caller's voice policy " +
                      (policyIndex == kNone ? std::string("(none)")
                                            : cfg_.policies[policyIndex].name) +
                      " does not allow";
      ex_.add("route", route.name, false, [&] {
        return "matches " + number + " but is in none of the policy's PSTN usages";
      });
      return result;
    }
  }
  result.outcome = v1::RoutePlan::OUTCOME_NOT_FOUND;
  result.reason = "no user owns " + number + " and no route matches it";
  return result;
}

// Appends the groups of a forwarding target. With `finalOutcome`, a target that cannot be
// reached decides the plan's outcome; otherwise it is only explained. Returns true when
// groups were added.
bool Decision::forward(const User& callee, const ForwardTarget& target, std::string_view kind,
                       bool finalOutcome) {
  if (const User* other = cfg_.findUserByNumber(target.normalized)) {
    if (other == caller_) {
      ex_.add("forwarding", other->uri, false, [&] {
        return std::string(kind) + " of " + callee.uri + " not taken: " + other->uri +
               " is the caller";
      });
      if (finalOutcome) {
        finish(v1::RoutePlan::OUTCOME_UNAVAILABLE,
               std::string(kind) + " of " + callee.uri + " leads back to the caller");
      }
      return false;
    }
    v1::TargetGroup* group = plan_.add_groups();
    std::string reason = std::string(kind) + " of " + callee.uri + " to " + other->uri;
    group->set_reason(reason);
    v1::RouteTarget* t = group->add_targets();
    t->set_user_aor(other->uri);
    t->set_caller_id(plan_.calling_number());
    ex_.add("forwarding", other->uri, true, [&] {
      return reason + " (" + target.normalized + " is the line of " + other->uri + ")";
    });
    t->set_reason(std::move(reason));
    return true;
  }
  ex_.add("forwarding", target.normalized, true, [&] {
    return std::string(kind) + " of " + callee.uri + " to " + target.normalized +
           ", routed with the voice policy of " + callee.uri;
  });
  std::string why = std::string(kind) + " of " + callee.uri;
  TrunkRouting r = toTrunks(&callee, callee.voicePolicy, target.normalized,
                            plan_.calling_number(), why, false, nullptr);
  if (r.outcome == v1::RoutePlan::OUTCOME_ROUTED) return true;
  ex_.add("forwarding", target.normalized, false,
          [&] { return std::string(kind) + " not possible: " + r.reason; });
  if (finalOutcome) finish(r.outcome, std::string(kind) + " of " + callee.uri + ": " + r.reason);
  return false;
}

void Decision::toUser(const User& callee, std::size_t fromTrunk) {
  plan_.set_callee_user(callee.uri);
  if (callee.forwardImmediate) {
    ex_.add("forwarding", "immediate", true, [&] {
      return callee.uri + " forwards every call to " + callee.forwardImmediate->target;
    });
    if (forward(callee, *callee.forwardImmediate, "immediate forwarding", true)) {
      finish(v1::RoutePlan::OUTCOME_ROUTED,
             "forwarded immediately: " + callee.uri + " to " + callee.forwardImmediate->normalized);
    }
    return;
  }
  v1::TargetGroup* first = plan_.add_groups();
  bool devices = devices_.hasDevices(callee.uri);
  ex_.add("user", callee.uri, devices, [&] {
    return devices ? std::string("has registered devices: ring them") : "no registered device";
  });
  if (devices) {
    v1::RouteTarget* t = first->add_targets();
    t->set_user_aor(callee.uri);
    t->set_caller_id(plan_.calling_number());
    t->set_reason("devices of " + callee.uri);
  }
  bool pbxPhone = false;
  if (callee.pbxTrunk != kNone) {
    const Trunk& pbx = cfg_.trunks[callee.pbxTrunk];
    if (fromTrunk == callee.pbxTrunk) {
      ex_.add("coexistence", pbx.name, false, [&] {
        return "the call came from " + pbx.name + ", the PBX of " + callee.uri +
               ": PBX phone not rung (no loop)";
      });
    } else if (usable(pbx, "PBX phone of " + callee.uri)) {
      pbxPhone = true;
      addTrunkTarget(*first, pbx, callee.pbxNumber, plan_.calling_number(), nullptr, true,
                     "dual fork: PBX phone of " + callee.uri);
    }
  }
  bool anything = devices || pbxPhone;
  if (anything && callee.simultaneousRing) {
    const ForwardTarget& sim = *callee.simultaneousRing;
    if (const User* other = cfg_.findUserByNumber(sim.normalized)) {
      v1::RouteTarget* t = first->add_targets();
      t->set_user_aor(other->uri);
      t->set_caller_id(plan_.calling_number());
      t->set_reason("simultaneous ring of " + callee.uri);
      ex_.add("forwarding", other->uri, true,
              [&] { return "simultaneous ring of " + callee.uri + " (line of " + other->uri + ")"; });
    } else {
      ex_.add("forwarding", sim.normalized, true, [&] {
        return "simultaneous ring of " + callee.uri + ": first usable trunk of its voice policy";
      });
      TrunkRouting r = toTrunks(&callee, callee.voicePolicy, sim.normalized, plan_.calling_number(),
                                "simultaneous ring of " + callee.uri, true, first);
      if (r.outcome != v1::RoutePlan::OUTCOME_ROUTED) {
        ex_.add("forwarding", sim.normalized, false,
                [&] { return "simultaneous ring not possible: " + r.reason; });
      }
    }
  }
  if (!anything) {
    plan_.mutable_groups()->RemoveLast();
    const ForwardTarget* target =
        callee.forwardUnavailable ? &*callee.forwardUnavailable
                                  : (callee.forwardNoAnswer ? &*callee.forwardNoAnswer : nullptr);
    if (!target) {
      finish(v1::RoutePlan::OUTCOME_UNAVAILABLE,
             callee.uri + " has no registered device" +
                 (callee.pbxTrunk != kNone ? " and the PBX phone cannot be rung" : "") +
                 " and no forwarding on unavailable");
      return;
    }
    std::string_view kind = callee.forwardUnavailable ? "forwarding on unavailable"
                                                      : "forwarding on no answer (nothing to ring)";
    if (forward(callee, *target, kind, true)) {
      finish(v1::RoutePlan::OUTCOME_ROUTED,
             callee.uri + " is unavailable: forwarded to " + target->normalized);
    }
    return;
  }
  first->set_reason(pbxPhone && devices ? "devices and PBX phone of " + callee.uri + " (dual fork)"
                    : pbxPhone          ? "PBX phone of " + callee.uri
                                        : "devices of " + callee.uri);
  if (callee.forwardNoAnswer) {
    first->set_timeout_ms(callee.noAnswerSeconds * 1000);
    ex_.add("forwarding", "no_answer", true, [&] {
      return "after " + std::to_string(callee.noAnswerSeconds) + " s without answer: " +
             callee.forwardNoAnswer->normalized;
    });
    forward(callee, *callee.forwardNoAnswer, "forwarding on no answer", false);
  } else if (callee.forwardUnavailable) {
    ex_.add("forwarding", "unavailable", true, [&] {
      return "when busy or unavailable: " + callee.forwardUnavailable->normalized;
    });
    forward(callee, *callee.forwardUnavailable, "forwarding on busy/unavailable", false);
  }
  finish(v1::RoutePlan::OUTCOME_ROUTED, std::string(first->reason()));
}

void Decision::fromTrunk(const Trunk& trunk, std::size_t trunkIndex) {
  Dialled callee = parseDialled(req_.callee(), cfg_.domain);
  Dialled caller = parseDialled(req_.caller(), cfg_.domain);
  if (caller.kind == Dialled::Kind::Number) {
    const TranslationRule* r = translateFirst(trunk.inbound.calling, caller.number, scratch_);
    plan_.set_calling_number(scratch_);
    ex_.add("normalization", "calling", true, [&] {
      return "calling " + caller.number + " -> " + scratch_ + " (" + trunk.name + " inbound " +
             ruleLabel(trunk.inbound.calling, r) + ")";
    });
  } else if (caller.kind == Dialled::Kind::Uri) {
    plan_.set_calling_number(caller.uri);
  }
  const User* user = nullptr;
  if (callee.kind == Dialled::Kind::Number) {
    const TranslationRule* r = translateFirst(trunk.inbound.called, callee.number, scratch_);
    plan_.set_called_number(scratch_);
    ex_.add("normalization", "called", true, [&] {
      return "called " + callee.number + " -> " + scratch_ + " (" + trunk.name + " inbound " +
             ruleLabel(trunk.inbound.called, r) + ")";
    });
    user = cfg_.findUserByNumber(plan_.called_number());
    ex_.add("lookup", plan_.called_number(), user != nullptr, [&] {
      return user ? "line of " + user->uri : std::string("no user has this line number");
    });
  } else if (callee.kind == Dialled::Kind::Uri) {
    plan_.set_called_number(callee.uri);
    user = cfg_.findUserByUri(callee.uri);
    ex_.add("lookup", callee.uri, user != nullptr,
            [&] { return user ? std::string("a user") : std::string("no such user"); });
  } else {
    finish(v1::RoutePlan::OUTCOME_NOT_FOUND, "callee " + quote(req_.callee()) + " has no number or user");
    return;
  }
  if (!user) {
    finish(v1::RoutePlan::OUTCOME_NOT_FOUND, "no user owns " + plan_.called_number());
    return;
  }
  toUser(*user, trunkIndex);
}

void Decision::fromInternal(const User* caller, std::string_view callerUri) {
  caller_ = caller;
  const DialPlan& plan = cfg_.dialPlans[caller ? caller->dialPlan : cfg_.defaultDialPlan];
  if (caller) {
    plan_.set_calling_number(caller->number);
    ex_.add("caller", caller->uri, true,
            [&] { return "internal user, line " + caller->line; });
  } else {
    Dialled c = parseDialled(req_.caller(), cfg_.domain);
    plan_.set_calling_number(c.kind == Dialled::Kind::Number ? c.number : c.uri);
    ex_.add("caller", callerUri, false, [&] {
      return "not a configured user: default dial plan, no voice policy (calls to users only)";
    });
  }
  Dialled callee = parseDialled(req_.callee(), cfg_.domain);
  if (callee.kind == Dialled::Kind::Invalid) {
    finish(v1::RoutePlan::OUTCOME_NOT_FOUND, "callee " + quote(req_.callee()) + " has no number or user");
    return;
  }
  if (callee.kind == Dialled::Kind::Uri) {
    plan_.set_called_number(callee.uri);
    const User* user = cfg_.findUserByUri(callee.uri);
    ex_.add("lookup", callee.uri, user != nullptr,
            [&] { return user ? std::string("a user") : std::string("no such user"); });
    if (!user) {
      finish(v1::RoutePlan::OUTCOME_NOT_FOUND, "no user " + callee.uri);
      return;
    }
    toUser(*user, kNone);
    return;
  }
  ex_.add("dial_plan", plan.name, true, [&] {
    return std::string(caller && caller->dialPlan != cfg_.defaultDialPlan ? "the caller's"
                                                                          : "the default") +
           " dial plan; dialled " + quote(callee.number);
  });
  const NormalizationRule* matched = nullptr;
  std::string* called = plan_.mutable_called_number();
  for (const auto& rule : plan.rules) {
    bool hit = rule.incomplete ? rule.pattern.matches(callee.number)
                               : rule.pattern.translate(callee.number, *called);
    if (!hit) {
      ex_.add("normalization", rule.name, false,
              [&] { return rule.pattern.pattern() + " does not match " + callee.number; });
      continue;
    }
    matched = &rule;
    break;
  }
  if (!matched) {
    called->assign(callee.number);
    finish(v1::RoutePlan::OUTCOME_NOT_FOUND,
           "no normalization rule matches " + callee.number + " (dial plan " + plan.name + ")");
    return;
  }
  if (matched->incomplete) {
    called->assign(callee.number);
    ex_.add("normalization", matched->name, true,
            [&] { return matched->pattern.pattern() + " matches: the number is incomplete"; });
    finish(v1::RoutePlan::OUTCOME_INCOMPLETE,
           callee.number + " is incomplete (rule " + matched->name + " of dial plan " + plan.name + ")");
    return;
  }
  ex_.add("normalization", matched->name, true, [&] {
    return matched->pattern.pattern() + " -> " + matched->pattern.translation() + ": " +
           callee.number + " -> " + *called;
  });
  if (const User* user = cfg_.findUserByNumber(*called)) {
    ex_.add("lookup", *called, true,
            [&] { return "line of " + user->uri + ": internal call, no voice policy needed"; });
    toUser(*user, kNone);
    return;
  }
  ex_.add("lookup", *called, false, [&] { return "no user has this line number"; });
  TrunkRouting r = toTrunks(caller, caller ? caller->voicePolicy : kNone, *called,
                            plan_.calling_number(), "", false, nullptr);
  if (r.outcome == v1::RoutePlan::OUTCOME_ROUTED) {
    const v1::TargetGroup& g = plan_.groups(0);
    finish(r.outcome, "routed to " + std::to_string(r.groups) + " trunk group(s), first " +
                          g.targets(0).trunk().trunk() + " (route " + g.route() + ")");
  } else {
    finish(r.outcome, std::move(r.reason));
  }
}

void Decision::run() {
  plan_.set_config_hash(cfg_.hash);
  ex_.add("config", cfg_.hash, true, [&] { return "configuration " + cfg_.file; });
  const v1::CallSource& source = req_.source();
  if (source.source_case() == v1::CallSource::kTrunk) {
    auto it = cfg_.trunkByName.find(source.trunk());
    if (it == cfg_.trunkByName.end()) {
      ex_.add("source", source.trunk(), false, [&] { return "not a configured trunk"; });
      finish(v1::RoutePlan::OUTCOME_NOT_FOUND, "call from unknown trunk " + quote(source.trunk()));
      return;
    }
    ex_.add("source", source.trunk(), true, [&] { return "inbound from trunk " + source.trunk(); });
    fromTrunk(cfg_.trunks[it->second], it->second);
    return;
  }
  std::string_view who =
      source.source_case() == v1::CallSource::kInternalUser ? source.internal_user() : req_.caller();
  const User* caller = cfg_.findUserByUri(who);
  if (!caller) {
    Dialled d = parseDialled(who, cfg_.domain);
    if (d.kind == Dialled::Kind::Uri) caller = cfg_.findUserByUri(d.uri);
  }
  fromInternal(caller, who);
}

bool Decision::pbxPhoneTarget(const User& user, v1::TargetGroup& group) {
  const Trunk& pbx = cfg_.trunks[user.pbxTrunk];
  if (!usable(pbx, "PBX phone of " + user.uri)) return false;
  addTrunkTarget(group, pbx, user.pbxNumber, user.number, nullptr, true,
                 "remote call control: PBX phone of " + user.uri);
  return true;
}

// No registered devices are ever looked up by ControlLine.
class NoDevices final : public DeviceLookup {
 public:
  bool hasDevices(const std::string&) override { return false; }
};

}  // namespace

v1::ControlLineResponse controlLine(const Config& config, const TrunkHealth& health,
                                    const v1::ControlLineRequest& request) {
  v1::ControlLineResponse response;
  response.set_config_hash(config.hash);
  using R = v1::ControlLineResponse;
  auto finish = [&](R::Outcome outcome, std::string reason) {
    response.set_outcome(outcome);
    response.set_reason(std::move(reason));
    return response;
  };
  const User* owner = nullptr;
  // A bare line as configured ("+14255550100;ext=100"): its parameters are not dialled.
  std::string_view text = request.device();
  if (text.find(':') == std::string_view::npos) text = text.substr(0, text.find(';'));
  Dialled device = parseDialled(text, config.domain);
  if (device.kind == Dialled::Kind::Number) {
    owner = config.findUserByNumber(device.number);
  } else if (device.kind == Dialled::Kind::Uri) {
    owner = config.findUserByUri(device.uri);
  }
  if (!owner) {
    return finish(R::OUTCOME_UNKNOWN_DEVICE, quote(request.device()) + " is no user's line");
  }
  const User* user = config.findUserByUri(request.user_aor());
  if (!user) {
    Dialled d = parseDialled(request.user_aor(), config.domain);
    if (d.kind == Dialled::Kind::Uri) user = config.findUserByUri(d.uri);
  }
  if (user != owner) {
    return finish(R::OUTCOME_NOT_OWNER,
                  quote(request.device()) + " is not a line of " + quote(request.user_aor()));
  }
  response.set_line_number(owner->number);
  if (owner->pbxTrunk == kNone) {
    return finish(R::OUTCOME_NO_PBX_PHONE, owner->uri + " has no PBX phone (no co-existence)");
  }
  v1::RouteCallRequest none;
  v1::RoutePlan plan;
  NoDevices devices;
  v1::TargetGroup group;
  Decision decision(config, health, devices, none, nullptr, plan);
  if (!decision.pbxPhoneTarget(*owner, group)) {
    return finish(R::OUTCOME_NO_PBX_PHONE,
                  "PBX trunk " + config.trunks[owner->pbxTrunk].name + " of " + owner->uri +
                      " is down");
  }
  *response.mutable_pbx_phone() = group.targets(0).trunk();
  return finish(R::OUTCOME_ALLOWED, "PBX phone of " + owner->uri + " on trunk " +
                                        response.pbx_phone().trunk());
}

v1::RoutePlan route(const Config& config, const TrunkHealth& health, DeviceLookup& devices,
                    const v1::RouteCallRequest& request, std::vector<v1::ExplainStep>* steps) {
  v1::RoutePlan plan;
  Decision(config, health, devices, request, steps, plan).run();
  return plan;
}

}  // namespace medius::routing
