#include "medius/medctl/client.hpp"

#include <memory>

#include <grpcpp/grpcpp.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "medius/v1/registrar.grpc.pb.h"

namespace medius::medctl {

namespace {

std::shared_ptr<grpc::Channel> channelTo(const std::string& target) {
  return grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
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
  if (!status.ok()) throw CallError(describe("registrar", target, status));
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

}  // namespace medius::medctl
