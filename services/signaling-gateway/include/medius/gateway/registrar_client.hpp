// The gateway's view of the registrar: Register (REGISTER relay), Lookup (the contacts
// of a user a call rings), Challenge and VerifyDigest (digest authentication of calls and
// other requests than REGISTER, call_auth.hpp), all asynchronous.
//
// RegistrarClient is the seam tests may fake; GrpcRegistrarClient is the real one
// (gRPC callback API, a deadline on every call, latency and error metrics).
//
// Thread: registerAsync() may be called from any thread; `done` runs on a gRPC thread
// (never on the caller's stack), exactly once. The caller posts its result back to the
// SIP loop.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <grpcpp/grpcpp.h>

#include "medius/gateway/metrics.hpp"
#include "medius/v1/registrar.grpc.pb.h"

namespace medius::gateway {

class RegistrarClient {
 public:
  using RegisterDone = std::function<void(const grpc::Status&, v1::RegisterResponse)>;
  using LookupDone = std::function<void(const grpc::Status&, v1::LookupResponse)>;
  using ChallengeDone = std::function<void(const grpc::Status&, v1::ChallengeResponse)>;
  using VerifyDone = std::function<void(const grpc::Status&, v1::VerifyDigestResponse)>;
  using ReportFlowDone = std::function<void(const grpc::Status&, v1::ReportFlowResponse)>;
  virtual ~RegistrarClient() = default;
  virtual void registerAsync(v1::RegisterRequest request, RegisterDone done) = 0;
  virtual void lookupAsync(v1::LookupRequest request, LookupDone done) = 0;
  virtual void challengeAsync(v1::ChallengeRequest request, ChallengeDone done) = 0;
  virtual void verifyDigestAsync(v1::VerifyDigestRequest request, VerifyDone done) = 0;
  // A flow's state (flow_table.hpp). The default (test doubles that do not care) answers
  // UNIMPLEMENTED at once.
  virtual void reportFlowAsync(v1::ReportFlowRequest request, ReportFlowDone done) {
    (void)request;
    done(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "ReportFlow"), {});
  }
};

class GrpcRegistrarClient final : public RegistrarClient {
 public:
  // `metrics` must outlive this client. The channel connects lazily.
  GrpcRegistrarClient(const std::string& address, std::chrono::milliseconds timeout,
                      GatewayMetrics& metrics);
  // Cancels calls still in flight and waits for their callbacks (they run `done` with
  // CANCELLED).
  ~GrpcRegistrarClient() override;

  void registerAsync(v1::RegisterRequest request, RegisterDone done) override;
  void lookupAsync(v1::LookupRequest request, LookupDone done) override;
  void challengeAsync(v1::ChallengeRequest request, ChallengeDone done) override;
  void verifyDigestAsync(v1::VerifyDigestRequest request, VerifyDone done) override;
  void reportFlowAsync(v1::ReportFlowRequest request, ReportFlowDone done) override;

 private:
  struct Call;
  void finish(Call* call, const grpc::Status& status);

  std::unique_ptr<v1::Registrar::Stub> stub_;
  std::chrono::milliseconds timeout_;
  GatewayMetrics& metrics_;
  std::mutex mutex_;
  std::condition_variable idle_;
  std::set<Call*> inFlight_;  // guarded by mutex_
};

}  // namespace medius::gateway
