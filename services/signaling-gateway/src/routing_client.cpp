#include "medius/gateway/routing_client.hpp"

#include "medius/common/grpc_tls.hpp"
#include "medius/common/logging.hpp"

namespace medius::gateway {

struct GrpcRoutingClient::Call {
  grpc::ClientContext context;
  const char* method = "";
  prometheus::Histogram* seconds = nullptr;
  std::chrono::steady_clock::time_point started;
  // One of the four is used, by `method`.
  v1::RouteCallRequest routeRequest;
  v1::RoutePlan routePlan;
  RouteDone routeDone;
  v1::ListTrunksRequest listRequest;
  v1::ListTrunksResponse listResponse;
  ListTrunksDone listDone;
  v1::TrunkHealthReport report;
  v1::TrunkHealthAck ack;
  ReportDone reportDone;
  v1::ControlLineRequest controlRequest;
  v1::ControlLineResponse controlResponse;
  ControlLineDone controlDone;
};

GrpcRoutingClient::GrpcRoutingClient(const std::string& address,
                                     std::chrono::milliseconds timeout, GatewayMetrics& metrics)
    : stub_(v1::Routing::NewStub(
          grpc::CreateChannel(address, clientCredentials(address)))),
      timeout_(timeout),
      metrics_(metrics),
      listSeconds_(metrics.grpcClientSeconds("routing", "ListTrunks")),
      reportSeconds_(metrics.grpcClientSeconds("routing", "ReportTrunkHealth")) {}

GrpcRoutingClient::~GrpcRoutingClient() {
  std::unique_lock lock(mutex_);
  for (Call* call : inFlight_) call->context.TryCancel();
  idle_.wait(lock, [this] { return inFlight_.empty(); });
}

GrpcRoutingClient::Call* GrpcRoutingClient::begin(const char* method) {
  auto* call = new Call;
  call->method = method;
  call->started = std::chrono::steady_clock::now();
  call->context.set_deadline(std::chrono::system_clock::now() + timeout_);
  std::lock_guard lock(mutex_);
  inFlight_.insert(call);
  return call;
}

void GrpcRoutingClient::routeCallAsync(v1::RouteCallRequest request, RouteDone done) {
  Call* call = begin("RouteCall");
  // Looked up per call (the header keeps no member for it); the lookup is thread-safe.
  call->seconds = &metrics_.grpcClientSeconds("routing", "RouteCall");
  call->routeRequest = std::move(request);
  call->routeDone = std::move(done);
  stub_->async()->RouteCall(&call->context, &call->routeRequest, &call->routePlan,
                            [this, call](grpc::Status status) { finish(call, status); });
}

void GrpcRoutingClient::listTrunksAsync(ListTrunksDone done) {
  Call* call = begin("ListTrunks");
  call->seconds = &listSeconds_;
  call->listDone = std::move(done);
  stub_->async()->ListTrunks(&call->context, &call->listRequest, &call->listResponse,
                             [this, call](grpc::Status status) { finish(call, status); });
}

void GrpcRoutingClient::reportTrunkHealthAsync(v1::TrunkHealthReport report, ReportDone done) {
  Call* call = begin("ReportTrunkHealth");
  call->seconds = &reportSeconds_;
  call->report = std::move(report);
  call->reportDone = std::move(done);
  stub_->async()->ReportTrunkHealth(&call->context, &call->report, &call->ack,
                                    [this, call](grpc::Status status) { finish(call, status); });
}

void GrpcRoutingClient::controlLineAsync(v1::ControlLineRequest request, ControlLineDone done) {
  Call* call = begin("ControlLine");
  call->seconds = &metrics_.grpcClientSeconds("routing", "ControlLine");
  call->controlRequest = std::move(request);
  call->controlDone = std::move(done);
  stub_->async()->ControlLine(&call->context, &call->controlRequest, &call->controlResponse,
                              [this, call](grpc::Status status) { finish(call, status); });
}

void GrpcRoutingClient::finish(Call* call, const grpc::Status& status) {
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - call->started).count();
  call->seconds->Observe(seconds);
  if (!status.ok()) {
    metrics_.countGrpcError("routing", call->method, status.error_code());
    // Logged by the caller once per transition (an unreachable routing fails every round).
    log::get("grpc")->debug("routing {} failed: {} {}", call->method,
                            grpcCodeName(status.error_code()), status.error_message());
  }
  try {
    if (call->routeDone) call->routeDone(status, std::move(call->routePlan));
    if (call->listDone) call->listDone(status, std::move(call->listResponse));
    if (call->reportDone) call->reportDone(status);
    if (call->controlDone) call->controlDone(status, std::move(call->controlResponse));
  } catch (const std::exception& e) {
    log::get("grpc")->error("{} completion threw: {}", call->method, e.what());
  }
  // Erase last: the destructor waits for this, so `this` stays valid until here.
  std::lock_guard lock(mutex_);
  inFlight_.erase(call);
  delete call;
  if (inFlight_.empty()) idle_.notify_all();
}

}  // namespace medius::gateway
