// The reference topology (examples/local/routing.json) as a table: who dials what, the
// normalized number, the first route, the target groups in order and the outcome.
#include <gtest/gtest.h>

#include "routing_test_support.hpp"

namespace medius::routing::test {
namespace {

using Outcome = v1::RoutePlan::Outcome;
constexpr Outcome kRouted = v1::RoutePlan::OUTCOME_ROUTED;
constexpr Outcome k404 = v1::RoutePlan::OUTCOME_NOT_FOUND;
constexpr Outcome k403 = v1::RoutePlan::OUTCOME_FORBIDDEN;
constexpr Outcome k484 = v1::RoutePlan::OUTCOME_INCOMPLETE;
constexpr Outcome k503 = v1::RoutePlan::OUTCOME_ALL_TRUNKS_DOWN;
constexpr Outcome k480 = v1::RoutePlan::OUTCOME_UNAVAILABLE;

struct Case {
  const char* from;        // "alice", "bob" or "trunk:<name>"
  const char* to;          // as dialled
  Outcome outcome;
  const char* normalized;  // expected called_number
  const char* route;       // route of the first group ("" for user groups / no route)
  const char* groups;      // render(plan)
  const char* callerIds = nullptr;       // renderCallerIds(plan) when set
  std::set<std::string> down = {};       // trunks reported down
  std::set<std::string> noDevices = {};  // users without registered devices
  const char* caller = "";               // caller URI for trunk sources
};

const char* kAlice = "sip:alice@example.com";
const char* kBob = "sip:bob@example.com";

// Local and national numbers go to pstn-primary (digits without "+") then pstn-backup
// (10 digits); every matching route of the policy contributes, each trunk once.
const char* kLocal = "pstn-primary:14255550123 | pstn-backup:4255550123";
const char* kNational = "pstn-primary:12065550123 | pstn-backup:2065550123";
const char* kPbx2200 = "pbx:2200 | pstn-primary:14255552200 | pstn-backup:4255552200";
const char* kAliceDualFork = "sip:alice@example.com + pbx:100* | sip:bob@example.com";

const std::vector<Case>& cases() {
  static const std::vector<Case> table = {
      // --- alice (dial plan redmond, policy international) ---
      {"alice", "101", kRouted, "+14255550101", "", kBob, "+14255550100"},
      {"alice", "2200", kRouted, "+14255552200", "pbx-extensions", kPbx2200,
       "100 | 14255550100 | 4255550100"},
      {"alice", "2999", kRouted, "+14255552999", "pbx-extensions",
       "pbx:2999 | pstn-primary:14255552999 | pstn-backup:4255552999"},
      {"alice", "sip:2200@example.com", kRouted, "+14255552200", "pbx-extensions", kPbx2200},
      {"alice", "4255550123", kRouted, "+14255550123", "local", kLocal,
       "14255550100 | 4255550100"},
      {"alice", "14255550123", kRouted, "+14255550123", "local", kLocal},
      {"alice", "+14255550123", kRouted, "+14255550123", "local", kLocal},
      {"alice", "(425) 555-0123", kRouted, "+14255550123", "local", kLocal},
      {"alice", "425.555.0123", kRouted, "+14255550123", "local", kLocal},
      {"alice", "tel:+14255550123", kRouted, "+14255550123", "local", kLocal},
      {"alice", "tel:+1-425-555-0123;phone-context=+1", kRouted, "+14255550123", "local", kLocal},
      {"alice", "sip:4255550123@example.com;user=phone", kRouted, "+14255550123", "local", kLocal},
      {"alice", "<sip:+14255550123@example.com;user=phone>", kRouted, "+14255550123", "local",
       kLocal},
      {"alice", "2065550123", kRouted, "+12065550123", "national", kNational},
      {"alice", "1 (206) 555-0123", kRouted, "+12065550123", "national", kNational},
      {"alice", "011442071234567", kRouted, "+442071234567", "international",
       "pstn-primary:442071234567", "14255550000"},
      {"alice", "+44 20 7123 4567", kRouted, "+442071234567", "international",
       "pstn-primary:442071234567"},
      {"alice", "tel:+442071234567", kRouted, "+442071234567", "international",
       "pstn-primary:442071234567"},
      {"alice", "sip:011442071234567@example.com;user=phone", kRouted, "+442071234567",
       "international", "pstn-primary:442071234567"},
      {"alice", "+99", kRouted, "+99", "international", "pstn-primary:99"},
      {"alice", "12345", k484, "12345", "", ""},
      {"alice", "1234567", k484, "1234567", "", ""},
      {"alice", "99", k404, "99", "", ""},
      {"alice", "*67", k404, "*67", "", ""},
      {"alice", "sip:bob@example.com", kRouted, "sip:bob@example.com", "", kBob},
      {"alice", "bob", kRouted, "sip:bob@example.com", "", kBob},
      {"alice", "sip:carol@example.com", k404, "sip:carol@example.com", "", ""},
      {"alice", "tel:101", kRouted, "+14255550101", "", kBob},
      {"alice", "100", kRouted, "+14255550100", "", kAliceDualFork},
      // --- bob (default dial plan, policy national) ---
      {"bob", "011442071234567", k403, "+442071234567", "", ""},
      {"bob", "+442071234567", k403, "+442071234567", "", ""},
      {"bob", "+99", k403, "+99", "", ""},
      {"bob", "(425) 555-0123", kRouted, "+14255550123", "local", kLocal,
       "14255550101 | 4255550101"},
      {"bob", "2065550123", kRouted, "+12065550123", "national", kNational},
      {"bob", "12065550123", kRouted, "+12065550123", "national", kNational},
      {"bob", "tel:+12065550123", kRouted, "+12065550123", "national", kNational},
      {"bob", "sip:+12065550123@example.com;user=phone", kRouted, "+12065550123", "national",
       kNational},
      {"bob", "2200", kRouted, "+14255552200", "pbx-extensions", kPbx2200,
       "101 | 14255550101 | 4255550101"},
      {"bob", "12345", k484, "12345", "", ""},
      {"bob", "101", kRouted, "+14255550101", "", kBob},
      // bob calls alice: alice's no-answer forwarding leads back to bob, so it is dropped.
      {"bob", "100", kRouted, "+14255550100", "", "sip:alice@example.com + pbx:100*",
       "+14255550101 + 101"},
      {"bob", "sip:alice@example.com", kRouted, "sip:alice@example.com", "",
       "sip:alice@example.com + pbx:100*"},
      // --- inbound from trunks ---
      {"trunk:pstn-primary", "sip:4255550100@127.0.0.1", kRouted, "+14255550100", "",
       kAliceDualFork, "+12065550199 + 12065550199 | +12065550199"},
      {"trunk:pstn-primary", "sip:14255550100@127.0.0.1;user=phone", kRouted, "+14255550100", "",
       kAliceDualFork},
      {"trunk:pstn-backup", "sip:4255550100@127.0.0.1", kRouted, "+14255550100", "",
       kAliceDualFork},
      {"trunk:pstn-primary", "sip:4255550101@127.0.0.1", kRouted, "+14255550101", "", kBob,
       "+12065550199"},
      {"trunk:pstn-primary", "sip:4255550101@127.0.0.1", kRouted, "+14255550101", "", kBob,
       "+442071234567", {}, {}, "sip:011442071234567@127.0.0.11"},
      // The PBX calls alice's line: her devices only (no fork back to the PBX), then bob.
      {"trunk:pbx", "sip:100@127.0.0.1", kRouted, "+14255550100", "",
       "sip:alice@example.com | sip:bob@example.com", "+14255552200 | +14255552200", {}, {},
       "sip:2200@127.0.0.13"},
      {"trunk:pbx", "sip:101@127.0.0.1", kRouted, "+14255550101", "", kBob},
      {"trunk:pstn-primary", "sip:4255550199@127.0.0.1", k404, "+14255550199", "", ""},
      {"trunk:nowhere", "sip:4255550100@127.0.0.1", k404, "", "", ""},
      // --- trunk health ---
      {"bob", "2065550123", kRouted, "+12065550123", "national", "pstn-backup:2065550123",
       nullptr, {"pstn-primary"}},
      {"alice", "011442071234567", k503, "+442071234567", "", "", nullptr, {"pstn-primary"}},
      {"bob", "2065550123", k503, "+12065550123", "", "", nullptr,
       {"pstn-primary", "pstn-backup", "pbx"}},
      {"alice", "2200", kRouted, "+14255552200", "local",
       "pstn-primary:14255552200 | pstn-backup:4255552200", nullptr, {"pbx"}},
      {"trunk:pstn-primary", "sip:4255550100@127.0.0.1", kRouted, "+14255550100", "",
       "sip:alice@example.com | sip:bob@example.com", nullptr, {"pbx"}},
      // --- devices and forwarding ---
      {"alice", "101", k480, "+14255550101", "", "", nullptr, {}, {kBob}},
      {"trunk:pstn-primary", "sip:4255550101@127.0.0.1", k480, "+14255550101", "", "", nullptr,
       {}, {kBob}},
      {"trunk:pstn-primary", "sip:4255550100@127.0.0.1", kRouted, "+14255550100", "",
       "pbx:100* | sip:bob@example.com", nullptr, {}, {kAlice}},
      // Nothing to ring for alice (no device, call from her PBX): straight to the no-answer target.
      {"trunk:pbx", "sip:100@127.0.0.1", kRouted, "+14255550100", "", kBob, nullptr, {}, {kAlice}},
  };
  return table;
}

class RouteTable : public ::testing::TestWithParam<std::size_t> {};

TEST_P(RouteTable, Decides) {
  static const auto config = exampleConfig();
  const Case& c = cases()[GetParam()];
  TrunkHealth health;
  for (const auto& t : c.down) health.report(t, false);
  FakeDevices devices(c.noDevices);
  std::vector<v1::ExplainStep> steps;
  v1::RoutePlan plan = route(*config, health, devices, request(c.from, c.to, c.caller), &steps);
  SCOPED_TRACE(std::string(c.from) + " -> " + c.to + ": " + plan.reason());
  EXPECT_EQ(v1::RoutePlan::Outcome_Name(plan.outcome()), v1::RoutePlan::Outcome_Name(c.outcome));
  EXPECT_EQ(plan.called_number(), c.normalized);
  EXPECT_EQ(render(plan), c.groups);
  EXPECT_EQ(plan.groups_size() ? plan.groups(0).route() : "", c.route);
  if (c.callerIds) {
    EXPECT_EQ(renderCallerIds(plan), c.callerIds);
  }
  EXPECT_EQ(plan.config_hash(), configHash(*config));
  EXPECT_FALSE(plan.reason().empty());
  // Explaining never changes the decision.
  FakeDevices again(c.noDevices);
  v1::RoutePlan quiet = route(*config, health, again, request(c.from, c.to, c.caller), nullptr);
  EXPECT_EQ(quiet.SerializeAsString(), plan.SerializeAsString());
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.back().stage(), "outcome");
}

INSTANTIATE_TEST_SUITE_P(ReferenceTopology, RouteTable,
                         ::testing::Range<std::size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<std::size_t>& p) {
                           return "case" + std::to_string(p.param);
                         });

TEST(RouteTableSize, HasAtLeastFortyCases) { EXPECT_GE(cases().size(), 40u); }

}  // namespace
}  // namespace medius::routing::test
