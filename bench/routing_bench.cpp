// Route decisions per second (issue 4): a generated configuration with 10,000 users,
// 500 routes and 50 trunks, decided in memory (no gRPC). Figures in docs/performance.md.
//
//   cmake -S . -B build-rel -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
//   ninja -C build-rel routing_bench && build-rel/bin/routing_bench
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include "medius/routing/config.hpp"
#include "medius/routing/engine.hpp"

namespace {

using json = nlohmann::json;
using namespace medius::routing;

constexpr int kUsers = 10'000;
constexpr int kRoutes = 500;
constexpr int kTrunks = 50;
constexpr int kNpaRoutes = 450;  // "^\+1<NPA>\d{7}$" for NPA 200..649

// "+14252010000" + i: extension = the last 4 digits.
std::string userNumber(int i) { return "+1425201" + std::to_string(10000 + i).substr(1); }

std::shared_ptr<const Config> generated() {
  json j;
  j["domain"] = "example.com";
  j["default_dial_plan"] = "plan";
  j["dial_plans"] = json::array({{{"name", "plan"},
                                  {"rules", json::array({
                                                {{"name", "ext-4"}, {"pattern", "^(\\d{4})$"},
                                                 {"translation", "+1425201$1"}},
                                                {{"name", "national-10"}, {"pattern", "^(\\d{10})$"},
                                                 {"translation", "+1$1"}},
                                                {{"name", "national-11"}, {"pattern", "^1(\\d{10})$"},
                                                 {"translation", "+1$1"}},
                                                {{"name", "international"}, {"pattern", "^011(\\d+)$"},
                                                 {"translation", "+$1"}},
                                                {{"name", "e164"}, {"pattern", "^\\+(\\d+)$"},
                                                 {"translation", "+$1"}},
                                            })}}});
  json trunks = json::array();
  for (int t = 0; t < kTrunks; ++t) {
    trunks.push_back({{"name", "trunk-" + std::to_string(t)},
                      {"address", "127.0.1." + std::to_string(t + 1) + ":5060"},
                      {"outbound",
                       {{"called", json::array({{{"pattern", "^\\+1(\\d{10})$"}, {"translation", "$1"}},
                                                {{"pattern", "^\\+(\\d+)$"}, {"translation", "011$1"}}})},
                        {"calling", json::array({{{"pattern", "^\\+(\\d+)$"}, {"translation", "$1"}}})}}},
                      {"inbound",
                       {{"called", json::array({{{"pattern", "^(\\d{10})$"}, {"translation", "+1$1"}}})},
                        {"calling", json::array({{{"pattern", "^(\\d{10})$"}, {"translation", "+1$1"}}})}}}});
  }
  j["trunks"] = trunks;
  json routes = json::array();
  for (int r = 0; r < kRoutes; ++r) {
    std::string pattern;
    if (r < kNpaRoutes) {
      pattern = "^\\+1" + std::to_string(200 + r) + "\\d{7}$";
    } else if (r < kRoutes - 1) {
      pattern = "^\\+" + std::to_string(20 + (r - kNpaRoutes)) + "\\d+$";
    } else {
      pattern = "^\\+\\d+$";
    }
    routes.push_back({{"name", "route-" + std::to_string(r)},
                      {"pattern", pattern},
                      {"trunks", json::array({"trunk-" + std::to_string(r % kTrunks),
                                              "trunk-" + std::to_string((r + 1) % kTrunks)})}});
  }
  j["routes"] = routes;
  json usages = json::array();
  json usageNames = json::array();
  for (int u = 0; u < 10; ++u) {
    json names = json::array();
    for (int r = u * 50; r < (u + 1) * 50; ++r) names.push_back("route-" + std::to_string(r));
    usages.push_back({{"name", "usage-" + std::to_string(u)}, {"routes", names}});
    usageNames.push_back("usage-" + std::to_string(u));
  }
  j["pstn_usages"] = usages;
  j["voice_policies"] = json::array({{{"name", "everything"}, {"usages", usageNames}}});
  json users = json::array();
  for (int i = 0; i < kUsers; ++i) {
    users.push_back({{"uri", "sip:user" + std::to_string(i) + "@example.com"},
                     {"line", userNumber(i)},
                     {"voice_policy", "everything"}});
  }
  j["users"] = users;
  return loadConfigText(j.dump(), "generated.json");
}

class AlwaysRegistered : public DeviceLookup {
 public:
  bool hasDevices(const std::string&) override { return true; }
};

struct Fixture {
  std::shared_ptr<const Config> config = generated();
  TrunkHealth health;
  AlwaysRegistered devices;
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// Requests prepared up front: the loop measures route() alone.
std::vector<medius::v1::RouteCallRequest> outboundRequests() {
  std::vector<medius::v1::RouteCallRequest> out;
  for (int i = 0; i < 1024; ++i) {
    medius::v1::RouteCallRequest r;
    r.mutable_source()->set_internal_user("sip:user" + std::to_string((i * 37) % kUsers) +
                                          "@example.com");
    // National numbers spread over all 450 area-code routes (10-digit dialling).
    r.set_callee(std::to_string(200 + (i * 7) % kNpaRoutes) + "5550123");
    r.set_call_id("call-" + std::to_string(i));
    out.push_back(std::move(r));
  }
  return out;
}

void run(benchmark::State& state, const std::vector<medius::v1::RouteCallRequest>& requests,
         bool explain) {
  Fixture& f = fixture();
  std::size_t i = 0;
  std::vector<medius::v1::ExplainStep> steps;
  for (auto _ : state) {
    steps.clear();
    medius::v1::RoutePlan plan =
        route(*f.config, f.health, f.devices, requests[i++ & 1023], explain ? &steps : nullptr);
    if (plan.outcome() != medius::v1::RoutePlan::OUTCOME_ROUTED) {
      state.SkipWithError(("not routed: " + plan.reason()).c_str());
      break;
    }
    benchmark::DoNotOptimize(plan);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_OutboundToTrunk(benchmark::State& state) {
  static const auto requests = outboundRequests();
  run(state, requests, false);
}
BENCHMARK(BM_OutboundToTrunk);

void BM_OutboundToTrunkExplained(benchmark::State& state) {
  static const auto requests = outboundRequests();
  run(state, requests, true);
}
BENCHMARK(BM_OutboundToTrunkExplained);

void BM_InboundToUser(benchmark::State& state) {
  static const auto requests = [] {
    std::vector<medius::v1::RouteCallRequest> out;
    for (int i = 0; i < 1024; ++i) {
      medius::v1::RouteCallRequest r;
      r.mutable_source()->set_trunk("trunk-" + std::to_string(i % kTrunks));
      r.set_caller("sip:2065550199@127.0.1.1");
      r.set_callee("sip:" + userNumber((i * 13) % kUsers).substr(2) + "@127.0.0.1;user=phone");
      out.push_back(std::move(r));
    }
    return out;
  }();
  run(state, requests, false);
}
BENCHMARK(BM_InboundToUser);

void BM_InternalToInternal(benchmark::State& state) {
  static const auto requests = [] {
    std::vector<medius::v1::RouteCallRequest> out;
    for (int i = 0; i < 1024; ++i) {
      medius::v1::RouteCallRequest r;
      r.mutable_source()->set_internal_user("sip:user" + std::to_string(i) + "@example.com");
      r.set_callee(userNumber((i * 31) % kUsers).substr(8));  // 4-digit extension
      out.push_back(std::move(r));
    }
    return out;
  }();
  run(state, requests, false);
}
BENCHMARK(BM_InternalToInternal);

}  // namespace

BENCHMARK_MAIN();
