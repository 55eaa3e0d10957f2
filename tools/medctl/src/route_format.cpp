#include "medius/medctl/route_format.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "medius/medctl/format.hpp"

namespace medius::medctl {

namespace {

using medius::v1::RoutePlan;

bool hasScheme(const std::string& text) {
  const auto sameLetter = [](char lower, char c) {
    return lower == std::tolower(static_cast<unsigned char>(c));
  };
  for (std::string_view scheme : {"sip:", "sips:", "tel:"}) {
    if (text.size() > scheme.size() &&
        std::equal(scheme.begin(), scheme.end(), text.begin(), sameLetter)) {
      return true;
    }
  }
  return false;
}

bool looksLikeNumber(const std::string& text) {
  bool digit = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (std::string_view("+*# -.()").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return digit;
}

std::string userUri(const std::string& text, const std::string& domain) {
  if (text.find('@') != std::string::npos) return "sip:" + text;
  return "sip:" + text + "@" + domain;
}

// ANSI styling, or nothing.
struct Style {
  bool on;
  std::string wrap(const std::string& text, const char* code) const {
    return on ? std::string("\x1b[") + code + "m" + text + "\x1b[0m" : text;
  }
  std::string bold(const std::string& t) const { return wrap(t, "1"); }
  std::string dim(const std::string& t) const { return wrap(t, "2"); }
  std::string green(const std::string& t) const { return wrap(t, "1;32"); }
  std::string red(const std::string& t) const { return wrap(t, "1;31"); }
};

std::string pad(const std::string& text, std::size_t width) {
  // Width in characters, not bytes (subjects and stages are ASCII; be safe anyway).
  std::size_t chars = 0;
  for (unsigned char c : text) chars += (c & 0xC0) != 0x80;
  return chars >= width ? text : text + std::string(width - chars, ' ');
}

std::string joinCodes(const google::protobuf::RepeatedField<std::uint32_t>& codes) {
  std::string out;
  for (std::uint32_t code : codes) {
    if (!out.empty()) out += ", ";
    out += std::to_string(code);
  }
  return out;
}

std::string srtpName(medius::v1::SrtpPolicy policy) {
  switch (policy) {
    case medius::v1::SRTP_POLICY_OFF:
      return "off";
    case medius::v1::SRTP_POLICY_OPTIONAL:
      return "optional";
    case medius::v1::SRTP_POLICY_REQUIRED:
      return "required";
    default:
      return "unspecified";
  }
}

// The trunk's media policy: "codecs PCMU, PCMA  srtp off".
std::string mediaText(const medius::v1::TrunkMedia& media) {
  std::string out = "codecs ";
  for (int i = 0; i < media.codecs_size(); ++i) out += (i ? ", " : "") + media.codecs(i);
  if (media.codecs_size() == 0) out += "(none)";
  return out + "  srtp " + srtpName(media.srtp());
}

// `groupReason` is not repeated as the target's reason.
std::string targetLines(const medius::v1::RouteTarget& target, const std::string& groupReason,
                        const Style& style) {
  std::string head;
  std::vector<std::string> details;
  const medius::v1::TrunkTarget* trunk = nullptr;
  if (target.kind_case() == medius::v1::RouteTarget::kUserAor) {
    head = "devices of " + style.bold(target.user_aor());
  } else if (target.kind_case() == medius::v1::RouteTarget::kTrunk) {
    trunk = &target.trunk();
    head = (trunk->pbx_phone() ? "PBX phone via trunk " : "trunk ") + style.bold(trunk->trunk());
    if (trunk->has_address()) head += " (" + formatSource(trunk->address()) + ")";
    if (!trunk->request_uri().empty()) head += "  " + trunk->request_uri();
    if (!trunk->called_number().empty()) details.push_back("number " + trunk->called_number());
  } else {
    head = "(empty target)";
  }
  if (!target.caller_id().empty()) details.push_back("caller id " + target.caller_id());
  if (!target.caller_display_name().empty()) {
    details.push_back("display name \"" + target.caller_display_name() + "\"");
  }
  if (trunk != nullptr && trunk->failover_codes_size() > 0) {
    details.push_back("failover on " + joinCodes(trunk->failover_codes()));
  }
  if (trunk != nullptr && trunk->has_media()) details.push_back(mediaText(trunk->media()));
  std::string out = "    " + head + '\n';
  std::string line;
  for (const auto& d : details) line += (line.empty() ? "" : "  ") + d;
  if (!line.empty()) out += "      " + line + '\n';
  if (!target.reason().empty() && target.reason() != groupReason) {
    out += "      " + style.dim("why: " + target.reason()) + '\n';
  }
  return out;
}

}  // namespace

std::string callerUri(const std::string& from, const std::string& domain) {
  if (from.empty() || hasScheme(from)) return from;
  if (looksLikeNumber(from)) return "tel:" + from;
  return userUri(from, domain);
}

std::string calleeUri(const std::string& to, const std::string& domain) {
  if (to.empty() || hasScheme(to)) return to;
  if (looksLikeNumber(to)) return "sip:" + to + "@" + domain + ";user=phone";
  return userUri(to, domain);
}

medius::v1::RouteCallRequest routeRequest(const std::string& from, const std::string& to,
                                          const std::string& fromTrunk,
                                          const std::string& domain) {
  medius::v1::RouteCallRequest request;
  request.set_caller(callerUri(from, domain));
  request.set_callee(calleeUri(to, domain));
  if (fromTrunk.empty()) {
    request.mutable_source()->set_internal_user(request.caller());
  } else {
    request.mutable_source()->set_trunk(fromTrunk);
  }
  request.set_call_id("medctl-route");
  return request;
}

int sipCode(RoutePlan::Outcome outcome) {
  switch (outcome) {
    case RoutePlan::OUTCOME_NOT_FOUND: return 404;
    case RoutePlan::OUTCOME_FORBIDDEN: return 403;
    case RoutePlan::OUTCOME_INCOMPLETE: return 484;
    case RoutePlan::OUTCOME_ALL_TRUNKS_DOWN: return 503;
    case RoutePlan::OUTCOME_UNAVAILABLE: return 480;
    default: return 0;
  }
}

std::string outcomeName(RoutePlan::Outcome outcome) {
  switch (outcome) {
    case RoutePlan::OUTCOME_ROUTED: return "ROUTED";
    case RoutePlan::OUTCOME_NOT_FOUND: return "NOT FOUND";
    case RoutePlan::OUTCOME_FORBIDDEN: return "FORBIDDEN";
    case RoutePlan::OUTCOME_INCOMPLETE: return "INCOMPLETE";
    case RoutePlan::OUTCOME_ALL_TRUNKS_DOWN: return "ALL TRUNKS DOWN";
    case RoutePlan::OUTCOME_UNAVAILABLE: return "UNAVAILABLE";
    default: return "UNSPECIFIED";
  }
}

std::string formatExplanation(const medius::v1::RouteCallRequest& request,
                              const medius::v1::RouteExplanation& explanation,
                              const RouteFormatOptions& options) {
  const Style style{options.color};
  const RoutePlan& plan = explanation.plan();
  const bool routed = plan.outcome() == RoutePlan::OUTCOME_ROUTED;

  // 1. The answer first.
  std::string title = outcomeName(plan.outcome());
  if (const int code = sipCode(plan.outcome()); code != 0) {
    title += " (SIP " + std::to_string(code) + ")";
  } else if (routed) {
    title += " (" + std::to_string(plan.groups_size()) + " target group" +
             (plan.groups_size() == 1 ? "" : "s") + ")";
  }
  std::string from = request.caller().empty() ? "(anonymous)" : request.caller();
  if (request.source().source_case() == medius::v1::CallSource::kTrunk) {
    from += " on trunk " + request.source().trunk();
  }
  std::string out = (routed ? style.green(title) : style.red(title)) + "  " + from + " -> " +
                    request.callee() + '\n';
  auto field = [&](const std::string& label, const std::string& value) {
    if (!value.empty()) out += "  " + pad(label, 16) + value + '\n';
  };
  field("reason", plan.reason());
  field("called number", plan.called_number());
  field("calling number", plan.calling_number());
  field("callee user", plan.callee_user());
  field("config", plan.config_hash());

  // 2. How it was decided.
  if (explanation.steps_size() > 0) {
    std::size_t stageWidth = 0;
    std::size_t subjectWidth = 0;
    for (const auto& step : explanation.steps()) {
      stageWidth = std::max(stageWidth, step.stage().size());
      subjectWidth = std::max(subjectWidth, std::min<std::size_t>(step.subject().size(), 24));
    }
    out += "\n" + style.bold("How it was decided") + '\n';
    std::string previousStage;
    for (const auto& step : explanation.steps()) {
      const std::string stage = step.stage() == previousStage ? "" : step.stage();
      previousStage = step.stage();
      const std::string mark = step.taken() ? style.green("✓") : style.dim("✗");
      std::string line = "  " + pad(stage, stageWidth) + "  " + mark + " " +
                         pad(step.subject(), subjectWidth);
      if (!step.detail().empty()) {
        line += "  " + (step.taken() ? step.detail() : style.dim(step.detail()));
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + '\n';
    }
  }

  // 3. What would ring, in order.
  if (plan.groups_size() > 0) {
    out += "\n" + style.bold("Targets") +
           style.dim(" (groups are tried in order; the targets of a group ring together)") + '\n';
    for (int i = 0; i < plan.groups_size(); ++i) {
      const auto& group = plan.groups(i);
      std::string line = "  group " + std::to_string(i + 1) + "  " +
                         (group.timeout_ms() > 0 ? "timeout " + std::to_string(group.timeout_ms()) +
                                                       " ms"
                                                 : std::string("no timeout"));
      if (!group.reason().empty()) line += "  " + style.dim(group.reason());
      out += line + '\n';
      for (const auto& target : group.targets()) out += targetLines(target, group.reason(), style);
    }
  }
  return out;
}

std::string explanationToJson(const medius::v1::RouteExplanation& explanation) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(explanation, &json, options);
  if (!status.ok()) return "{\"error\": \"cannot print the explanation as JSON\"}\n";
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

std::string formatReload(const medius::v1::ReloadResponse& response) {
  if (response.changed()) return "reloaded: now serving config " + response.config_hash() + '\n';
  return "config " + response.config_hash() + " unchanged (the file has the same hash)\n";
}

}  // namespace medius::medctl
