#include "medius/gateway/admin_service.hpp"

#ifndef MEDIUS_VERSION
#define MEDIUS_VERSION "0.0.0"
#endif

namespace medius::gateway {

std::string gatewayVersion() { return MEDIUS_VERSION; }

GatewayAdminService::GatewayAdminService(std::string gatewayId, GatewayState& state)
    : gatewayId_(std::move(gatewayId)), state_(state) {}

void GatewayAdminService::setOnDrain(std::function<void(std::uint32_t)> onDrain) {
  std::lock_guard lock(mutex_);
  onDrain_ = std::move(onDrain);
}

void GatewayAdminService::setTrunkMonitor(const TrunkMonitor* monitor) {
  std::lock_guard lock(mutex_);
  monitor_ = monitor;
}

void GatewayAdminService::setCallDirectory(const CallDirectory* calls) {
  std::lock_guard lock(mutex_);
  calls_ = calls;
}

const CallDirectory* GatewayAdminService::callDirectory() {
  std::lock_guard lock(mutex_);
  return calls_;
}

grpc::Status GatewayAdminService::GetInfo(grpc::ServerContext*, const v1::GetInfoRequest*,
                                          v1::GatewayInfo* response) {
  response->set_gateway_id(gatewayId_);
  response->set_version(gatewayVersion());
  // `listeners` is written once before the server starts, then only read.
  for (const auto& l : state_.listeners) *response->add_listeners() = l;
  response->set_draining(state_.draining.load());
  const CallDirectory* calls = callDirectory();
  response->set_active_calls(calls ? static_cast<std::uint32_t>(calls->size()) : 0);
  response->set_pending_registers(state_.pendingRegisters.load());
  return grpc::Status::OK;
}

grpc::Status GatewayAdminService::ListCalls(grpc::ServerContext*, const v1::ListCallsRequest*,
                                            v1::ListCallsResponse* response) {
  if (const CallDirectory* calls = callDirectory()) *response = calls->list();
  return grpc::Status::OK;
}

grpc::Status GatewayAdminService::ListTrunkStatus(grpc::ServerContext*,
                                                  const v1::ListTrunkStatusRequest*,
                                                  v1::ListTrunkStatusResponse* response) {
  const TrunkMonitor* monitor = nullptr;
  {
    std::lock_guard lock(mutex_);
    monitor = monitor_;
  }
  if (!monitor) return grpc::Status::OK;
  const CallDirectory* calls = callDirectory();
  for (auto& status : monitor->statuses()) {
    if (calls) status.set_active_calls(calls->trunkCalls(status.name()));
    *response->add_trunks() = std::move(status);
  }
  return grpc::Status::OK;
}

grpc::Status GatewayAdminService::ListFlows(grpc::ServerContext*, const v1::ListFlowsRequest*,
                                            v1::ListFlowsResponse* response) {
  std::lock_guard lock(state_.flowsMutex);
  *response = state_.flows;
  return grpc::Status::OK;
}

grpc::Status GatewayAdminService::Drain(grpc::ServerContext*,
                                        const v1::GatewayDrainRequest* request,
                                        v1::GatewayDrainResponse* response) {
  state_.draining = true;
  std::function<void(std::uint32_t)> hook;
  {
    std::lock_guard lock(mutex_);
    hook = onDrain_;
  }
  if (hook) hook(request ? request->grace_seconds() : 0);
  const CallDirectory* calls = callDirectory();
  response->set_calls_remaining(calls ? static_cast<std::uint32_t>(calls->size()) : 0);
  return grpc::Status::OK;
}

}  // namespace medius::gateway
