#include "medius/registrar/metrics.hpp"

namespace medius::registrar {

RegistrarMetrics::RegistrarMetrics(prometheus::Registry& registry)
    : requestFamily(prometheus::BuildCounter()
                        .Name("medius_registrar_register_requests_total")
                        .Help("REGISTER requests handled, by result")
                        .Register(registry)),
      authFamily(prometheus::BuildCounter()
                     .Name("medius_registrar_auth_failures_total")
                     .Help("Digest authentication failures, by reason")
                     .Register(registry)),
      bindings(prometheus::BuildGauge()
                   .Name("medius_registrar_bindings")
                   .Help("Current unexpired bindings (all AORs)")
                   .Register(registry)
                   .Add({})),
      results{requestFamily.Add({{"result", "ok"}}),
              requestFamily.Add({{"result", "unauthorized"}}),
              requestFamily.Add({{"result", "forbidden"}}),
              requestFamily.Add({{"result", "interval_too_brief"}}),
              requestFamily.Add({{"result", "out_of_order"}}),
              requestFamily.Add({{"result", "not_found"}}),
              requestFamily.Add({{"result", "bad_request"}}),
              requestFamily.Add({{"result", "too_many_contacts"}}),
              requestFamily.Add({{"result", "unavailable"}})},
      authFailures{authFamily.Add({{"reason", "missing"}}),
                   authFamily.Add({{"reason", "unknown_user"}}),
                   authFamily.Add({{"reason", "bad_response"}}),
                   authFamily.Add({{"reason", "stale"}}),
                   authFamily.Add({{"reason", "replayed"}}),
                   authFamily.Add({{"reason", "malformed"}})},
      flowsUnreachable(prometheus::BuildCounter()
                           .Name("medius_registrar_flows_unreachable_total")
                           .Help("Bindings marked unreachable because their flow died "
                                 "(ReportFlow from a gateway)")
                           .Register(registry)
                           .Add({})) {}

}  // namespace medius::registrar
