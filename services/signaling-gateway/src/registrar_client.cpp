#include "medius/gateway/registrar_client.hpp"

#include "medius/common/grpc_tls.hpp"
#include "medius/common/logging.hpp"

namespace medius::gateway {

struct GrpcRegistrarClient::Call {
  grpc::ClientContext context;
  const char* method = "Register";
  prometheus::Histogram* seconds = nullptr;
  // One of the two is used, by `method`.
  v1::RegisterRequest request;
  v1::RegisterResponse response;
  RegisterDone done;
  v1::LookupRequest lookupRequest;
  v1::LookupResponse lookupResponse;
  LookupDone lookupDone;
  v1::ChallengeRequest challengeRequest;
  v1::ChallengeResponse challengeResponse;
  ChallengeDone challengeDone;
  v1::VerifyDigestRequest verifyRequest;
  v1::VerifyDigestResponse verifyResponse;
  VerifyDone verifyDone;
  v1::ReportFlowRequest flowRequest;
  v1::ReportFlowResponse flowResponse;
  ReportFlowDone flowDone;
  std::chrono::steady_clock::time_point started;
};

GrpcRegistrarClient::GrpcRegistrarClient(const std::string& address,
                                         std::chrono::milliseconds timeout,
                                         GatewayMetrics& metrics)
    : stub_(v1::Registrar::NewStub(
          grpc::CreateChannel(address, clientCredentials(address)))),
      timeout_(timeout),
      metrics_(metrics) {}

GrpcRegistrarClient::~GrpcRegistrarClient() {
  std::unique_lock lock(mutex_);
  for (Call* call : inFlight_) call->context.TryCancel();
  idle_.wait(lock, [this] { return inFlight_.empty(); });
}

void GrpcRegistrarClient::registerAsync(v1::RegisterRequest request, RegisterDone done) {
  auto* call = new Call;
  call->seconds = &metrics_.registrarRegisterSeconds();
  call->request = std::move(request);
  call->done = std::move(done);
  call->started = std::chrono::steady_clock::now();
  call->context.set_deadline(std::chrono::system_clock::now() + timeout_);
  {
    std::lock_guard lock(mutex_);
    inFlight_.insert(call);
  }
  stub_->async()->Register(&call->context, &call->request, &call->response,
                           [this, call](grpc::Status status) { finish(call, status); });
}

void GrpcRegistrarClient::lookupAsync(v1::LookupRequest request, LookupDone done) {
  auto* call = new Call;
  call->method = "Lookup";
  call->seconds = &metrics_.grpcClientSeconds("registrar", "Lookup");
  call->lookupRequest = std::move(request);
  call->lookupDone = std::move(done);
  call->started = std::chrono::steady_clock::now();
  call->context.set_deadline(std::chrono::system_clock::now() + timeout_);
  {
    std::lock_guard lock(mutex_);
    inFlight_.insert(call);
  }
  stub_->async()->Lookup(&call->context, &call->lookupRequest, &call->lookupResponse,
                         [this, call](grpc::Status status) { finish(call, status); });
}

void GrpcRegistrarClient::challengeAsync(v1::ChallengeRequest request, ChallengeDone done) {
  auto* call = new Call;
  call->method = "Challenge";
  call->seconds = &metrics_.grpcClientSeconds("registrar", "Challenge");
  call->challengeRequest = std::move(request);
  call->challengeDone = std::move(done);
  call->started = std::chrono::steady_clock::now();
  call->context.set_deadline(std::chrono::system_clock::now() + timeout_);
  {
    std::lock_guard lock(mutex_);
    inFlight_.insert(call);
  }
  stub_->async()->Challenge(&call->context, &call->challengeRequest, &call->challengeResponse,
                            [this, call](grpc::Status status) { finish(call, status); });
}

void GrpcRegistrarClient::verifyDigestAsync(v1::VerifyDigestRequest request, VerifyDone done) {
  auto* call = new Call;
  call->method = "VerifyDigest";
  call->seconds = &metrics_.grpcClientSeconds("registrar", "VerifyDigest");
  call->verifyRequest = std::move(request);
  call->verifyDone = std::move(done);
  call->started = std::chrono::steady_clock::now();
  call->context.set_deadline(std::chrono::system_clock::now() + timeout_);
  {
    std::lock_guard lock(mutex_);
    inFlight_.insert(call);
  }
  stub_->async()->VerifyDigest(&call->context, &call->verifyRequest, &call->verifyResponse,
                               [this, call](grpc::Status status) { finish(call, status); });
}

void GrpcRegistrarClient::reportFlowAsync(v1::ReportFlowRequest request, ReportFlowDone done) {
  auto* call = new Call;
  call->method = "ReportFlow";
  call->seconds = &metrics_.grpcClientSeconds("registrar", "ReportFlow");
  call->flowRequest = std::move(request);
  call->flowDone = std::move(done);
  call->started = std::chrono::steady_clock::now();
  call->context.set_deadline(std::chrono::system_clock::now() + timeout_);
  {
    std::lock_guard lock(mutex_);
    inFlight_.insert(call);
  }
  stub_->async()->ReportFlow(&call->context, &call->flowRequest, &call->flowResponse,
                             [this, call](grpc::Status status) { finish(call, status); });
}

void GrpcRegistrarClient::finish(Call* call, const grpc::Status& status) {
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - call->started).count();
  call->seconds->Observe(seconds);
  if (!status.ok()) {
    metrics_.countGrpcError("registrar", call->method, status.error_code());
    log::get("grpc")->warn("registrar {} failed: {} {}", call->method,
                           grpcCodeName(status.error_code()), status.error_message());
  }
  try {
    if (call->done) call->done(status, std::move(call->response));
    if (call->lookupDone) call->lookupDone(status, std::move(call->lookupResponse));
    if (call->challengeDone) call->challengeDone(status, std::move(call->challengeResponse));
    if (call->verifyDone) call->verifyDone(status, std::move(call->verifyResponse));
    if (call->flowDone) call->flowDone(status, std::move(call->flowResponse));
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
