// `medctl route` / `medctl reload`: the request an operator's words become, and the
// explanation as a terminal shows it and as JSON.
#include "medius/medctl/route_format.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace medius::medctl {
namespace {

using medius::v1::RoutePlan;

TEST(RouteFormatTest, CallerUriGivesBareNamesTheDomainAndKeepsUris) {
  EXPECT_EQ(callerUri("alice", "example.com"), "sip:alice@example.com");
  EXPECT_EQ(callerUri("alice@example.org", "example.com"), "sip:alice@example.org");
  EXPECT_EQ(callerUri("sip:alice@example.com", "example.com"), "sip:alice@example.com");
  EXPECT_EQ(callerUri("SIPS:alice@example.com", "example.com"), "SIPS:alice@example.com");
  EXPECT_EQ(callerUri("+14255550100", "example.com"), "tel:+14255550100");
  EXPECT_EQ(callerUri("", "example.com"), "");
}

TEST(RouteFormatTest, CalleeUriDialsNumbersAsPhoneUris) {
  EXPECT_EQ(calleeUri("2200", "example.com"), "sip:2200@example.com;user=phone");
  EXPECT_EQ(calleeUri("(425) 555-0123", "example.com"),
            "sip:(425) 555-0123@example.com;user=phone");
  EXPECT_EQ(calleeUri("tel:+14255550123", "example.com"), "tel:+14255550123");
  EXPECT_EQ(calleeUri("sip:bob@example.com", "example.com"), "sip:bob@example.com");
  EXPECT_EQ(calleeUri("bob", "example.com"), "sip:bob@example.com");
  // Letters make it a name, not a number.
  EXPECT_EQ(calleeUri("1-800-FLOWERS", "example.com"), "sip:1-800-FLOWERS@example.com");
}

TEST(RouteFormatTest, RequestFromAUserOrFromATrunk) {
  const auto internal = routeRequest("alice", "2200", "", "example.com");
  EXPECT_EQ(internal.caller(), "sip:alice@example.com");
  EXPECT_EQ(internal.callee(), "sip:2200@example.com;user=phone");
  EXPECT_EQ(internal.source().internal_user(), "sip:alice@example.com");
  EXPECT_FALSE(internal.call_id().empty());

  const auto inbound = routeRequest("", "4255550100", "pstn-primary", "example.com");
  EXPECT_EQ(inbound.caller(), "");
  EXPECT_EQ(inbound.source().trunk(), "pstn-primary");
  EXPECT_EQ(inbound.callee(), "sip:4255550100@example.com;user=phone");
}

TEST(RouteFormatTest, SipCodesAndNames) {
  EXPECT_EQ(sipCode(RoutePlan::OUTCOME_ROUTED), 0);
  EXPECT_EQ(sipCode(RoutePlan::OUTCOME_NOT_FOUND), 404);
  EXPECT_EQ(sipCode(RoutePlan::OUTCOME_FORBIDDEN), 403);
  EXPECT_EQ(sipCode(RoutePlan::OUTCOME_INCOMPLETE), 484);
  EXPECT_EQ(sipCode(RoutePlan::OUTCOME_ALL_TRUNKS_DOWN), 503);
  EXPECT_EQ(sipCode(RoutePlan::OUTCOME_UNAVAILABLE), 480);
  EXPECT_EQ(outcomeName(RoutePlan::OUTCOME_ALL_TRUNKS_DOWN), "ALL TRUNKS DOWN");
  EXPECT_EQ(outcomeName(RoutePlan::OUTCOME_UNSPECIFIED), "UNSPECIFIED");
}

void addStep(medius::v1::RouteExplanation& e, const std::string& stage,
             const std::string& subject, bool taken, const std::string& detail) {
  auto* step = e.add_steps();
  step->set_stage(stage);
  step->set_subject(subject);
  step->set_taken(taken);
  step->set_detail(detail);
}

medius::v1::RouteExplanation aliceTo2200() {
  medius::v1::RouteExplanation e;
  auto* plan = e.mutable_plan();
  plan->set_outcome(RoutePlan::OUTCOME_ROUTED);
  plan->set_called_number("+14255552200");
  plan->set_calling_number("+14255550100");
  plan->set_config_hash("0123456789ab");
  addStep(e, "normalization", "ext-3", false, "2200 does not match ^(1\\d\\d)$");
  addStep(e, "normalization", "ext-4", true, "2200 -> +14255552200");
  addStep(e, "route", "pbx-extensions", true, "matches ^\\+1425555\\d{4}$");
  auto* group = plan->add_groups();
  group->set_timeout_ms(5000);
  group->set_reason("route pbx-extensions");
  auto* target = group->add_targets();
  target->set_caller_id("100");
  target->set_reason("route pbx-extensions");  // the group's: not repeated
  auto* trunk = target->mutable_trunk();
  trunk->set_trunk("pbx");
  trunk->set_request_uri("sip:2200@127.0.0.13:5060");
  trunk->set_called_number("2200");
  trunk->mutable_address()->set_host("127.0.0.13");
  trunk->mutable_address()->set_port(5060);
  trunk->mutable_address()->set_transport(medius::v1::TRANSPORT_UDP);
  trunk->add_failover_codes(408);
  trunk->add_failover_codes(503);
  trunk->mutable_media()->set_srtp(medius::v1::SRTP_POLICY_OFF);
  trunk->mutable_media()->add_codecs("PCMU");
  trunk->mutable_media()->add_codecs("PCMA");
  return e;
}

TEST(RouteFormatTest, RoutedExplanationReadsTopToBottom) {
  const auto request = routeRequest("alice", "2200", "", "example.com");
  EXPECT_EQ(formatExplanation(request, aliceTo2200()),
            "ROUTED (1 target group)  sip:alice@example.com -> sip:2200@example.com;user=phone\n"
            "  called number   +14255552200\n"
            "  calling number  +14255550100\n"
            "  config          0123456789ab\n"
            "\n"
            "How it was decided\n"
            "  normalization  \xE2\x9C\x97 ext-3           2200 does not match ^(1\\d\\d)$\n"
            "                 \xE2\x9C\x93 ext-4           2200 -> +14255552200\n"
            "  route          \xE2\x9C\x93 pbx-extensions  matches ^\\+1425555\\d{4}$\n"
            "\n"
            "Targets (groups are tried in order; the targets of a group ring together)\n"
            "  group 1  timeout 5000 ms  route pbx-extensions\n"
            "    trunk pbx (127.0.0.13:5060/udp)  sip:2200@127.0.0.13:5060\n"
            "      number 2200  caller id 100  failover on 408, 503  "
            "codecs PCMU, PCMA  srtp off\n");
}

TEST(RouteFormatTest, RefusalShowsTheSipCodeAndReasonFirst) {
  medius::v1::RouteExplanation e;
  e.mutable_plan()->set_outcome(RoutePlan::OUTCOME_FORBIDDEN);
  e.mutable_plan()->set_reason("voice policy national does not allow +442071234567");
  e.mutable_plan()->set_called_number("+442071234567");
  addStep(e, "policy", "national", true, "bob's voice policy");
  const auto request = routeRequest("bob", "011442071234567", "", "example.com");
  const std::string text = formatExplanation(request, e);
  EXPECT_EQ(text.rfind("FORBIDDEN (SIP 403)  sip:bob@example.com -> ", 0), 0u) << text;
  EXPECT_NE(text.find("  reason          voice policy national does not allow +442071234567\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("Targets"), std::string::npos) << text;
}

TEST(RouteFormatTest, UserTargetsAndInboundSource) {
  medius::v1::RouteExplanation e;
  e.mutable_plan()->set_outcome(RoutePlan::OUTCOME_ROUTED);
  e.mutable_plan()->set_callee_user("sip:alice@example.com");
  auto* group = e.mutable_plan()->add_groups();
  auto* devices = group->add_targets();
  devices->set_user_aor("sip:alice@example.com");
  devices->set_caller_id("+12065550123");
  devices->set_reason("registered devices of alice");
  auto* pbx = group->add_targets();
  pbx->mutable_trunk()->set_trunk("pbx");
  pbx->mutable_trunk()->set_pbx_phone(true);
  pbx->mutable_trunk()->set_called_number("100");
  const auto request = routeRequest("", "4255550100", "pstn-primary", "example.com");
  const std::string text = formatExplanation(request, e);
  EXPECT_NE(text.find("(anonymous) on trunk pstn-primary -> "), std::string::npos) << text;
  EXPECT_NE(text.find("  callee user     sip:alice@example.com\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  group 1  no timeout\n"
                      "    devices of sip:alice@example.com\n"
                      "      caller id +12065550123\n"
                      "      why: registered devices of alice\n"
                      "    PBX phone via trunk pbx\n"
                      "      number 100\n"),
            std::string::npos)
      << text;
}

TEST(RouteFormatTest, ColorWrapsTheOutcomeAndMarks) {
  const auto request = routeRequest("alice", "2200", "", "example.com");
  const std::string text = formatExplanation(request, aliceTo2200(), {.color = true});
  EXPECT_EQ(text.rfind("\x1b[1;32mROUTED (1 target group)\x1b[0m", 0), 0u) << text;
  EXPECT_NE(text.find("\x1b[1;32m\xE2\x9C\x93\x1b[0m"), std::string::npos);
}

TEST(RouteFormatTest, JsonUsesProtoFieldNamesAndPrintsEveryField) {
  const auto doc = nlohmann::json::parse(explanationToJson(aliceTo2200()));
  EXPECT_EQ(doc["plan"]["outcome"], "OUTCOME_ROUTED");
  EXPECT_EQ(doc["plan"]["config_hash"], "0123456789ab");
  EXPECT_EQ(doc["plan"]["groups"][0]["targets"][0]["trunk"]["called_number"], "2200");
  EXPECT_EQ(doc["plan"]["groups"][0]["targets"][0]["trunk"]["media"]["srtp"], "SRTP_POLICY_OFF");
  EXPECT_EQ(doc["plan"]["groups"][0]["targets"][0]["trunk"]["media"]["codecs"][1], "PCMA");
  EXPECT_EQ(doc["steps"].size(), 3u);
  EXPECT_EQ(doc["steps"][0]["taken"], false);  // defaults are printed too
  EXPECT_EQ(doc["steps"][1]["subject"], "ext-4");
}

TEST(RouteFormatTest, ReloadLines) {
  medius::v1::ReloadResponse r;
  r.set_config_hash("abcdef012345");
  r.set_changed(true);
  EXPECT_EQ(formatReload(r), "reloaded: now serving config abcdef012345\n");
  r.set_changed(false);
  EXPECT_EQ(formatReload(r), "config abcdef012345 unchanged (the file has the same hash)\n");
}

}  // namespace
}  // namespace medius::medctl
