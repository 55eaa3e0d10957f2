#include "medius/routing/service/registrar_device_lookup.hpp"

#include <chrono>

#include <grpcpp/grpcpp.h>

#include "medius/common/grpc_tls.hpp"
#include "medius/v1/registrar.grpc.pb.h"

namespace medius::routing::service {

std::shared_ptr<grpc::Channel> RegistrarChannels::channel(const std::string& address) {
  std::lock_guard lock(mutex_);
  auto& channel = channels_[address];
  if (!channel) channel = grpc::CreateChannel(address, clientCredentials(address));
  return channel;
}

RegistrarDeviceLookup::RegistrarDeviceLookup(RegistrarChannels& channels,
                                             const RegistrarSettings& settings)
    : channels_(channels), settings_(settings) {}

bool RegistrarDeviceLookup::hasDevices(const std::string& aor) {
  auto stub = v1::Registrar::NewStub(channels_.channel(settings_.address));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(settings_.timeoutMs));
  v1::LookupRequest request;
  request.set_aor(aor);
  v1::LookupResponse response;
  const grpc::Status status = stub->Lookup(&context, request, &response);
  if (!status.ok()) {
    throw DeviceLookupUnavailable("registrar at " + settings_.address + " did not answer Lookup(" +
                                  aor + "): " + status.error_message());
  }
  return response.bindings_size() > 0;
}

}  // namespace medius::routing::service
