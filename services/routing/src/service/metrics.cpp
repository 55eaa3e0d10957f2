#include "medius/routing/service/metrics.hpp"

#include "medius/common/metrics.hpp"

namespace medius::routing::service {

RoutingMetrics::RoutingMetrics(prometheus::Registry& registry)
    : decisionFamily(prometheus::BuildCounter()
                         .Name("medius_routing_decisions_total")
                         .Help("RouteCall answers, by outcome")
                         .Register(registry)),
      reloadFamily(prometheus::BuildCounter()
                       .Name("medius_routing_config_reloads_total")
                       .Help("Configuration reloads (SIGHUP or Reload), by result")
                       .Register(registry)),
      trunkUpFamily(prometheus::BuildGauge()
                        .Name("medius_routing_trunk_up")
                        .Help("1 when the trunk is up as reported by the gateways, else 0")
                        .Register(registry)),
      configInfoFamily(prometheus::BuildGauge()
                           .Name("medius_routing_config_info")
                           .Help("1 for the hash of the configuration now serving")
                           .Register(registry)),
      decisions{decisionFamily.Add({{"outcome", "routed"}}),
                decisionFamily.Add({{"outcome", "not_found"}}),
                decisionFamily.Add({{"outcome", "forbidden"}}),
                decisionFamily.Add({{"outcome", "incomplete"}}),
                decisionFamily.Add({{"outcome", "all_trunks_down"}}),
                decisionFamily.Add({{"outcome", "unavailable"}}),
                decisionFamily.Add({{"outcome", "error"}})},
      decisionSeconds(prometheus::BuildHistogram()
                          .Name("medius_routing_decision_seconds")
                          .Help("Time to compute a RouteCall plan, registrar lookups included")
                          .Register(registry)
                          .Add({}, metrics::latencyBuckets())),
      reloads{reloadFamily.Add({{"result", "ok"}}), reloadFamily.Add({{"result", "unchanged"}}),
              reloadFamily.Add({{"result", "failed"}})} {}

prometheus::Counter& RoutingMetrics::decision(v1::RoutePlan::Outcome outcome) {
  switch (outcome) {
    case v1::RoutePlan::OUTCOME_ROUTED: return decisions.routed;
    case v1::RoutePlan::OUTCOME_NOT_FOUND: return decisions.notFound;
    case v1::RoutePlan::OUTCOME_FORBIDDEN: return decisions.forbidden;
    case v1::RoutePlan::OUTCOME_INCOMPLETE: return decisions.incomplete;
    case v1::RoutePlan::OUTCOME_ALL_TRUNKS_DOWN: return decisions.allTrunksDown;
    case v1::RoutePlan::OUTCOME_UNAVAILABLE: return decisions.unavailable;
    case v1::RoutePlan::OUTCOME_UNSPECIFIED:
    default: return decisions.error;
  }
}

void RoutingMetrics::setConfigHash(const std::string& hash) {
  std::lock_guard lock(mutex_);
  prometheus::Gauge& next = configInfoFamily.Add({{"hash", hash}});
  if (configInfo_ != nullptr && configInfo_ != &next) configInfoFamily.Remove(configInfo_);
  next.Set(1);
  configInfo_ = &next;
}

void RoutingMetrics::setTrunks(const std::vector<std::pair<std::string, bool>>& trunks) {
  std::lock_guard lock(mutex_);
  std::map<std::string, prometheus::Gauge*, std::less<>> next;
  for (const auto& [name, up] : trunks) {
    prometheus::Gauge& gauge = trunkUpFamily.Add({{"trunk", name}});
    gauge.Set(up ? 1 : 0);
    next.emplace(name, &gauge);
  }
  for (const auto& [name, gauge] : trunkUp_) {
    if (next.find(name) == next.end()) trunkUpFamily.Remove(gauge);
  }
  trunkUp_ = std::move(next);
}

}  // namespace medius::routing::service
