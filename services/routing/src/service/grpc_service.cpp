#include "medius/routing/service/grpc_service.hpp"

#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include "medius/common/logging.hpp"

namespace medius::routing::service {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static const auto instance = log::get("route");
  return instance;
}

const char* outcomeName(v1::RoutePlan::Outcome outcome) {
  switch (outcome) {
    case v1::RoutePlan::OUTCOME_ROUTED: return "routed";
    case v1::RoutePlan::OUTCOME_NOT_FOUND: return "not_found";
    case v1::RoutePlan::OUTCOME_FORBIDDEN: return "forbidden";
    case v1::RoutePlan::OUTCOME_INCOMPLETE: return "incomplete";
    case v1::RoutePlan::OUTCOME_ALL_TRUNKS_DOWN: return "all_trunks_down";
    case v1::RoutePlan::OUTCOME_UNAVAILABLE: return "unavailable";
    default: return "unspecified";
  }
}

}  // namespace

std::string validateRequest(const v1::RouteCallRequest& request) {
  if (request.callee().empty()) return "callee is empty (the Request-URI as dialled)";
  switch (request.source().source_case()) {
    case v1::CallSource::kInternalUser:
      if (request.source().internal_user().empty()) return "source.internal_user is empty";
      return "";
    case v1::CallSource::kTrunk:
      if (request.source().trunk().empty()) return "source.trunk is empty";
      return "";
    case v1::CallSource::SOURCE_NOT_SET: break;
  }
  return "source is missing (an internal_user AOR or a trunk name)";
}

RoutingService::RoutingService(LiveConfig& config, TrunkHealth& health,
                               RegistrarChannels& registrar, RoutingMetrics& metrics)
    : config_(config), health_(health), registrar_(registrar), metrics_(metrics) {}

grpc::Status RoutingService::decide(const v1::RouteCallRequest& request, v1::RoutePlan& plan,
                                    std::vector<v1::ExplainStep>* steps) {
  if (const std::string problem = validateRequest(request); !problem.empty()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, problem};
  }
  // One snapshot for the whole decision: a reload during it does not change it.
  const std::shared_ptr<const Config> config = config_.current();
  RegistrarDeviceLookup devices(registrar_, registrarSettings(*config));
  try {
    plan = route(*config, health_, devices, request, steps);
  } catch (const DeviceLookupUnavailable& e) {
    logger()->warn("call {}: {} -> {}: registrar unavailable: {}", request.call_id(),
                   request.caller(), request.callee(), e.what());
    return {grpc::StatusCode::UNAVAILABLE,
            std::string("registrar unavailable, cannot look up devices: ") + e.what()};
  } catch (const std::exception& e) {
    logger()->error("call {}: {} -> {}: routing failed: {}", request.call_id(), request.caller(),
                    request.callee(), e.what());
    return {grpc::StatusCode::INTERNAL, std::string("routing failed: ") + e.what()};
  }
  return grpc::Status::OK;
}

grpc::Status RoutingService::RouteCall(grpc::ServerContext*, const v1::RouteCallRequest* request,
                                       v1::RoutePlan* response) {
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = decide(*request, *response, nullptr);
  metrics_.decisionSeconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (!status.ok()) {
    metrics_.decisions.error.Increment();
    return status;
  }
  metrics_.decision(response->outcome()).Increment();
  logger()->info("call {}: {} -> {}: {} ({} group(s), config {}){}", request->call_id(),
                 request->caller(), request->callee(), outcomeName(response->outcome()),
                 response->groups_size(), response->config_hash(),
                 response->reason().empty() ? "" : ": " + response->reason());
  return status;
}

grpc::Status RoutingService::ExplainRoute(grpc::ServerContext*,
                                          const v1::RouteCallRequest* request,
                                          v1::RouteExplanation* response) {
  std::vector<v1::ExplainStep> steps;
  const grpc::Status status = decide(*request, *response->mutable_plan(), &steps);
  if (!status.ok()) return status;
  for (auto& step : steps) *response->add_steps() = std::move(step);
  return status;
}

grpc::Status RoutingService::ControlLine(grpc::ServerContext*,
                                         const v1::ControlLineRequest* request,
                                         v1::ControlLineResponse* response) {
  if (request->user_aor().empty() || request->device().empty()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "user_aor and device are required"};
  }
  const std::shared_ptr<const Config> config = config_.current();
  *response = controlLine(*config, health_, *request);
  logger()->info("rcc {}: {} controls {}: {}: {}", request->call_id(), request->user_aor(),
                 request->device(), v1::ControlLineResponse::Outcome_Name(response->outcome()),
                 response->reason());
  return grpc::Status::OK;
}

grpc::Status RoutingService::Reload(grpc::ServerContext*, const v1::ReloadRequest*,
                                    v1::ReloadResponse* response) {
  try {
    const ReloadResult result = config_.reload();
    response->set_config_hash(result.hash);
    response->set_changed(result.changed);
    logger()->info("reload (gRPC) of {}: {} {}", config_.file(),
                   result.changed ? "now serving" : "unchanged, still serving", result.hash);
    return grpc::Status::OK;
  } catch (const config::ConfigError& e) {
    logger()->error("reload (gRPC) refused, still serving {}: {}",
                    configHash(*config_.current()), e.what());
    return {grpc::StatusCode::FAILED_PRECONDITION, e.what()};
  }
}

grpc::Status RoutingService::ReportTrunkHealth(grpc::ServerContext*,
                                               const v1::TrunkHealthReport* request,
                                               v1::TrunkHealthAck*) {
  for (const auto& entry : request->trunks()) {
    if (entry.trunk().empty()) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "a trunk health entry has no trunk name"};
    }
  }
  for (const auto& entry : request->trunks()) {
    if (health_.isUp(entry.trunk()) != entry.up()) {
      logger()->info("trunk {} is {} (gateway {}, last code {})", entry.trunk(),
                     entry.up() ? "up" : "down", request->gateway_id(), entry.last_code());
    }
    health_.report(entry.trunk(), entry.up());
  }
  config_.publishTrunkHealth();
  return grpc::Status::OK;
}

grpc::Status RoutingService::ListTrunks(grpc::ServerContext*, const v1::ListTrunksRequest*,
                                        v1::ListTrunksResponse* response) {
  const std::shared_ptr<const Config> config = config_.current();
  for (const std::string& name : trunkNames(*config)) {
    v1::TrunkInfo info = trunkInfo(*config, name);
    info.set_up(health_.isUp(name));
    *response->add_trunks() = std::move(info);
  }
  return grpc::Status::OK;
}

}  // namespace medius::routing::service
