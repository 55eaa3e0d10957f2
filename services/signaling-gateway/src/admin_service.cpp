#include "medius/gateway/admin_service.hpp"

#ifndef MEDIUS_VERSION
#define MEDIUS_VERSION "0.0.0"
#endif

namespace medius::gateway {

std::string gatewayVersion() { return MEDIUS_VERSION; }

GatewayAdminService::GatewayAdminService(std::string gatewayId, GatewayState& state)
    : gatewayId_(std::move(gatewayId)), state_(state) {}

void GatewayAdminService::setOnDrain(std::function<void()> onDrain) {
  std::lock_guard lock(mutex_);
  onDrain_ = std::move(onDrain);
}

void GatewayAdminService::setTrunkMonitor(const TrunkMonitor* monitor) {
  std::lock_guard lock(mutex_);
  monitor_ = monitor;
}

grpc::Status GatewayAdminService::GetInfo(grpc::ServerContext*, const v1::GetInfoRequest*,
                                          v1::GatewayInfo* response) {
  response->set_gateway_id(gatewayId_);
  response->set_version(gatewayVersion());
  // `listeners` is written once before the server starts, then only read.
  for (const auto& l : state_.listeners) *response->add_listeners() = l;
  response->set_draining(state_.draining.load());
  response->set_active_calls(0);  // no calls before INVITE handling exists
  response->set_pending_registers(state_.pendingRegisters.load());
  return grpc::Status::OK;
}

grpc::Status GatewayAdminService::ListCalls(grpc::ServerContext*, const v1::ListCallsRequest*,
                                            v1::ListCallsResponse*) {
  // Calls (INVITE dialogs) come in a later issue; until then there are none to list.
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
  for (auto& status : monitor->statuses()) *response->add_trunks() = std::move(status);
  return grpc::Status::OK;
}

grpc::Status GatewayAdminService::Drain(grpc::ServerContext*, const v1::GatewayDrainRequest*,
                                        v1::GatewayDrainResponse* response) {
  state_.draining = true;
  std::function<void()> hook;
  {
    std::lock_guard lock(mutex_);
    hook = onDrain_;
  }
  if (hook) hook();
  response->set_calls_remaining(0);  // no calls exist yet
  return grpc::Status::OK;
}

}  // namespace medius::gateway
