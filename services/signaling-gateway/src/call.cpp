#include "medius/gateway/call.hpp"

#include <algorithm>

#include <sofia-sip/sip_status.h>

namespace medius::gateway {

namespace {

// A reason phrase is one line of text (RFC 3261 25.1 Reason-Phrase): no CR/LF, bounded.
std::string phraseFrom(std::string_view text, std::string_view fallback) {
  std::string out;
  for (char c : text) {
    if (out.size() >= 120) break;
    out.push_back(c == '\r' || c == '\n' || static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
  }
  return out.empty() ? std::string(fallback) : out;
}

}  // namespace

SipReply routeOutcomeReply(const v1::RoutePlan& plan, std::int64_t retryAfterSeconds) {
  switch (plan.outcome()) {
    case v1::RoutePlan::OUTCOME_NOT_FOUND:
      return SipReply::of(404, phraseFrom(plan.reason(), "Not Found"));
    case v1::RoutePlan::OUTCOME_FORBIDDEN:
      return SipReply::of(403, phraseFrom(plan.reason(), "Forbidden"));
    case v1::RoutePlan::OUTCOME_INCOMPLETE:
      return SipReply::of(484, phraseFrom(plan.reason(), "Address Incomplete"));
    case v1::RoutePlan::OUTCOME_UNAVAILABLE:
      return SipReply::of(480, phraseFrom(plan.reason(), "Temporarily Unavailable"));
    case v1::RoutePlan::OUTCOME_ALL_TRUNKS_DOWN: {
      SipReply r = SipReply::of(503, phraseFrom(plan.reason(), "Service Unavailable"));
      r.headers.emplace_back("Retry-After", std::to_string(retryAfterSeconds));
      return r;
    }
    default:
      return SipReply::of(500, "Routing Returned No Decision");
  }
}

SipReply dependencyFailureReply(std::string_view service, const grpc::Status& status,
                                std::int64_t retryAfterSeconds) {
  SipReply r = SipReply::of(503, std::string(service) +
                             (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                                  ? " Timeout"
                              : status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED
                                  ? " Overloaded"
                                  : " Unavailable"));
  r.headers.emplace_back("Retry-After", std::to_string(retryAfterSeconds));
  return r;
}

bool failoverAllowed(const ForkOutcome& o) {
  if (o.status >= 600) return false;
  if (o.timedOut || o.local) return true;
  if (!o.trunk) return o.status >= 300;
  if (o.failoverCodes.empty()) return o.status == 408 || o.status == 503 || o.status == 504;
  return std::find(o.failoverCodes.begin(), o.failoverCodes.end(),
                   static_cast<std::uint32_t>(o.status)) != o.failoverCodes.end();
}

int bestFailure(const std::vector<int>& statuses, bool keep503) {
  auto rank = [](int s) {
    if (s >= 600) return 0;
    if (s >= 400 && s < 500 && s != 408 && s != 487) return 1;
    if (s >= 300 && s < 400) return 2;
    if (s >= 500) return 3;
    if (s == 408) return 4;
    if (s == 487) return 5;
    return 6;
  };
  int best = 0;
  for (int s : statuses) {
    if (s < 300) continue;
    if (best == 0 || rank(s) < rank(best)) best = s;
  }
  if (best == 0) return 480;
  if (best == 503 && !keep503) return 500;
  return best;
}

std::string_view callDirection(Side source, bool calleeIsUser) {
  if (source == Side::Trunk) return calleeIsUser ? "inbound" : "transit";
  return calleeIsUser ? "internal" : "outbound";
}

std::string statusPhrase(int status) {
  const char* p = sip_status_phrase(status);
  return p ? p : "Unknown";
}

std::optional<std::uint32_t> nextMaxForwards(std::optional<std::uint32_t> received) {
  if (!received) return 69;
  if (*received == 0) return std::nullopt;
  return std::min<std::uint32_t>(*received - 1, 70);
}

namespace {

v1::LegParams internalLeg(v1::SrtpPolicy internalSrtp, const std::vector<std::string>& internalCodecs) {
  v1::LegParams leg;
  leg.set_side(v1::SIDE_INTERNAL);
  leg.set_srtp(internalSrtp);
  for (const auto& codec : internalCodecs) leg.add_codecs(codec);
  return leg;
}

v1::LegParams trunkLeg(const std::string& name, const v1::TrunkMedia& media) {
  v1::LegParams leg;
  leg.set_side(v1::SIDE_TRUNK);
  leg.set_trunk(name);
  leg.set_srtp(media.srtp());
  *leg.mutable_codecs() = media.codecs();
  return leg;
}

}  // namespace

v1::LegParams targetLegParams(const v1::RouteTarget& target, v1::SrtpPolicy internalSrtp,
                              const std::vector<std::string>& internalCodecs) {
  if (target.has_trunk()) return trunkLeg(target.trunk().trunk(), target.trunk().media());
  return internalLeg(internalSrtp, internalCodecs);
}

bool sameMediaPolicy(const v1::LegParams& a, const v1::LegParams& b) {
  return a.side() == b.side() && a.srtp() == b.srtp() && a.strict_source() == b.strict_source() &&
         std::equal(a.codecs().begin(), a.codecs().end(), b.codecs().begin(), b.codecs().end());
}

std::uint32_t offerIndexFor(const v1::CreateSessionRequest& request, const v1::LegParams& target) {
  if (sameMediaPolicy(request.leg_b(), target)) return 0;
  for (int i = 0; i < request.leg_b_alternatives_size(); ++i) {
    if (sameMediaPolicy(request.leg_b_alternatives(i), target)) return static_cast<std::uint32_t>(i) + 1;
  }
  return 0;
}

void fillLegParams(v1::CreateSessionRequest& request, Side aSide, const std::string& sourceTrunk,
                   const v1::TrunkMedia& sourceTrunkMedia, const v1::RoutePlan& plan,
                   v1::SrtpPolicy internalSrtp, const std::vector<std::string>& internalCodecs) {
  *request.mutable_leg_a() = aSide == Side::Internal ? internalLeg(internalSrtp, internalCodecs)
                                                     : trunkLeg(sourceTrunk, sourceTrunkMedia);
  request.clear_leg_b_alternatives();
  bool first = true;
  for (const auto& group : plan.groups()) {
    for (const auto& target : group.targets()) {
      v1::LegParams leg = targetLegParams(target, internalSrtp, internalCodecs);
      if (first) {
        *request.mutable_leg_b() = std::move(leg);
        first = false;
      } else if (offerIndexFor(request, leg) == 0 && !sameMediaPolicy(request.leg_b(), leg)) {
        *request.add_leg_b_alternatives() = std::move(leg);
      }
    }
  }
  if (first) *request.mutable_leg_b() = internalLeg(internalSrtp, internalCodecs);
}

}  // namespace medius::gateway
