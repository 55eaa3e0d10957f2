// The routing service's Prometheus metrics, declared once and passed by reference.
//
//   medius_routing_decisions_total{outcome}      RouteCall answers, by outcome
//   medius_routing_decision_seconds              RouteCall decision latency (histogram)
//   medius_routing_config_reloads_total{result}  reload attempts: ok, unchanged, failed
//   medius_routing_trunk_up{trunk}               1 up / 0 down, every configured trunk
//   medius_routing_config_info{hash}             1 for the configuration now serving
//
// Thread: counters and the histogram are prometheus-cpp metrics (thread-safe); the two
// gauge families whose label sets change (trunks, hash) are updated under one mutex.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "medius/v1/routing.pb.h"

namespace medius::routing::service {

struct RoutingMetrics {
  explicit RoutingMetrics(prometheus::Registry& registry);
  RoutingMetrics(const RoutingMetrics&) = delete;
  RoutingMetrics& operator=(const RoutingMetrics&) = delete;

  prometheus::Family<prometheus::Counter>& decisionFamily;
  prometheus::Family<prometheus::Counter>& reloadFamily;
  prometheus::Family<prometheus::Gauge>& trunkUpFamily;
  prometheus::Family<prometheus::Gauge>& configInfoFamily;

  // medius_routing_decisions_total{outcome}.
  struct Decisions {
    prometheus::Counter& routed;
    prometheus::Counter& notFound;
    prometheus::Counter& forbidden;
    prometheus::Counter& incomplete;
    prometheus::Counter& allTrunksDown;
    prometheus::Counter& unavailable;
    // No plan could be computed: invalid request, registrar unreachable, internal error.
    prometheus::Counter& error;
  } decisions;

  // medius_routing_decision_seconds.
  prometheus::Histogram& decisionSeconds;

  // medius_routing_config_reloads_total{result}.
  struct Reloads {
    prometheus::Counter& ok;
    prometheus::Counter& unchanged;
    prometheus::Counter& failed;
  } reloads;

  // The decisions counter of a plan's outcome (OUTCOME_UNSPECIFIED counts as error).
  prometheus::Counter& decision(v1::RoutePlan::Outcome outcome);

  // medius_routing_config_info: exactly one series, {hash} = 1; the previous one is removed.
  void setConfigHash(const std::string& hash);

  // medius_routing_trunk_up: one series per trunk in `trunks` (configured trunks with their
  // health); series of trunks no longer listed are removed.
  void setTrunks(const std::vector<std::pair<std::string, bool>>& trunks);

 private:
  std::mutex mutex_;
  prometheus::Gauge* configInfo_ = nullptr;
  std::map<std::string, prometheus::Gauge*, std::less<>> trunkUp_;
};

}  // namespace medius::routing::service
