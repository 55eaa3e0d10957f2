// medius.v1.GatewayAdmin: what this gateway is doing, for medctl and orchestration.
//
// GetInfo reports identity, listeners, draining and pending REGISTERs (from atomics in
// GatewayState, never from Sofia objects). ListTrunkStatus is the TrunkMonitor's view (its
// thread-safe statuses(), with each trunk's active calls from the CallDirectory); ListCalls
// and GetInfo.active_calls read the CallDirectory (empty / 0 without one). Drain marks the
// gateway draining and calls the drain hook (main: the same drain as SIGTERM, see
// medius/common/drain.hpp: health NOT_SERVING, 503 to new INVITEs and OPTIONS, calls go on,
// the process exits 0 when the last one ends or at the limit: grace_seconds when given,
// else drain.timeout_seconds); REGISTERs still arriving are still relayed (they hold no
// state here, refusing them would only make clients fail over later than the load balancer
// does).
//
// Thread: gRPC threads.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "medius/gateway/call_records.hpp"
#include "medius/gateway/gateway.hpp"
#include "medius/gateway/trunk_monitor.hpp"
#include "medius/v1/gateway.grpc.pb.h"

namespace medius::gateway {

class GatewayAdminService final : public v1::GatewayAdmin::Service {
 public:
  GatewayAdminService(std::string gatewayId, GatewayState& state);

  // Called by Drain (once per Drain call) with its grace_seconds (0: the configured limit).
  // Set before serving.
  void setOnDrain(std::function<void(std::uint32_t graceSeconds)> onDrain);
  // The monitor ListTrunkStatus reads (it must outlive the serving). Set before serving;
  // without one the list is empty.
  void setTrunkMonitor(const TrunkMonitor* monitor);
  // The live calls ListCalls, GetInfo and ListTrunkStatus read (it must outlive the
  // serving). Set before serving; without one there are no calls.
  void setCallDirectory(const CallDirectory* calls);

  grpc::Status GetInfo(grpc::ServerContext* ctx, const v1::GetInfoRequest* request,
                       v1::GatewayInfo* response) override;
  grpc::Status ListCalls(grpc::ServerContext* ctx, const v1::ListCallsRequest* request,
                         v1::ListCallsResponse* response) override;
  grpc::Status ListTrunkStatus(grpc::ServerContext* ctx,
                               const v1::ListTrunkStatusRequest* request,
                               v1::ListTrunkStatusResponse* response) override;
  grpc::Status Drain(grpc::ServerContext* ctx, const v1::GatewayDrainRequest* request,
                     v1::GatewayDrainResponse* response) override;
  grpc::Status ListFlows(grpc::ServerContext* ctx, const v1::ListFlowsRequest* request,
                         v1::ListFlowsResponse* response) override;

 private:
  std::string gatewayId_;
  GatewayState& state_;
  std::mutex mutex_;
  std::function<void(std::uint32_t)> onDrain_;  // guarded by mutex_
  const TrunkMonitor* monitor_ = nullptr;  // guarded by mutex_
  const CallDirectory* calls_ = nullptr;   // guarded by mutex_
  const CallDirectory* callDirectory();
};

// The version string reported by GetInfo.
std::string gatewayVersion();

}  // namespace medius::gateway
