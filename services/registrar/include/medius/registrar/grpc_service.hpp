// The medius.v1.Registrar gRPC service (synchronous API) over a Registrar.
//
// Errors: StoreUnavailable -> UNAVAILABLE, InvalidRequest -> INVALID_ARGUMENT.
// Watch: subscribes first, then sends the snapshot (when asked), then one SNAPSHOT_END
// (always, so a client knows it is subscribed), then live events until the client cancels
// or stopWatches() is called.
//
// Ownership: borrows the Registrar and the store. Thread: gRPC's threads; thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "medius/registrar/registrar.hpp"
#include "medius/v1/registrar.grpc.pb.h"

namespace medius::registrar {

class RegistrarService final : public medius::v1::Registrar::Service {
 public:
  RegistrarService(Registrar& registrar, BindingStore& store);

  // Ends every Watch stream (at shutdown, before the server stops).
  void stopWatches();

  grpc::Status Register(grpc::ServerContext* context, const medius::v1::RegisterRequest* request,
                        medius::v1::RegisterResponse* response) override;
  grpc::Status Lookup(grpc::ServerContext* context, const medius::v1::LookupRequest* request,
                      medius::v1::LookupResponse* response) override;
  grpc::Status ListBindings(grpc::ServerContext* context,
                            const medius::v1::ListBindingsRequest* request,
                            medius::v1::ListBindingsResponse* response) override;
  grpc::Status ReportFlow(grpc::ServerContext* context,
                          const medius::v1::ReportFlowRequest* request,
                          medius::v1::ReportFlowResponse* response) override;
  grpc::Status RemoveBindings(grpc::ServerContext* context,
                              const medius::v1::RemoveBindingsRequest* request,
                              medius::v1::RemoveBindingsResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context, const medius::v1::WatchRequest* request,
                     grpc::ServerWriter<medius::v1::BindingEvent>* writer) override;
  grpc::Status Challenge(grpc::ServerContext* context, const medius::v1::ChallengeRequest* request,
                         medius::v1::ChallengeResponse* response) override;
  grpc::Status VerifyDigest(grpc::ServerContext* context,
                            const medius::v1::VerifyDigestRequest* request,
                            medius::v1::VerifyDigestResponse* response) override;

 private:
  Registrar& registrar_;
  BindingStore& store_;
  std::atomic<bool> stopping_{false};
};

}  // namespace medius::registrar
