// The medius.v1.Routing gRPC service (synchronous API) over the routing core.
//
// Every request loads the serving config once (LiveConfig::current) and decides with it.
//   RouteCall     the plan; counted in decisions_total{outcome} and decision_seconds
//   ExplainRoute  the same computation plus its steps; a dry run, not counted
//   Reload        re-reads the config file: FAILED_PRECONDITION with "FILE: $.path: problem"
//                 when it is bad (the old config keeps serving)
//   ControlLine   may a user control a line (remote call control): engine's controlLine()
//   ReportTrunkHealth / ListTrunks  trunk health as seen by the gateways
// Errors: empty callee or no source -> INVALID_ARGUMENT; the registrar unreachable
// (DeviceLookupUnavailable) -> UNAVAILABLE, so the gateway answers 503.
//
// Ownership: borrows everything. Thread: gRPC's threads; thread-safe.
#pragma once

#include "medius/routing/engine.hpp"
#include "medius/routing/service/live_config.hpp"
#include "medius/routing/service/metrics.hpp"
#include "medius/routing/service/registrar_device_lookup.hpp"
#include "medius/v1/routing.grpc.pb.h"

namespace medius::routing::service {

class RoutingService final : public v1::Routing::Service {
 public:
  RoutingService(LiveConfig& config, TrunkHealth& health, RegistrarChannels& registrar,
                 RoutingMetrics& metrics);

  grpc::Status RouteCall(grpc::ServerContext* context, const v1::RouteCallRequest* request,
                         v1::RoutePlan* response) override;
  grpc::Status ExplainRoute(grpc::ServerContext* context, const v1::RouteCallRequest* request,
                            v1::RouteExplanation* response) override;
  grpc::Status ControlLine(grpc::ServerContext* context, const v1::ControlLineRequest* request,
                           v1::ControlLineResponse* response) override;
  grpc::Status Reload(grpc::ServerContext* context, const v1::ReloadRequest* request,
                      v1::ReloadResponse* response) override;
  grpc::Status ReportTrunkHealth(grpc::ServerContext* context,
                                 const v1::TrunkHealthReport* request,
                                 v1::TrunkHealthAck* response) override;
  grpc::Status ListTrunks(grpc::ServerContext* context, const v1::ListTrunksRequest* request,
                          v1::ListTrunksResponse* response) override;

 private:
  // Validates, loads the config once, routes. `steps` null for RouteCall.
  grpc::Status decide(const v1::RouteCallRequest& request, v1::RoutePlan& plan,
                      std::vector<v1::ExplainStep>* steps);

  LiveConfig& config_;
  TrunkHealth& health_;
  RegistrarChannels& registrar_;
  RoutingMetrics& metrics_;
};

// The INVALID_ARGUMENT message for a request that cannot be routed at all, or "" when it
// is well formed (a callee, and a non-empty internal_user or trunk source).
std::string validateRequest(const v1::RouteCallRequest& request);

}  // namespace medius::routing::service
