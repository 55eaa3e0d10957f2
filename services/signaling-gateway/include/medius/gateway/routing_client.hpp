// The gateway's view of the routing service: RouteCall (one per new call, see call.hpp),
// ListTrunks and ReportTrunkHealth (the trunk keepalive, see trunk_monitor.hpp), and
// ControlLine (remote call control, rcc.hpp).
//
// RoutingClient is the seam tests may fake; GrpcRoutingClient is the real one (gRPC
// callback API, a deadline on every call, latency histogram
// medius_gateway_grpc_client_seconds{service="routing",method} and error counter).
//
// Thread: the *Async() calls may be made from any thread; `done` runs on a gRPC thread
// (never on the caller's stack), exactly once. The caller posts its result back to the
// SIP loop.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <grpcpp/grpcpp.h>

#include "medius/gateway/metrics.hpp"
#include "medius/v1/routing.grpc.pb.h"

namespace medius::gateway {

class RoutingClient {
 public:
  using ListTrunksDone = std::function<void(const grpc::Status&, v1::ListTrunksResponse)>;
  using ReportDone = std::function<void(const grpc::Status&)>;
  using RouteDone = std::function<void(const grpc::Status&, v1::RoutePlan)>;
  using ControlLineDone = std::function<void(const grpc::Status&, v1::ControlLineResponse)>;
  virtual ~RoutingClient() = default;
  // Remote call control (rcc.hpp). Fakes that do not need it answer UNIMPLEMENTED.
  virtual void controlLineAsync(v1::ControlLineRequest, ControlLineDone done) {
    done(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "ControlLine"), {});
  }
  virtual void routeCallAsync(v1::RouteCallRequest request, RouteDone done) = 0;
  virtual void listTrunksAsync(ListTrunksDone done) = 0;
  virtual void reportTrunkHealthAsync(v1::TrunkHealthReport report, ReportDone done) = 0;
};

class GrpcRoutingClient final : public RoutingClient {
 public:
  // `metrics` must outlive this client. The channel connects lazily.
  GrpcRoutingClient(const std::string& address, std::chrono::milliseconds timeout,
                    GatewayMetrics& metrics);
  // Cancels calls still in flight and waits for their callbacks (CANCELLED).
  ~GrpcRoutingClient() override;

  void routeCallAsync(v1::RouteCallRequest request, RouteDone done) override;
  void listTrunksAsync(ListTrunksDone done) override;
  void reportTrunkHealthAsync(v1::TrunkHealthReport report, ReportDone done) override;
  void controlLineAsync(v1::ControlLineRequest request, ControlLineDone done) override;

 private:
  struct Call;
  Call* begin(const char* method);
  void finish(Call* call, const grpc::Status& status);

  std::unique_ptr<v1::Routing::Stub> stub_;
  std::chrono::milliseconds timeout_;
  GatewayMetrics& metrics_;
  prometheus::Histogram& listSeconds_;
  prometheus::Histogram& reportSeconds_;
  std::mutex mutex_;
  std::condition_variable idle_;
  std::set<Call*> inFlight_;  // guarded by mutex_
};

}  // namespace medius::gateway
