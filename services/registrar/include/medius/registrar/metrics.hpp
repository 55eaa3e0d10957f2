// The registrar's Prometheus metrics, declared once and passed by reference.
//
// Thread: prometheus-cpp metrics are thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace medius::registrar {

struct RegistrarMetrics {
  explicit RegistrarMetrics(prometheus::Registry& registry);

  prometheus::Family<prometheus::Counter>& requestFamily;
  prometheus::Family<prometheus::Counter>& authFamily;

  // medius_registrar_bindings: current unexpired bindings (set by the sweeper).
  prometheus::Gauge& bindings;

  // medius_registrar_register_requests_total{result}.
  struct Results {
    prometheus::Counter& ok;
    prometheus::Counter& unauthorized;
    prometheus::Counter& forbidden;
    prometheus::Counter& intervalTooBrief;
    prometheus::Counter& outOfOrder;
    prometheus::Counter& notFound;
    prometheus::Counter& badRequest;
    prometheus::Counter& tooManyContacts;
    prometheus::Counter& unavailable;
  } results;

  // medius_registrar_auth_failures_total{reason}.
  struct AuthFailures {
    prometheus::Counter& missing;
    prometheus::Counter& unknownUser;
    prometheus::Counter& badResponse;
    prometheus::Counter& stale;
    prometheus::Counter& replayed;
    prometheus::Counter& malformed;
  } authFailures;

  // medius_registrar_flows_unreachable_total: bindings a gateway's ReportFlow marked
  // unreachable (their flow died).
  prometheus::Counter& flowsUnreachable;
};

}  // namespace medius::registrar
