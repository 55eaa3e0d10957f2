// Route decisions beyond the table: explanations, forwarding variants, weights,
// exclusions, trunk health, numbers, and decisions racing a configuration swap.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "routing_test_support.hpp"

namespace medius::routing::test {
namespace {

using json = nlohmann::json;

struct Explained {
  v1::RoutePlan plan;
  std::vector<v1::ExplainStep> steps;
  // The first step of `stage` about `subject`, or nullptr.
  const v1::ExplainStep* find(const std::string& stage, const std::string& subject) const {
    for (const auto& s : steps) {
      if (s.stage() == stage && s.subject() == subject) return &s;
    }
    return nullptr;
  }
};

Explained explain(const Config& cfg, const v1::RouteCallRequest& req, const TrunkHealth& health = {},
                  std::set<std::string> noDevices = {}) {
  Explained e;
  FakeDevices devices(std::move(noDevices));
  e.plan = route(cfg, health, devices, req, &e.steps);
  return e;
}

TEST(RouteExplain, RuleRouteAndTrunkForAnExtension) {
  auto cfg = exampleConfig();
  Explained e = explain(*cfg, request("alice", "2200"));
  const auto* tried = e.find("normalization", "ext-3");
  ASSERT_NE(tried, nullptr);
  EXPECT_FALSE(tried->taken());
  const auto* rule = e.find("normalization", "ext-4");
  ASSERT_NE(rule, nullptr);
  EXPECT_TRUE(rule->taken());
  EXPECT_NE(rule->detail().find("2200 -> +14255552200"), std::string::npos) << rule->detail();
  EXPECT_EQ(e.find("normalization", "national-10"), nullptr);  // first match wins
  const auto* policy = e.find("policy", "international");
  ASSERT_NE(policy, nullptr);
  EXPECT_TRUE(policy->taken());
  EXPECT_EQ(policy->detail().rfind("voice policy of sip:alice@example.com", 0), 0u)
      << policy->detail();
  const auto* r = e.find("route", "pbx-extensions");
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->taken());
  const auto* t = e.find("trunk", "pbx");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->taken());
  EXPECT_NE(t->detail().find("called \"2200\""), std::string::npos) << t->detail();
  EXPECT_NE(t->detail().find("sip:2200@127.0.0.13:5060"), std::string::npos) << t->detail();
  const auto& target = e.plan.groups(0).targets(0).trunk();
  EXPECT_EQ(target.request_uri(), "sip:2200@127.0.0.13:5060");
  EXPECT_EQ(target.address().host(), "127.0.0.13");
  EXPECT_EQ(target.address().port(), 5060u);
  EXPECT_EQ(std::vector<std::uint32_t>(target.failover_codes().begin(), target.failover_codes().end()),
            (std::vector<std::uint32_t>{408, 503, 504}));
  EXPECT_EQ(e.plan.groups(0).timeout_ms(), 3000u);
  EXPECT_EQ(e.plan.calling_number(), "+14255550100");
  EXPECT_EQ(e.steps.front().stage(), "config");
  EXPECT_EQ(e.steps.front().subject(), configHash(*cfg));
}

TEST(RouteExplain, TrunkSkippedBecauseDownAndDuplicates) {
  auto cfg = exampleConfig();
  TrunkHealth health;
  health.report("pstn-primary", false);
  Explained e = explain(*cfg, request("alice", "2065550123"), health);
  EXPECT_EQ(render(e.plan), "pstn-backup:2065550123");
  const auto* down = e.find("trunk", "pstn-primary");
  ASSERT_NE(down, nullptr);
  EXPECT_FALSE(down->taken());
  EXPECT_NE(down->detail().find("down"), std::string::npos) << down->detail();
  const auto* local = e.find("route", "local");
  ASSERT_NE(local, nullptr);
  EXPECT_FALSE(local->taken());
  EXPECT_NE(local->detail().find("does not match"), std::string::npos);
  // international also matches: its pstn-primary is considered once only.
  int considered = 0;
  for (const auto& s : e.steps) {
    if (s.stage() == "trunk" && s.subject() == "pstn-primary") {
      ++considered;
      if (considered == 2) {
        EXPECT_NE(s.detail().find("already in this plan"), std::string::npos);
      }
    }
  }
  EXPECT_EQ(considered, 2);
}

TEST(RouteExplain, PolicyDenial) {
  auto cfg = exampleConfig();
  Explained e = explain(*cfg, request("bob", "011442071234567"));
  EXPECT_EQ(e.plan.outcome(), v1::RoutePlan::OUTCOME_FORBIDDEN);
  EXPECT_NE(e.plan.reason().find("international"), std::string::npos) << e.plan.reason();
  EXPECT_NE(e.plan.reason().find("national"), std::string::npos);
  ASSERT_NE(e.find("normalization", "international"), nullptr);
  EXPECT_TRUE(e.find("normalization", "international")->taken());
  const auto* usage = e.find("usage", "national");
  ASSERT_NE(usage, nullptr);
  const auto* r = e.find("route", "international");
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(r->taken());
  EXPECT_NE(r->detail().find("none of the policy"), std::string::npos) << r->detail();
  EXPECT_EQ(e.steps.back().subject(), "OUTCOME_FORBIDDEN");
}

TEST(RouteExplain, PbxOriginatedCallDoesNotForkBack) {
  auto cfg = exampleConfig();
  Explained e = explain(*cfg, request("trunk:pbx", "sip:100@127.0.0.1", "sip:2200@127.0.0.13"));
  const auto* co = e.find("coexistence", "pbx");
  ASSERT_NE(co, nullptr);
  EXPECT_FALSE(co->taken());
  EXPECT_NE(co->detail().find("no loop"), std::string::npos);
  EXPECT_EQ(e.plan.callee_user(), "sip:alice@example.com");
  EXPECT_EQ(e.plan.calling_number(), "+14255552200");
  // No-answer forwarding: the first group times out after 20 s.
  ASSERT_EQ(e.plan.groups_size(), 2);
  EXPECT_EQ(e.plan.groups(0).timeout_ms(), 20000u);
  EXPECT_NE(e.find("forwarding", "no_answer"), nullptr);
}

TEST(RouteExplain, DualForkTargetsPbxPhoneInItsFormat) {
  auto cfg = exampleConfig();
  Explained e = explain(*cfg, request("trunk:pstn-primary", "sip:4255550100@127.0.0.1"));
  ASSERT_GE(e.plan.groups_size(), 1);
  const auto& group = e.plan.groups(0);
  ASSERT_EQ(group.targets_size(), 2);
  EXPECT_EQ(group.targets(0).user_aor(), "sip:alice@example.com");
  EXPECT_TRUE(group.targets(1).trunk().pbx_phone());
  EXPECT_EQ(group.targets(1).trunk().request_uri(), "sip:100@127.0.0.13:5060");
  EXPECT_EQ(group.targets(1).caller_id(), "12065550199");
  EXPECT_NE(group.targets(1).reason().find("dual fork"), std::string::npos);
  EXPECT_EQ(group.timeout_ms(), 20000u);
}

std::vector<std::string> codecsOf(const v1::TrunkTarget& target) {
  return {target.media().codecs().begin(), target.media().codecs().end()};
}

TEST(RouteTrunks, TargetsCarryTheTrunkMediaPolicy) {
  auto cfg = variant([](json& j) {
    j["trunks"][1]["srtp"] = "optional";
    j["trunks"][1]["codecs"] = json::array({"g729", "pcmu"});
  });
  TrunkHealth health;
  FakeDevices devices;
  v1::RoutePlan plan = route(*cfg, health, devices, request("bob", "2065550123"), nullptr);
  ASSERT_EQ(render(plan), "pstn-primary:12065550123 | pstn-backup:2065550123");
  const auto& primary = plan.groups(0).targets(0).trunk();
  EXPECT_EQ(primary.media().srtp(), v1::SRTP_POLICY_OFF);
  EXPECT_EQ(codecsOf(primary), (std::vector<std::string>{"PCMU", "PCMA", "G729"}));
  const auto& backup = plan.groups(1).targets(0).trunk();
  EXPECT_EQ(backup.media().srtp(), v1::SRTP_POLICY_OPTIONAL);
  EXPECT_EQ(codecsOf(backup), (std::vector<std::string>{"G729", "PCMU"}));
  // The PBX phone of a dual fork is a trunk target too.
  plan = route(*cfg, health, devices, request("trunk:pstn-primary", "sip:4255550100@127.0.0.1"),
               nullptr);
  ASSERT_EQ(plan.groups(0).targets_size(), 2);
  EXPECT_FALSE(plan.groups(0).targets(0).has_trunk());
  EXPECT_EQ(codecsOf(plan.groups(0).targets(1).trunk()),
            (std::vector<std::string>{"PCMU", "PCMA"}));
}

TEST(RouteForwarding, Immediate) {
  auto cfg = variant([](json& j) {
    j["users"][1]["forwarding"] = {{"immediate", {{"target", "2065550123"}}}};
  });
  TrunkHealth health;
  FakeDevices devices;
  v1::RoutePlan plan = route(*cfg, health, devices, request("alice", "101"), nullptr);
  EXPECT_EQ(plan.outcome(), v1::RoutePlan::OUTCOME_ROUTED);
  EXPECT_EQ(render(plan), "pstn-primary:12065550123 | pstn-backup:2065550123");
  EXPECT_EQ(plan.callee_user(), "sip:bob@example.com");
  // bob's policy (national) decides, and the original caller ID is presented.
  EXPECT_EQ(renderCallerIds(plan), "14255550100 | 4255550100");
  EXPECT_EQ(devices.lookups, 0);
  auto intl = variant([](json& j) {
    j["users"][1]["forwarding"] = {{"immediate", {{"target", "011442071234567"}}}};
  });
  plan = route(*intl, health, devices, request("alice", "101"), nullptr);
  EXPECT_EQ(plan.outcome(), v1::RoutePlan::OUTCOME_FORBIDDEN);
}

TEST(RouteForwarding, Unavailable) {
  auto cfg = variant([](json& j) {
    j["users"][1]["forwarding"] = {{"unavailable", {{"target", "sip:alice@example.com"}}}};
  });
  TrunkHealth health;
  FakeDevices none({"sip:bob@example.com"});
  v1::RoutePlan plan = route(*cfg, health, none, request("trunk:pstn-primary", "4255550101"), nullptr);
  EXPECT_EQ(plan.outcome(), v1::RoutePlan::OUTCOME_ROUTED);
  EXPECT_EQ(render(plan), "sip:alice@example.com");
  // With devices: ring them, then the busy/unavailable target.
  FakeDevices all;
  plan = route(*cfg, health, all, request("trunk:pstn-primary", "4255550101"), nullptr);
  EXPECT_EQ(render(plan), "sip:bob@example.com | sip:alice@example.com");
  EXPECT_EQ(plan.groups(0).timeout_ms(), 0u);
}

TEST(RouteForwarding, SimultaneousRing) {
  auto cfg = variant([](json& j) { j["users"][1]["simultaneous_ring"] = {{"target", "2065550123"}}; });
  TrunkHealth health;
  FakeDevices devices;
  v1::RoutePlan plan = route(*cfg, health, devices, request("alice", "101"), nullptr);
  EXPECT_EQ(render(plan), "sip:bob@example.com + pstn-primary:12065550123");
  health.report("pstn-primary", false);
  plan = route(*cfg, health, devices, request("alice", "101"), nullptr);
  EXPECT_EQ(render(plan), "sip:bob@example.com + pstn-backup:2065550123");
}

TEST(RouteTrunks, WeightedOrderIsDeterministicPerCallAndFollowsWeights) {
  auto cfg = variant([](json& j) {
    j["routes"][2]["trunks"] = json::array({{{"name", "pstn-primary"}, {"priority", 1}, {"weight", 3}},
                                            {{"name", "pstn-backup"}, {"priority", 1}, {"weight", 1}},
                                            {{"name", "pbx"}, {"priority", 2}}});
  });
  TrunkHealth health;
  FakeDevices devices;
  int primaryFirst = 0;
  const int calls = 400;
  for (int i = 0; i < calls; ++i) {
    v1::RouteCallRequest req = request("bob", "2065550123");
    req.set_call_id("call-" + std::to_string(i));
    v1::RoutePlan a = route(*cfg, health, devices, req, nullptr);
    v1::RoutePlan b = route(*cfg, health, devices, req, nullptr);
    ASSERT_EQ(render(a), render(b));
    ASSERT_EQ(a.groups_size(), 3);
    EXPECT_EQ(a.groups(2).targets(0).trunk().trunk(), "pbx");  // priority 2 last
    if (a.groups(0).targets(0).trunk().trunk() == "pstn-primary") ++primaryFirst;
  }
  // Weight 3 against 1: about 300 of 400; bounds far outside any plausible variation.
  EXPECT_GT(primaryFirst, 240);
  EXPECT_LT(primaryFirst, 360);
}

TEST(RouteTrunks, ExcludedTrunksAndTransports) {
  auto cfg = variant([](json& j) {
    j["trunks"][1]["transport"] = "tcp";
    j["trunks"][0]["transport"] = "tls";
  });
  TrunkHealth health;
  FakeDevices devices;
  v1::RouteCallRequest req = request("bob", "2065550123");
  v1::RoutePlan plan = route(*cfg, health, devices, req, nullptr);
  EXPECT_EQ(plan.groups(0).targets(0).trunk().request_uri(), "sips:12065550123@127.0.0.11:5060");
  EXPECT_EQ(plan.groups(1).targets(0).trunk().request_uri(),
            "sip:2065550123@127.0.0.12:5060;transport=tcp");
  req.add_exclude_trunks("pstn-primary");
  plan = route(*cfg, health, devices, req, nullptr);
  EXPECT_EQ(render(plan), "pstn-backup:2065550123");
  req.add_exclude_trunks("pstn-backup");
  plan = route(*cfg, health, devices, req, nullptr);
  EXPECT_EQ(plan.outcome(), v1::RoutePlan::OUTCOME_ALL_TRUNKS_DOWN);
}

TEST(RouteCallers, UnknownCallerHasNoPolicyButReachesUsers) {
  auto cfg = exampleConfig();
  TrunkHealth health;
  FakeDevices devices;
  v1::RouteCallRequest req = request("mallory", "101");
  EXPECT_EQ(render(route(*cfg, health, devices, req, nullptr)), "sip:bob@example.com");
  req.set_callee("2065550123");
  EXPECT_EQ(route(*cfg, health, devices, req, nullptr).outcome(), v1::RoutePlan::OUTCOME_FORBIDDEN);
  // No source: the caller URI decides (case-insensitive host).
  v1::RouteCallRequest bare;
  bare.set_caller("sip:alice@EXAMPLE.COM");
  bare.set_callee("011442071234567");
  EXPECT_EQ(render(route(*cfg, health, devices, bare, nullptr)), "pstn-primary:442071234567");
}

class ThrowingDevices : public DeviceLookup {
 public:
  bool hasDevices(const std::string&) override { throw DeviceLookupUnavailable("registrar down"); }
};

TEST(RouteDevices, LookupFailurePropagates) {
  auto cfg = exampleConfig();
  TrunkHealth health;
  ThrowingDevices devices;
  EXPECT_THROW(route(*cfg, health, devices, request("alice", "101"), nullptr),
               DeviceLookupUnavailable);
  // Calls that need no device lookup still route.
  EXPECT_EQ(route(*cfg, health, devices, request("alice", "2065550123"), nullptr).outcome(),
            v1::RoutePlan::OUTCOME_ROUTED);
}

TEST(TrunkHealthTest, ReportsAndSnapshots) {
  TrunkHealth health;
  EXPECT_TRUE(health.isUp("pstn-primary"));  // unknown trunks are up
  health.report("pstn-primary", false);
  health.report("pbx", true);
  EXPECT_FALSE(health.isUp("pstn-primary"));
  EXPECT_TRUE(health.isUp("pbx"));
  auto snap = health.snapshot();
  EXPECT_EQ(snap, (std::vector<std::pair<std::string, bool>>{{"pbx", true}, {"pstn-primary", false}}));
  TrunkHealth copy = health;  // copies share the state (the service hands it around)
  copy.report("pstn-primary", true);
  EXPECT_TRUE(health.isUp("pstn-primary"));
}

TEST(Numbers, ParseDialled) {
  auto n = [](std::string_view s) {
    Dialled d = parseDialled(s, "example.com");
    return d.kind == Dialled::Kind::Number ? "N:" + d.number
           : d.kind == Dialled::Kind::Uri  ? "U:" + d.uri
                                           : std::string("invalid");
  };
  EXPECT_EQ(n("(425) 555-0123"), "N:4255550123");
  EXPECT_EQ(n("tel:+1-425-555-0123;ext=12"), "N:+14255550123");
  EXPECT_EQ(n("TEL:101"), "N:101");
  EXPECT_EQ(n("sip:+14255550123@example.com;user=phone"), "N:+14255550123");
  EXPECT_EQ(n("sips:2200@example.com:5061"), "N:2200");
  EXPECT_EQ(n("<sip:bob@Example.COM>"), "U:sip:bob@example.com");
  EXPECT_EQ(n("sip:bob:secret@example.com:5060;transport=tcp"), "U:sip:bob@example.com");
  EXPECT_EQ(n("bob"), "U:sip:bob@example.com");
  EXPECT_EQ(n("*67"), "N:*67");
  EXPECT_EQ(n(""), "invalid");
  EXPECT_EQ(n("+"), "invalid");
  EXPECT_EQ(n("sip:example.com"), "invalid");
  EXPECT_EQ(n("sip:@example.com"), "invalid");
  EXPECT_EQ(n("1+2"), "invalid");
  EXPECT_EQ(n(std::string(100, '1')), "invalid");
  EXPECT_EQ(n("j.smith"), "U:sip:j.smith@example.com");
  EXPECT_TRUE(isE164("+14255550100"));
  EXPECT_FALSE(isE164("+04255550100"));
  EXPECT_FALSE(isE164("14255550100"));
  EXPECT_FALSE(isE164("+1234567890123456"));
}

TEST(Numbers, PatternPrefixAndTranslation) {
  Pattern p("^\\+1425(\\d{7})$", "$1-$$-$0");
  EXPECT_EQ(p.literalPrefix(), "+1425");
  std::string out = "untouched";
  EXPECT_FALSE(p.translate("+12065550123", out));
  EXPECT_EQ(out, "untouched");
  EXPECT_TRUE(p.translate("+14255550123", out));
  EXPECT_EQ(out, "5550123-$-+14255550123");
  // An alternation outside groups is not anchored: no prefix, and it still matches.
  Pattern alt("^\\+1425|99$");
  EXPECT_EQ(alt.literalPrefix(), "");
  EXPECT_TRUE(alt.matches("0099"));
  Pattern unanchored("555");
  EXPECT_EQ(unanchored.literalPrefix(), "");
  EXPECT_TRUE(unanchored.matches("+14255550123"));
  EXPECT_THROW(Pattern("^(", ""), std::invalid_argument);
  EXPECT_THROW(Pattern("^(a)$", "$2"), BadTranslation);
}

// Decisions racing reloads: every plan is entirely the old or entirely the new one.
TEST(RouteReload, ConcurrentDecisionsSeeOldOrNewConfig) {
  auto a = exampleConfig();
  auto b = variant([](json& j) { j["routes"][2]["trunks"] = json::array({"pstn-backup"}); });
  ASSERT_NE(configHash(*a), configHash(*b));
  TrunkHealth health;
  FakeDevices probe;
  v1::RouteCallRequest req = request("bob", "2065550123");
  const std::string planA = route(*a, health, probe, req, nullptr).SerializeAsString();
  const std::string planB = route(*b, health, probe, req, nullptr).SerializeAsString();
  ASSERT_NE(planA, planB);
  EXPECT_EQ(render(route(*b, health, probe, req, nullptr)), "pstn-backup:2065550123");

  std::atomic<std::shared_ptr<const Config>> live{a};
  std::atomic<bool> stop{false};
  std::atomic<int> sawA{0}, sawB{0}, wrong{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      FakeDevices devices;
      for (int i = 0; i < 3000; ++i) {
        std::shared_ptr<const Config> cfg = live.load();
        std::string got = route(*cfg, health, devices, req, nullptr).SerializeAsString();
        if (got == planA) {
          ++sawA;
        } else if (got == planB) {
          ++sawB;
        } else {
          ++wrong;
        }
      }
    });
  }
  std::thread swapper([&] {
    bool useB = true;
    while (!stop.load()) {
      live.store(useB ? b : a);
      useB = !useB;
      std::this_thread::yield();
    }
  });
  for (auto& t : workers) t.join();
  stop = true;
  swapper.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(sawA.load() + sawB.load(), 4 * 3000);
}

}  // namespace
}  // namespace medius::routing::test
