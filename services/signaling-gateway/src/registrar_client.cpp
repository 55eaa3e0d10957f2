#include "medius/gateway/registrar_client.hpp"

#include "medius/common/logging.hpp"

namespace medius::gateway {

struct GrpcRegistrarClient::Call {
  grpc::ClientContext context;
  v1::RegisterRequest request;
  v1::RegisterResponse response;
  RegisterDone done;
  std::chrono::steady_clock::time_point started;
};

GrpcRegistrarClient::GrpcRegistrarClient(const std::string& address,
                                         std::chrono::milliseconds timeout,
                                         GatewayMetrics& metrics)
    : stub_(v1::Registrar::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))),
      timeout_(timeout),
      metrics_(metrics) {}

GrpcRegistrarClient::~GrpcRegistrarClient() {
  std::unique_lock lock(mutex_);
  for (Call* call : inFlight_) call->context.TryCancel();
  idle_.wait(lock, [this] { return inFlight_.empty(); });
}

void GrpcRegistrarClient::registerAsync(v1::RegisterRequest request, RegisterDone done) {
  auto* call = new Call;
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

void GrpcRegistrarClient::finish(Call* call, const grpc::Status& status) {
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - call->started).count();
  metrics_.registrarRegisterSeconds().Observe(seconds);
  if (!status.ok()) {
    metrics_.countGrpcError("registrar", "Register", status.error_code());
    log::get("grpc")->warn("registrar Register failed: {} {}", grpcCodeName(status.error_code()),
                           status.error_message());
  }
  try {
    call->done(status, std::move(call->response));
  } catch (const std::exception& e) {
    log::get("grpc")->error("Register completion threw: {}", e.what());
  }
  // Erase last: the destructor waits for this, so `this` stays valid until here.
  std::lock_guard lock(mutex_);
  inFlight_.erase(call);
  delete call;
  if (inFlight_.empty()) idle_.notify_all();
}

}  // namespace medius::gateway
