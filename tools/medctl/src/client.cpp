#include "medius/medctl/client.hpp"

#include <memory>

#include <grpcpp/grpcpp.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "medius/common/grpc_tls.hpp"
#include "medius/v1/gateway.grpc.pb.h"
#include "medius/v1/media.grpc.pb.h"
#include "medius/v1/registrar.grpc.pb.h"
#include "medius/v1/routing.grpc.pb.h"

namespace medius::medctl {

namespace {

std::shared_ptr<grpc::Channel> channelTo(const std::string& target) {
  try {
    return grpc::CreateChannel(target, clientCredentials(target));
  } catch (const std::invalid_argument& e) {
    throw CallError(std::string(e.what()) + " (medctl --tls-ca/--tls-cert/--tls-key)");
  }
}

// Connection problems read as "cannot reach"; anything else names the status code.
std::string describe(const std::string& what, const std::string& target, const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "cannot reach the " + what + " at " + target + ": " + s.error_message() + " (code " +
             std::to_string(static_cast<int>(s.error_code())) + ")";
    default:
      return what + " at " + target + " failed: " + s.error_message() + " (code " +
             std::to_string(static_cast<int>(s.error_code())) + ")";
  }
}

}  // namespace

std::vector<medius::v1::Binding> listBindings(const std::string& target, const std::string& aor,
                                              std::chrono::milliseconds timeout) {
  auto stub = medius::v1::Registrar::NewStub(channelTo(target));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  medius::v1::ListBindingsRequest request;
  request.set_aor(aor);
  medius::v1::ListBindingsResponse response;
  const grpc::Status status = stub->ListBindings(&context, request, &response);
  if (!status.ok()) {
    throw CallError(describe("registrar", target, status), static_cast<int>(status.error_code()));
  }
  return {response.bindings().begin(), response.bindings().end()};
}

HealthState checkHealth(const std::string& target, const std::string& service,
                        std::chrono::milliseconds timeout) {
  auto stub = grpc::health::v1::Health::NewStub(channelTo(target));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) return HealthState::ServiceUnknown;
  if (!status.ok()) throw CallError(describe("health service", target, status));
  switch (response.status()) {
    case grpc::health::v1::HealthCheckResponse::SERVING: return HealthState::Serving;
    case grpc::health::v1::HealthCheckResponse::NOT_SERVING: return HealthState::NotServing;
    case grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN:
      return HealthState::ServiceUnknown;
    default: return HealthState::Unknown;
  }
}

std::string healthStateName(HealthState state) {
  switch (state) {
    case HealthState::Serving: return "SERVING";
    case HealthState::NotServing: return "NOT_SERVING";
    case HealthState::ServiceUnknown: return "SERVICE_UNKNOWN";
    case HealthState::Unknown: return "UNKNOWN";
  }
  return "UNKNOWN";
}

void watchBindings(const std::string& target, const std::string& aor, bool snapshot,
                   std::chrono::milliseconds connectTimeout,
                   const std::function<bool(const medius::v1::BindingEvent&)>& onEvent) {
  auto channel = channelTo(target);
  // A stream has no overall deadline; only the connection is bounded.
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + connectTimeout)) {
    throw CallError("cannot reach the registrar at " + target + " (no connection within " +
                    std::to_string(connectTimeout.count()) + " ms)");
  }
  auto stub = medius::v1::Registrar::NewStub(channel);
  grpc::ClientContext context;
  medius::v1::WatchRequest request;
  request.set_aor(aor);
  request.set_snapshot(snapshot);
  auto reader = stub->Watch(&context, request);
  medius::v1::BindingEvent event;
  while (reader->Read(&event)) {
    if (!onEvent(event)) {
      context.TryCancel();
      while (reader->Read(&event)) {
      }
      reader->Finish();
      return;
    }
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) throw CallError(describe("registrar", target, status));
}

namespace {

// An UNAVAILABLE answer on a READY channel came from the service itself (a dependency of
// it is down), not from the connection.
CallError routingError(const std::string& target, grpc::Channel& channel, const grpc::Status& s) {
  const int code = static_cast<int>(s.error_code());
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
      channel.GetState(false) == GRPC_CHANNEL_READY) {
    return CallError("routing service at " + target + " is unavailable: " + s.error_message() +
                         " (code " + std::to_string(code) + ")",
                     code);
  }
  if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    return CallError(s.error_message(), code);
  }
  return CallError(describe("routing service", target, s), code);
}

}  // namespace

medius::v1::RouteExplanation explainRoute(const std::string& target,
                                          const medius::v1::RouteCallRequest& request,
                                          std::chrono::milliseconds timeout) {
  auto channel = channelTo(target);
  auto stub = medius::v1::Routing::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  medius::v1::RouteExplanation response;
  const grpc::Status status = stub->ExplainRoute(&context, request, &response);
  if (!status.ok()) throw routingError(target, *channel, status);
  return response;
}

medius::v1::ReloadResponse reloadRouting(const std::string& target,
                                         std::chrono::milliseconds timeout) {
  auto channel = channelTo(target);
  auto stub = medius::v1::Routing::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  medius::v1::ReloadResponse response;
  const grpc::Status status = stub->Reload(&context, medius::v1::ReloadRequest{}, &response);
  if (!status.ok()) throw routingError(target, *channel, status);
  return response;
}

medius::v1::ListTrunkStatusResponse listTrunkStatus(const std::string& target,
                                                    std::chrono::milliseconds timeout) {
  auto stub = medius::v1::GatewayAdmin::NewStub(channelTo(target));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  medius::v1::ListTrunkStatusResponse response;
  const grpc::Status status =
      stub->ListTrunkStatus(&context, medius::v1::ListTrunkStatusRequest{}, &response);
  if (!status.ok()) {
    throw CallError(describe("gateway", target, status), static_cast<int>(status.error_code()));
  }
  return response;
}

medius::v1::ListCallsResponse listCalls(const std::string& target,
                                        std::chrono::milliseconds timeout) {
  auto stub = medius::v1::GatewayAdmin::NewStub(channelTo(target));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  medius::v1::ListCallsResponse response;
  const grpc::Status status = stub->ListCalls(&context, medius::v1::ListCallsRequest{}, &response);
  if (!status.ok()) {
    throw CallError(describe("gateway", target, status), static_cast<int>(status.error_code()));
  }
  return response;
}

medius::v1::ListFlowsResponse listFlows(const std::string& target,
                                        std::chrono::milliseconds timeout) {
  auto stub = medius::v1::GatewayAdmin::NewStub(channelTo(target));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  medius::v1::ListFlowsResponse response;
  const grpc::Status status = stub->ListFlows(&context, medius::v1::ListFlowsRequest{}, &response);
  if (!status.ok()) {
    throw CallError(describe("gateway", target, status), static_cast<int>(status.error_code()));
  }
  return response;
}

medius::v1::ListSessionsResponse listSessions(const std::string& target,
                                              std::chrono::milliseconds timeout) {
  auto stub = medius::v1::MediaTranscoder::NewStub(channelTo(target));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  medius::v1::ListSessionsResponse response;
  const grpc::Status status =
      stub->ListSessions(&context, medius::v1::ListSessionsRequest{}, &response);
  if (!status.ok()) {
    throw CallError(describe("media worker", target, status),
                    static_cast<int>(status.error_code()));
  }
  return response;
}

std::uint32_t drainGateway(const std::string& target, std::uint32_t graceSeconds,
                           std::chrono::milliseconds timeout) {
  auto stub = medius::v1::GatewayAdmin::NewStub(channelTo(target));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  medius::v1::GatewayDrainRequest request;
  request.set_grace_seconds(graceSeconds);
  medius::v1::GatewayDrainResponse response;
  const grpc::Status status = stub->Drain(&context, request, &response);
  if (!status.ok()) {
    throw CallError(describe("gateway", target, status), static_cast<int>(status.error_code()));
  }
  return response.calls_remaining();
}

std::uint32_t drainMedia(const std::string& target, std::chrono::milliseconds timeout) {
  auto stub = medius::v1::MediaTranscoder::NewStub(channelTo(target));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  medius::v1::DrainResponse response;
  const grpc::Status status = stub->Drain(&context, medius::v1::DrainRequest{}, &response);
  if (!status.ok()) {
    throw CallError(describe("media worker", target, status),
                    static_cast<int>(status.error_code()));
  }
  return response.sessions_remaining();
}

}  // namespace medius::medctl
